"""The figures of a study, one function each: `f(study) -> Plot(name, title, figure, data)`.

Every function takes a `StudyFit` (Approach 1 also the `Points`, for the training curves), returns
the matplotlib Figure and the arrays it drew (`data`), so tests check content, not files. Figures
are built with `matplotlib.figure.Figure` directly (Agg canvas on save, no pyplot, no global backend
state). A figure the study cannot support (e.g. Approach 2 skipped) raises `FitError` with the
reason; `all_figures` records it as skipped. Never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from scaling.analysis.laws import registry
from scaling.analysis.laws.forms import ChinchillaLaw, KaplanLaw
from scaling.analysis.laws.study import known_floor
from scaling.errors import DataError, FitError
from scaling.figure import Plot
from scaling.flops import FLOPS_PER_PARAM_TOKEN


class _LawAttr(Mapping[str, str]):
    """law key -> one attribute of the registered law, read when a figure is drawn (so a law
    registered after this module's import has its entry)."""

    def __init__(self, attr: str):
        self.attr = attr

    def __getitem__(self, key: str) -> str:
        return getattr(registry.get(key), self.attr)

    def __iter__(self) -> Iterator[str]:
        return (law.key for law in registry.laws())

    def __len__(self) -> int:
        return len(registry.laws())


LABEL, SHORT, COLOR = _LawAttr("label"), _LawAttr("short"), _LawAttr("color")


def _laws() -> list[str]:
    """The laws drawn on allocation figures, in the allocation table's order."""
    return [law.key for law in registry.allocating()]


AXIS = {
    "N": "N (parameters)",
    "D": "D (training tokens)",
    "C": "C (training FLOPs)",
    "loss": "loss (nats/token)",
}
KAPLAN_A = 0.73  # Kaplan et al. 2020: N_opt ~ C^0.73
CHINCHILLA_A = 0.5  # Hoffmann et al. 2022: N and D in equal proportion


# ----------------------------------------------------------------------------------------- helpers


def _figure(ncols: int = 1, width: float = 5.6, height: float = 4.3) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _loglog(ax, x: str, y: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(AXIS.get(x, x))
    ax.set_ylabel(AXIS.get(y, y))
    ax.grid(True, which="major", alpha=0.3)
    if y == "loss":  # a loss spans less than a decade: label it in plain numbers
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _formula(law) -> str:
    return repr(law).split("   ")[0]


def _span(values, pad: float = 1.0) -> np.ndarray:
    """A log grid over the range of `values`, widened by `pad` decades on each side."""
    v = np.asarray(values, float)
    return np.logspace(np.log10(v.min()) - pad, np.log10(v.max()) + pad, 200)


def data_limits(values, log: bool, pad: float = 0.05) -> tuple[float, float]:
    """Axis limits that follow the data: the finite (positive, on a log axis) values, widened by
    `pad` of their span on each side."""
    v = np.concatenate([np.ravel(np.asarray(x, float)) for x in values])
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    if v.size == 0:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    if log:
        f = 10 ** (pad * (np.log10(hi / lo) or 0.2))
        return lo / f, hi * f
    span = (hi - lo) or (abs(hi) * 0.2 or 1.0)
    return lo - pad * span, hi + pad * span


def ref_line(ax, orient: str, value: float, lim: tuple[float, float], **style) -> bool:
    """A reference line (known floor, E, 0.5, 0.73) drawn only inside the data's limits `lim`, so it
    never stretches the axis; outside them it is a legend entry that says where it lies."""
    lo, hi = lim
    if lo <= value <= hi:
        (ax.axhline if orient == "h" else ax.axvline)(value, **style)
        return True
    if orient == "h":
        side = "below" if value < lo else "above"
    else:
        side = "left of" if value < lo else "right of"
    ax.plot([], [], **{**style, "label": f"{style.get('label', '')} ({side} the axis)"})
    return False


def clip_band(lo: float, hi: float, lim: tuple[float, float]) -> tuple[float, float, bool]:
    """An interval band cut to the axis limits, and whether it was cut."""
    clo, chi = max(lo, lim[0]), min(hi, lim[1])
    return clo, chi, (clo, chi) != (lo, hi)


def _ci_text(lo: float, hi: float) -> str:
    return f" [{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) and math.isfinite(hi) else ""


def loss_units(study) -> str:
    """'nats/token' for our own runs (they record run ids); 'units as given' for others' tables."""
    return "nats/token" if "run_id" in study.points else "units as given"


def loss_axis(study) -> str:
    return f"loss ({loss_units(study)})"


def entropy_floor(study) -> float | None:
    """The known irreducible loss of the data (`laws.study.known_floor`: every point records the
    same one), or None."""
    try:
        return known_floor(study.points)
    except DataError:
        return None


def exponents(study, law: str) -> tuple[float, float]:
    """(a, b) of one fitted law: N_opt ~ C^a, D_opt ~ C^b."""
    return registry.get(law).exponents(study.fits[law])


def _require(study, law: str) -> None:
    if study.fits.get(law) is None:
        raise FitError(f"{LABEL[law]} was not fitted: {study.skipped.get(law, 'no fit')}")


def _series(
    values: np.ndarray, max_exact: int = 8, n_bins: int = 6
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Split points into series by a value: each distinct value (within 0.5%) when there are few,
    else `n_bins` equal bins in log space. Returns (series index per point, value per series,
    binned)."""
    logv = np.log(np.asarray(values, float))
    keys = np.round(logv / 0.005)
    uniq = np.unique(keys)
    if uniq.size <= max_exact:
        idx = np.searchsorted(uniq, keys)
        reps = np.array([np.exp(logv[idx == i].mean()) for i in range(uniq.size)])
        return idx, reps, False
    edges = np.linspace(logv.min(), logv.max(), n_bins + 1)
    idx = np.clip(np.searchsorted(edges, logv, side="right") - 1, 0, n_bins - 1)
    present = np.unique(idx)
    idx = np.searchsorted(present, idx)
    reps = np.array([np.exp(logv[idx == i].mean()) for i in range(present.size)])
    return idx, reps, True


def _floor_lines(ax, study, floor: float | None, lim: tuple[float, float]) -> dict:
    """The known entropy floor and the fitted E (with its interval band) as horizontal lines, inside
    the data's loss limits `lim`: lines outside become legend entries, a clipped band says so."""
    out: dict[str, Any] = {"floor": floor, "E": None, "E_band": None, "E_band_clipped": False}
    if study.approach3 is None:
        return out
    E = study.approach3.law.E
    out["E"] = E
    if floor is None:
        return out
    lo, hi = study.ci("approach3", "E")  # NaN when E was fixed: no band
    ref_line(
        ax,
        "h",
        floor,
        lim,
        color="black",
        ls="-.",
        lw=1.2,
        label=f"entropy floor {floor:.3f} (known)",
    )
    what = "fixed" if study.fixed_E is not None else "fitted"
    band = ""
    if math.isfinite(lo) and math.isfinite(hi):
        clo, chi, cut = clip_band(lo, hi, lim)
        if clo < chi:
            ax.axhspan(clo, chi, color=COLOR["approach3"], alpha=0.12)
            out["E_band"] = (clo, chi)
        out["E_band_clipped"] = cut
        band = "; band clipped at the axis" if cut else ""
    ref_line(
        ax,
        "h",
        E,
        lim,
        color=COLOR["approach3"],
        ls=":",
        lw=1.5,
        label=f"{what} E = {E:.3f}{_ci_text(lo, hi)}{band}",
    )
    return out


# ----------------------------------------------------------------------------------------- figures


def _loss_against(study, x: str, by: str, name: str) -> Plot:
    df = study.points
    if study.approach3 is None and study.kaplan is None:
        raise FitError(
            "neither Approach 3 nor the Kaplan law was fitted; nothing to draw over the points"
        )
    idx, reps, binned = _series(df[by].to_numpy(float))
    fig, (ax,) = _figure(width=8.0, height=4.8)
    cmap = colormaps["viridis"]
    series = []
    for i, v in enumerate(reps):
        color = cmap(i / max(len(reps) - 1, 1))
        label = f"{by} {'≈ ' if binned else '= '}{v:.3g}"
        series.append(_draw_series(ax, study, x, idx == i, float(v), color, label))
    curves = [e[k] for e in series for k in ("approach3", "kaplan") if k in e]
    lim = data_limits([df["loss"]] + curves, log=True)
    floor = _floor_lines(ax, study, entropy_floor(study), lim)
    _loglog(ax, x, "loss")
    ax.set_ylim(*lim)
    ax.set_ylabel(loss_axis(study))
    _label_loss_against(fig, ax, study, x, by, binned)
    points = pd.DataFrame({"N": df["N"], "D": df["D"], "loss": df["loss"], "series": idx})
    title = (
        f"Loss against {x}, one curve per {by}, with the fitted Approach 3 (solid) and Kaplan "
        "(dashed) laws"
    )
    return Plot(
        name, title, fig, dict(points=points, series=series, binned=binned, x=x, by=by, **floor)
    )


def _draw_series(ax, study, x: str, m: np.ndarray, v: float, color, label: str) -> dict:
    """One series of `_loss_against`: its points (with their seed spread) and the fitted laws over
    the series' own range at its value `v`."""
    df = study.points
    ax.scatter(df.loc[m, x], df.loc[m, "loss"], s=16, color=color, label=label, zorder=3)
    if "loss_sd" in df:  # points averaged over seeds: their spread (sample sd)
        ax.errorbar(
            df.loc[m, x],
            df.loc[m, "loss"],
            yerr=df.loc[m, "loss_sd"].fillna(0.0),
            fmt="none",
            ecolor=color,
            elinewidth=0.8,
            capsize=2,
            zorder=2,
        )
    grid = _span(df.loc[m, x], pad=0.1)
    entry = {"value": v, "n_points": int(m.sum()), "x": grid}
    args = (grid, np.full_like(grid, v)) if x == "N" else (np.full_like(grid, v), grid)
    for law, ls in (("approach3", "-"), ("kaplan", "--")):
        fit = study.fits.get(law)
        if fit is not None:
            entry[law] = fit.law.predict(*args)
            ax.plot(grid, entry[law], ls=ls, color=color, lw=1.1)
    return entry


def _label_loss_against(fig, ax, study, x: str, by: str, binned: bool) -> None:
    """The legend (with one grey entry per fitted law), the laws' formulas and the suptitle."""
    handles, labels = ax.get_legend_handles_labels()
    for law, ls in (("approach3", "-"), ("kaplan", "--")):
        if study.fits.get(law) is not None:
            handles.append(Line2D([], [], color="grey", ls=ls))
            labels.append(f"{LABEL[law]} at that {by}")
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    lines = [
        f"{LABEL[k]}: {_formula(study.fits.get(k).law)}"
        for k in ("approach3", "kaplan")
        if study.fits.get(k)
    ]
    ax.set_title("\n".join(lines), fontsize=7.5)
    fig.suptitle(
        f"Loss against {x}, one curve per {by}" + (" (binned in log space)" if binned else ""),
        fontsize=10,
    )


def loss_vs_n(study) -> Plot:
    """Loss against N, one series per D (binned when D is continuous), fitted laws over the
    points."""
    return _loss_against(study, "N", "D", "loss_vs_n")


def loss_vs_d(study) -> Plot:
    """Loss against D, one series per N, fitted laws over the points."""
    return _loss_against(study, "D", "N", "loss_vs_d")


def isoflop(study) -> Plot:
    """IsoFLOP profiles: loss against N per budget with the interpolant and minimum; N* against
    C."""
    _require(study, "approach2")
    fit = study.approach2
    cmap = colormaps["plasma"]
    fig, (ax, bx) = _figure(2, width=5.6)
    Cs = np.array([b.C for b in fit.budgets])
    norm = LogNorm(Cs.min(), Cs.max() * 1.0001)
    spread = _seed_spread(study.points)
    budgets = [_draw_profile(ax, b, cmap(0.85 * norm(b.C)), spread) for b in fit.budgets]
    _label_profiles(fig, ax, study, cmap, norm)
    cgrid = _nstar_panel(bx, study, Cs)
    fig.suptitle("IsoFLOP profiles and the compute-optimal model size", fontsize=10)
    title = (
        "IsoFLOP profiles per budget with their minima, and N* against C with the Approach 2 fit"
    )
    if any("loss_sd" in b for b in budgets):
        title += " (bars: +-1 sample sd of the loss over each point's seeds)"
    return Plot(
        "isoflop",
        title,
        fig,
        dict(budgets=budgets, fit_C=cgrid, fit_N=fit.allocation.n_opt(cgrid)),
    )


def _seed_spread(df: pd.DataFrame) -> pd.DataFrame:
    """N, loss and the sample sd of the loss of the points that average several seeds
    (`tables.mean_over`); empty when none does."""
    if "loss_sd" not in df:
        return pd.DataFrame(columns=["N", "loss", "loss_sd"])
    return df.loc[df["loss_sd"].notna() & (df["n_rep"] > 1), ["N", "loss", "loss_sd"]]


def _spread_at(spread: pd.DataFrame, N: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """The seed sd of each (N, loss) point, matched to the points frame within 1e-9 relative (a
    budget's sizes may differ in the last bits); NaN where a point has one seed."""
    n, v, sd = (spread[k].to_numpy(float) for k in ("N", "loss", "loss_sd"))
    out = np.full(len(N), np.nan)
    for i, (x, y) in enumerate(zip(N, loss)):
        hit = np.flatnonzero(
            np.isclose(n, x, rtol=1e-9, atol=0) & np.isclose(v, y, rtol=1e-9, atol=0)
        )
        if hit.size:
            out[i] = sd[hit[0]]
    return out


def _draw_profile(ax, b, color, spread: pd.DataFrame) -> dict:
    """One budget's points (with +-1 sd bars where they average several seeds), interpolant and
    minimum (white when the minimum sits at an edge and was left out); the arrays drawn."""
    ax.scatter(b.N, b.loss, s=14, color=color, zorder=3)
    sd = _spread_at(spread, b.N, b.loss)
    if np.isfinite(sd).any():
        ax.errorbar(
            b.N,
            b.loss,
            yerr=np.nan_to_num(sd),
            fmt="none",
            ecolor=color,
            elinewidth=0.8,
            capsize=2,
            zorder=2,
        )
    ax.plot(b.curve_n, b.curve_loss, color=color, lw=1)
    ax.scatter(
        [b.n_star],
        [b.loss_star],
        marker="*",
        s=110,
        zorder=4,
        edgecolor="black",
        lw=0.6,
        facecolor=color if b.used else "white",
    )
    drawn = {
        "C": b.C,
        "N": b.N,
        "loss": b.loss,
        "curve_n": b.curve_n,
        "curve_loss": b.curve_loss,
        "n_star": b.n_star,
        "loss_star": b.loss_star,
        "used": b.used,
    }
    if np.isfinite(sd).any():
        drawn["loss_sd"] = sd  # NaN where a point has one seed
    return drawn


def _label_profiles(fig, ax, study, cmap, norm) -> None:
    """Axes, budget colour bar, minima legend and title of the IsoFLOP profiles panel."""
    _loglog(ax, "N", "loss")
    ax.set_ylabel(loss_axis(study))
    sm = ScalarMappable(norm=norm, cmap=ListedColormap(cmap(np.linspace(0, 0.85, 256))))
    fig.colorbar(sm, ax=ax, label="budget C (FLOPs)")
    ax.legend(
        [
            Line2D([], [], marker="*", ls="", ms=10, mfc="grey", mec="black"),
            Line2D([], [], marker="*", ls="", ms=10, mfc="white", mec="black"),
        ],
        ["minimum (used in the fit)", "edge minimum (left out)"],
        fontsize=8,
    )
    ax.set_title(f"IsoFLOP profiles ({study.approach2.method} interpolation)", fontsize=9)


def _nstar_panel(bx, study, Cs: np.ndarray) -> np.ndarray:
    """N* per budget (open stars: edge minima left out) with the Approach 2 power law; its C
    grid."""
    fit = study.approach2
    used = np.array([b.used for b in fit.budgets])
    nstar = np.array([b.n_star for b in fit.budgets])
    bx.scatter(
        Cs[used], nstar[used], marker="*", s=110, color="black", label="N* per budget", zorder=3
    )
    if (~used).any():
        bx.scatter(
            Cs[~used],
            nstar[~used],
            marker="*",
            s=110,
            facecolor="white",
            edgecolor="black",
            label="N* at an edge (left out)",
            zorder=3,
        )
    cgrid = _span(Cs, pad=0.3)
    lo, hi = study.ci("approach2", "a")
    bx.plot(
        cgrid,
        fit.allocation.n_opt(cgrid),
        color=COLOR["approach2"],
        label=f"{_formula(fit.allocation.n_opt)}\na = {fit.a:.3f}{_ci_text(lo, hi)}",
    )
    _loglog(bx, "C", "N")
    bx.set_ylabel("N* (loss-minimising parameters)")
    bx.legend(fontsize=8)
    bx.set_title("Approach 2: N* against C", fontsize=9)
    return cgrid


def approach1_envelope(study, points=None) -> Plot:
    """Every training curve against FLOPs with the lower envelope highlighted; N_opt, D_opt along
    it."""
    _require(study, "approach1")
    fit = study.approach1
    df = study.points
    norm = LogNorm(df["N"].min(), df["N"].max() * 1.0001)
    fig, (ax, bx) = _figure(2, width=5.6)
    drawn, what = _training_curves(ax, study, getattr(points, "curves", None), norm)
    env = fit.envelope
    ax.plot(
        env["C"], env["loss"], color="red", lw=2.6, alpha=0.75, label="lower envelope", zorder=4
    )
    _loglog(ax, "C", "loss")
    ax.set_ylabel(loss_axis(study))
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=colormaps["viridis"]), ax=ax, label="N (parameters)"
    )
    ax.legend(fontsize=8)
    ax.set_title(f"Loss against FLOPs: {what}", fontsize=9)
    cgrid = _envelope_allocation(bx, study)
    fig.suptitle("Approach 1: the lower envelope of loss against compute", fontsize=10)
    return Plot(
        "approach1",
        "Approach 1: every training curve against FLOPs, the lower envelope, and N_opt, D_opt "
        "fitted along it",
        fig,
        dict(
            curves=drawn or None,
            envelope=env,
            fit_C=cgrid,
            fit_N=fit.allocation.n_opt(cgrid),
            fit_D=fit.allocation.d_opt(cgrid),
        ),
    )


def _training_curves(ax, study, curves, norm) -> tuple[list[dict], str]:
    """Each run's loss against FLOPs coloured by N (its final points when the envelope was not
    built from curves); the curves drawn and what the panel shows."""
    cmap = colormaps["viridis"]
    df = study.points
    if study.approach1.source != "curves" or curves is None or not len(curves):
        ax.scatter(df["C"], df["loss"], s=12, c=[cmap(0.9 * norm(n)) for n in df["N"]])
        return [], f"{len(df)} final points (no training curves in the input)"
    drawn = []
    for rid, g in curves.groupby("run_id", sort=False):
        g = g.sort_values("flops")
        ax.plot(g["flops"], g["loss"], color=cmap(0.9 * norm(g["N"].iloc[0])), lw=0.8, alpha=0.8)
        drawn.append(
            dict(
                run_id=rid,
                N=float(g["N"].iloc[0]),
                flops=g["flops"].to_numpy(float),
                loss=g["loss"].to_numpy(float),
            )
        )
    return drawn, f"{len(drawn)} training curves"


def _envelope_allocation(bx, study) -> np.ndarray:
    """N and D on the envelope with the fitted N_opt, D_opt power laws; their C grid."""
    fit = study.approach1
    env = fit.envelope
    cgrid = _span(env["C"], pad=0.3)
    bx.scatter(env["C"], env["N"], s=10, color=COLOR["approach1"], label="N on the envelope")
    bx.scatter(env["C"], env["D"], s=10, color="tab:purple", label="D on the envelope")
    for key, color in (("a", COLOR["approach1"]), ("b", "tab:purple")):
        lo, hi = study.ci("approach1", key)
        law = fit.allocation.n_opt if key == "a" else fit.allocation.d_opt
        bx.plot(cgrid, law(cgrid), color=color, label=f"{_formula(law)}{_ci_text(lo, hi)}")
    _loglog(bx, "C", "N")
    bx.set_ylabel("N_opt (parameters), D_opt (tokens)")
    bx.legend(fontsize=7.5)
    bx.set_title("Approach 1: allocation along the envelope", fontsize=9)
    return cgrid


def _in_box(v, grid, margin: float) -> np.ndarray:
    """Whether log values lie inside the grid's log range less `margin` of it at each end."""
    lo, hi = np.log(grid[0]), np.log(grid[-1])
    lv = np.log(np.asarray(v, float))
    return (lv >= lo + margin * (hi - lo)) & (lv <= hi - margin * (hi - lo))


def _inside(labels, n, d) -> list:
    """Contour labels kept only where they sit well inside the axes (none cut at an edge)."""
    kept = []
    for lab in labels:
        x, y = lab.get_position()
        if _in_box([x], n, 0.06)[0] and _in_box([y], d, 0.04)[0]:
            kept.append(lab)
        else:
            lab.remove()
    return kept


def approach3_contours(study, n_iso: int = 5) -> Plot:
    """The fitted Approach 3 surface as iso-loss contours over (N, D), its compute-optimal frontier
    (and Kaplan's), and lines of constant C = 6ND."""
    _require(study, "approach3")
    law = study.approach3.law
    df = study.points
    n = _span(df["N"], pad=0.5)
    d = _span(df["D"], pad=0.5)
    fig, (ax,) = _figure(width=6.6, height=5.6)
    L, levels, labels = _iso_loss_contours(ax, law, n, d)
    ax.scatter(df["N"], df["D"], s=8, color="black", alpha=0.6, label="measured runs", zorder=3)
    frontier = _frontiers(ax, study, n, d)
    iso_c = np.logspace(np.log10(df["C"].min()), np.log10(df["C"].max()), n_iso)
    labels += _constant_c_lines(ax, iso_c, n, d)
    ax.set_xlim(n[0], n[-1])
    ax.set_ylim(d[0], d[-1])
    _loglog(ax, "N", "D")
    # below the axes, where it hides no label
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2)
    fixed = f"; {study.fixed_E_text()}" if study.fixed_E is not None else ""
    ax.set_title(
        f"{_formula(law)}\niso-loss contours ({loss_units(study)}){fixed}; dotted: constant C = "
        "6ND",
        fontsize=8,
    )
    fig.suptitle("Approach 3: the fitted loss surface", fontsize=10)
    return Plot(
        "approach3_contours",
        "The fitted Approach 3 surface as iso-loss contours over (N, D), with the "
        "compute-optimal frontier and lines of constant C",
        fig,
        {
            "N": n,
            "D": d,
            "loss": L,
            "levels": levels,
            "frontier": frontier,
            "iso_C": iso_c,
            "labels": [(lab.get_text(), *lab.get_position()) for lab in labels],
        },
    )


def _iso_loss_contours(
    ax, law, n: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list]:
    """Contours of the law's loss over the (n, d) grid at 14 quantile levels, labelled only well
    inside the axes; the loss grid, the levels and the labels kept."""
    NN, DD = np.meshgrid(n, d)
    L = law.predict(NN, DD)
    levels = np.unique(np.round(np.quantile(L, np.linspace(0.02, 0.98, 14)), 3))
    cs = ax.contour(
        NN,
        DD,
        L,
        levels=levels,
        colors=colormaps["viridis"](np.linspace(0, 0.8, len(levels))),
        linewidths=0.9,
    )
    return L, levels, _inside(ax.clabel(cs, fontsize=6.5, fmt="%.3g", inline=False), n, d)


def _frontiers(ax, study, n: np.ndarray, d: np.ndarray) -> dict:
    """The compute-optimal frontier of Approach 3 (and of the Kaplan law) across the (n, d) box."""
    law = study.approach3.law
    k = FLOPS_PER_PARAM_TOKEN
    cgrid = np.logspace(np.log10(k * n[0] * d[0]), np.log10(k * n[-1] * d[-1]), 300)
    fn, fd = law.allocation(cgrid)
    ax.plot(
        fn,
        fd,
        color=COLOR["approach3"],
        lw=2.2,
        label=f"compute-optimal frontier (A3), D ~ N^{law.b / law.a:.2f}",
    )
    frontier = {"C": cgrid, "N": fn, "D": fd}
    if study.kaplan is not None:
        kn, kd = study.kaplan.law.allocation(cgrid)
        ax.plot(kn, kd, color=COLOR["kaplan"], lw=1.6, ls="--", label="Kaplan law's frontier")
        frontier["kaplan_N"], frontier["kaplan_D"] = kn, kd
    return frontier


def _constant_c_lines(ax, iso_c: np.ndarray, n: np.ndarray, d: np.ndarray) -> list:
    """Dotted lines of constant C = 6ND, each labelled near the bottom row where the label sits
    well inside the axes; the labels."""
    k = FLOPS_PER_PARAM_TOKEN
    labels = []
    for C in iso_c:
        ax.plot(n, C / (k * n), color="grey", ls=":", lw=0.9)
        ok = np.flatnonzero(_in_box(n, n, 0.12) & _in_box(C / (k * n), d, 0.08))
        if ok.size:
            j = int(ok[np.argmin(np.abs(np.log(C / (k * n[ok])) - np.log(d[len(d) // 6])))])
            labels.append(
                ax.text(
                    n[j],
                    C / (k * n[j]),
                    f"C={C:.0e}",
                    fontsize=6.5,
                    color="dimgrey",
                    rotation=-35,
                    ha="right",
                    va="bottom",
                )
            )
    return labels


def allocation_band(study, law: str, C: np.ndarray) -> dict:
    """N_opt(C), D_opt(C) of one law with bootstrap percentile bands (None without samples).

    Approach 3 and Kaplan bands come from each resample's full law. Approaches 1 and 2 are sampled
    as exponents only, so their band turns the fitted line about the centre of its data (the
    geometric-mean C of the budgets or envelope, where a log-log OLS line is best determined) by
    each resampled exponent."""
    fit = study.fits.get(law)
    alloc = fit.allocation if law in ("approach1", "approach2") else fit.law
    n, d = (np.asarray(v, float) for v in alloc.allocation(C))
    out: dict[str, Any] = {"N": n, "D": d, "N_band": None, "D_band": None}
    s = study.samples.get(law)
    if not s:
        return out
    q = 100 * (1 - study.options.level) / 2
    C2 = np.asarray(C, float)[:, None]
    if law == "approach3":
        bn, bd = ChinchillaLaw(
            s.get("E", fit.law.E), s["A"], s["B"], s["alpha"], s["beta"]
        ).allocation(C2)  # E: fixed
    elif law == "kaplan":
        bn, bd = KaplanLaw(s["alpha_N"], s["alpha_D"], s["N_c"], s["D_c"]).allocation(C2)
    else:
        centre = (
            np.exp(np.mean(np.log([b.C for b in fit.budgets if b.used])))
            if law == "approach2"
            else np.exp(np.mean(np.log(fit.envelope["C"].to_numpy(float))))
        )
        bn = alloc.n_opt(centre) * (C2 / centre) ** s["a"]
        bd = alloc.d_opt(centre) * (C2 / centre) ** s["b"]
    for key, arr in (("N_band", bn), ("D_band", bd)):
        arr = np.where(np.isfinite(arr), arr, np.nan)
        if np.isfinite(arr).any():
            out[key] = tuple(np.nanpercentile(arr, [q, 100 - q], axis=1))
    return out


def _forest(ax, rows: list[tuple[str, float, float, float, str, str]]) -> None:
    """a with its interval per row (label, a, lo, hi, color, marker), and the two reference values
    (inside the axis when the intervals reach them, else named in the legend)."""
    lim = data_limits([[r[1], r[2], r[3]] for r in rows], log=False, pad=0.08)
    for i, (_label, a, lo, hi, color, marker) in enumerate(rows):
        err = None
        if math.isfinite(lo) and math.isfinite(hi):
            err = [[max(a - lo, 0)], [max(hi - a, 0)]]
        ax.errorbar([a], [i], xerr=err, fmt=marker, color=color, ms=7, capsize=3)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(*lim)
    ref_line(
        ax,
        "v",
        CHINCHILLA_A,
        lim,
        color="black",
        ls="--",
        lw=1,
        label="0.5: Chinchilla (N and D alike)",
    )
    ref_line(ax, "v", KAPLAN_A, lim, color="grey", ls=":", lw=1.3, label="0.73: Kaplan et al. 2020")
    ax.set_xlabel("a in N_opt ~ C^a (b = 1 - a for a law)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def _follow_lines(ax, curves, bands) -> bool:
    """y limits from the drawn lines and points alone (the bootstrap bands are cut at them);
    whether any band was cut."""
    lim = data_limits(curves, log=True)
    ax.set_ylim(*lim)
    cut = False
    for band in bands:
        if band is not None:
            lo, hi = (np.asarray(b, float) for b in band)
            cut |= bool(np.nanmin(lo) < lim[0] or np.nanmax(hi) > lim[1])
    return cut


def comparison(study) -> Plot:
    """Compute-optimal N and D against C from every approach and Kaplan's law, side by side with
    bootstrap bands, and a with its interval per approach: the Kaplan-versus-Chinchilla answer."""
    laws = [k for k in _laws() if study.fits.get(k) is not None]
    if not laws:
        raise FitError("no law was fitted")
    df = study.points
    cgrid = np.logspace(np.log10(df["C"].min()), np.log10(df["C"].max()) + 2, 200)
    fig, (nx, dx, fx) = _figure(3, width=4.7, height=4.4)
    lines = {law: _allocation_lines(nx, dx, study, law, cgrid) for law in laws}
    measured = _isoflop_minima(nx, dx, study)
    clipped = {}
    for ax, key in ((nx, "N"), (dx, "D")):
        drawn = [lines[k][key] for k in laws] + ([measured[key]] if measured is not None else [])
        bands = [lines[k][f"{key}_band"] for k in laws]
        clipped[key] = _allocation_axes(ax, key, df["C"].max(), drawn, bands)
    nx.set_title("compute-optimal model size", fontsize=9)
    dx.set_title("compute-optimal training tokens", fontsize=9)
    a_tab = {law: (exponents(study, law)[0], *study.ci(law, "a")) for law in laws}
    _forest(fx, [(_short(law), *a_tab[law], COLOR[law], "o") for law in laws])
    pct = int(round(100 * study.options.level))
    fx.set_title(f"allocation exponent a ({pct}% bootstrap interval)", fontsize=9)
    fig.suptitle(
        "Compute-optimal allocation: "
        + ", ".join(f"{SHORT[k]} a = {v[0]:.2f}" for k, v in a_tab.items()),
        fontsize=10,
    )
    return Plot(
        "comparison",
        "Compute-optimal N and D against C from every approach and Kaplan's law, with "
        f"{pct}% bootstrap bands, and the exponent a per approach",
        fig,
        dict(C=cgrid, lines=lines, a=a_tab, measured=measured, bands_clipped=clipped),
    )


def _short(law: str) -> str:
    """A law's short name on the exponent forest ('Kaplan' for the Kaplan law)."""
    return SHORT[law] if law != "kaplan" else "Kaplan"


def _allocation_lines(nx, dx, study, law: str, cgrid: np.ndarray) -> dict:
    """One law's N_opt and D_opt against C (dashed for Kaplan), with their bootstrap bands, and the
    arrays drawn (`allocation_band`)."""
    res = allocation_band(study, law, cgrid)
    for ax, key in ((nx, "N"), (dx, "D")):
        exp = exponents(study, law)[0 if key == "N" else 1]
        status = study.fits[law].status.value
        flag = "" if status == "converged" else f" ({status}: not a clean optimum)"
        flag += " (E fixed)" if law == "approach3" and study.fixed_E is not None else ""
        ax.plot(
            cgrid,
            res[key],
            color=COLOR[law],
            ls="--" if law == "kaplan" else "-",
            label=f"{LABEL[law]}: ~C^{exp:.3f}{flag}",
        )
        if res[f"{key}_band"] is not None:
            ax.fill_between(cgrid, *res[f"{key}_band"], color=COLOR[law], alpha=0.15, lw=0)
    return res


def _isoflop_minima(nx, dx, study) -> pd.DataFrame | None:
    """The IsoFLOP minima used by Approach 2 as black stars on both panels (None without it)."""
    if study.approach2 is None:
        return None
    used = [b for b in study.approach2.budgets if b.used]
    measured = pd.DataFrame(
        {"C": [b.C for b in used], "N": [b.n_star for b in used], "D": [b.d_star for b in used]}
    )
    for ax, key in ((nx, "N"), (dx, "D")):
        ax.scatter(
            measured["C"],
            measured[key],
            marker="*",
            s=60,
            color="black",
            zorder=4,
            label="IsoFLOP minima",
        )
    return measured


def _allocation_axes(ax, key: str, c_max: float, drawn: list, bands: list) -> bool:
    """Mark the largest C measured, set log axes whose y limits follow the `drawn` lines, label
    them; whether a band was clipped."""
    ax.axvline(c_max, color="grey", lw=0.8, ls=":")
    ax.text(
        c_max,
        0.02,
        " largest C measured",
        fontsize=6.5,
        color="grey",
        transform=ax.get_xaxis_transform(),
    )
    _loglog(ax, "C", key)
    clipped = _follow_lines(ax, drawn, bands)
    ax.set_ylabel(
        f"{key}_opt ({'parameters' if key == 'N' else 'tokens'})"
        + ("; bands clipped at the axis" if clipped else "")
    )
    ax.legend(fontsize=6.5, loc="upper left")
    return clipped


def _group_forest(fx, a_tab: dict, approach: str) -> None:
    """The right panel of `group_comparison`: a per group and approach with its interval, against
    Chinchilla's 0.5 and Kaplan's 0.73."""
    cmap = colormaps["tab10"]
    markers = {law.key: law.marker for law in registry.laws()}
    names = list(a_tab)
    offs = {k: (i - 1.5) * 0.16 for i, k in enumerate(_laws())}
    for gi, name in enumerate(names):
        for k, (a, lo, hi) in a_tab[name].items():
            err = (
                [[max(a - lo, 0)], [max(hi - a, 0)]]
                if math.isfinite(lo) and math.isfinite(hi)
                else None
            )
            fx.errorbar(
                [a],
                [gi + offs[k]],
                xerr=err,
                fmt=markers[k],
                color=cmap(gi % 10),
                ms=5,
                capsize=2,
                mfc=cmap(gi % 10) if k == approach else "white",
            )
    fx.set_yticks(
        range(len(names)), [n if len(n) <= 28 else n[:26] + "…" for n in names], fontsize=7
    )
    fx.set_ylim(len(names) - 0.5, -0.5)
    flim = data_limits([v for tab in a_tab.values() for v in tab.values()], log=False, pad=0.08)
    fx.set_xlim(*flim)
    for ref, style in (
        (CHINCHILLA_A, dict(color="black", ls="--", lw=1)),
        (KAPLAN_A, dict(color="grey", ls=":", lw=1.3)),
    ):
        if flim[0] <= ref <= flim[1]:
            fx.axvline(ref, **style)
    fx.legend(
        [
            Line2D(
                [],
                [],
                marker=markers[k],
                ls="",
                color="grey",
                mfc="grey" if k == approach else "white",
            )
            for k in _laws()
        ]
        + [Line2D([], [], color="black", ls="--"), Line2D([], [], color="grey", ls=":")],
        [SHORT[k] for k in _laws()] + ["0.5 Chinchilla", "0.73 Kaplan 2020"],
        fontsize=6.5,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    fx.set_xlabel("a in N_opt ~ C^a")
    fx.grid(True, axis="x", alpha=0.3)
    fx.set_title("a per group and approach (bars: bootstrap interval)", fontsize=9)


def group_comparison(studies: dict, approach: str = "approach2") -> Plot:
    """One colour per group: N_opt and D_opt against C from `approach` (falling back to the first
    fitted law of a group), with bands, and a per group and approach against 0.5 and 0.73."""
    cmap = colormaps["tab10"]
    fig, (nx, dx, fx) = _figure(3, width=4.9, height=4.6)
    lines: dict[str, dict] = {}
    a_tab: dict[str, dict[str, tuple[float, float, float]]] = {}
    for gi, (name, s) in enumerate(studies.items()):
        color = cmap(gi % 10)
        law = (
            approach
            if s.fits.get(approach) is not None
            else next((k for k in _laws() if s.fits.get(k)), None)
        )
        if law is None:
            continue
        C = np.logspace(np.log10(s.points["C"].min()), np.log10(s.points["C"].max()) + 1, 120)
        res = allocation_band(s, law, C)
        res["C"], res["law"] = C, law
        lines[name] = res
        for ax, key in ((nx, "N"), (dx, "D")):
            ax.plot(
                C,
                res[key],
                color=color,
                label=f"{name} ({SHORT[law]} a={exponents(s, law)[0]:.3f})",
            )
            if res[f"{key}_band"] is not None:
                ax.fill_between(C, *res[f"{key}_band"], color=color, alpha=0.15, lw=0)
        if s.approach2 is not None:
            used = [b for b in s.approach2.budgets if b.used]
            nx.scatter([b.C for b in used], [b.n_star for b in used], s=14, color=color, zorder=3)
            dx.scatter([b.C for b in used], [b.d_star for b in used], s=14, color=color, zorder=3)
        a_tab[name] = {
            k: (exponents(s, k)[0], *s.ci(k, "a")) for k in _laws() if s.fits.get(k) is not None
        }
    for ax, key in ((nx, "N"), (dx, "D")):
        _loglog(ax, "C", key)
        cut = _follow_lines(
            ax, [r[key] for r in lines.values()], [r[f"{key}_band"] for r in lines.values()]
        )
        ax.set_ylabel(
            f"{key}_opt ({'parameters' if key == 'N' else 'tokens'})"
            + ("; bands clipped at the axis" if cut else "")
        )
    nx.legend(fontsize=6, loc="upper left")
    nx.set_title("compute-optimal N per group (dots: IsoFLOP minima)", fontsize=9)
    dx.set_title("compute-optimal D per group", fontsize=9)
    _group_forest(fx, a_tab, approach)
    fig.suptitle(
        f"Compute-optimal allocation by group ({LABEL.get(approach, approach)} lines)", fontsize=10
    )
    return Plot(
        "comparison",
        f"Compute-optimal N and D against C per group ({LABEL.get(approach, approach)}), and a "
        "per group and approach",
        fig,
        dict(lines=lines, a=a_tab),
    )


def bootstrap(study) -> Plot:
    """The bootstrap distribution of a and b from each approach (and of E, beside the known
    floor)."""
    laws = [k for k in _laws() if study.samples.get(k) and np.isfinite(study.samples[k]["a"]).any()]
    if not laws:
        raise FitError("no bootstrap samples (run with --bootstrap N, N > 0)")
    e = study.samples.get("approach3", {}).get("E")
    floor = entropy_floor(study)
    fig, axes = _figure(3 if e is not None else 2, width=4.6, height=4.0)
    data: dict[str, Any] = {"a": {}, "b": {}, "E": None, "floor": floor}
    for ax, key in zip(axes, ("a", "b")):
        data[key] = _exponent_histograms(ax, study, laws, key)
    if e is not None:
        data["E"] = _e_histogram(axes[2], study, e, floor)
    fig.suptitle(
        f"Bootstrap ({study.options.n_boot} resamples, seed {study.options.seed})", fontsize=10
    )
    return Plot(
        "bootstrap",
        "Bootstrap distributions of the exponents a and b from each approach"
        + (" and of the fitted E" if e is not None else ""),
        fig,
        data,
    )


def _exponent_histograms(ax, study, laws: list[str], key: str) -> dict[str, np.ndarray]:
    """The resamples of exponent `key` ('a' or 'b') per law as step histograms on shared bins, each
    with its estimate, against Chinchilla's 0.5; the finite resamples per law."""
    allv = np.concatenate([study.samples[k][key][np.isfinite(study.samples[k][key])] for k in laws])
    nb = int(np.clip(2 * np.sqrt(allv.size / len(laws)), 8, 40))  # fewer bins for few resamples
    bins = np.linspace(allv.min(), allv.max(), nb + 1) if np.ptp(allv) > 0 else nb
    drawn = {}
    for law in laws:
        v = study.samples[law][key]
        v = v[np.isfinite(v)]
        drawn[law] = v
        est = exponents(study, law)[0 if key == "a" else 1]
        ax.hist(
            v,
            bins=bins,
            histtype="step",
            lw=1.4,
            color=COLOR[law],
            density=True,
            label=f"{SHORT[law]}: {est:.3f} (n={v.size})",
        )
        ax.axvline(est, color=COLOR[law], lw=0.8, alpha=0.7)
    ref_line(
        ax,
        "v",
        CHINCHILLA_A,
        data_limits([allv], log=False),
        color="black",
        ls="--",
        lw=1,
        label="0.5 (Chinchilla)",
    )
    ax.set_xlabel(f"{key} in {'N' if key == 'a' else 'D'}_opt ~ C^{key}")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title(f"bootstrap distribution of {key}", fontsize=9)
    return drawn


def _e_histogram(ax, study, e: np.ndarray, floor: float | None) -> np.ndarray:
    """Approach 3's resamples of E as a filled histogram beside the known floor; the finite
    ones."""
    v = e[np.isfinite(e)]
    if v.size:  # an Approach 3 fit stopped at a bound leaves no finite resample of E
        ax.hist(
            v,
            bins=int(np.clip(2 * np.sqrt(v.size), 8, 40)),
            histtype="stepfilled",
            color=COLOR["approach3"],
            alpha=0.5,
            density=True,
            label=f"fitted E = {study.approach3.law.E:.3f}",
        )
    if floor is not None:
        ref_line(
            ax,
            "v",
            floor,
            data_limits([v, [study.approach3.law.E]], log=False),
            color="black",
            ls="-.",
            lw=1.4,
            label=f"entropy floor {floor:.3f} (known)",
        )
    ax.set_xlabel(f"E (irreducible loss, {loss_units(study)})")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title("Approach 3: bootstrap distribution of E", fontsize=9)
    return v


def residuals(study) -> Plot:
    """Log residuals of Approach 3 and Kaplan against N, D and C, and the extrapolation check."""
    if not study.residuals:
        raise FitError("neither Approach 3 nor the Kaplan law was fitted; no residuals")
    df = study.points
    fig, axes = _figure(4, width=3.7, height=3.8)
    for ax, key in zip(axes[:3], ("N", "D", "C")):
        _residual_panel(ax, study, key)
    axes[0].set_ylabel("log(predicted / measured loss)")
    axes[0].legend(fontsize=7)
    ex = study.comparison.extrapolation
    preds = None
    if ex is not None and any(k in ex.predictions for k in ("approach3", "kaplan")):
        preds = ex.predictions
        _extrapolation_panel(axes[3], ex)
    else:
        _no_extrapolation(axes[3])
    fig.suptitle(
        "Residuals of the fitted laws, and their extrapolation to the largest budget", fontsize=10
    )
    return Plot(
        "residuals",
        "Log residuals against N, D and C, and the extrapolation check (each law refitted "
        "without the largest budget, predicted against held out)",
        fig,
        dict(
            residuals=dict(study.residuals),
            N=df["N"].to_numpy(),
            D=df["D"].to_numpy(),
            C=df["C"].to_numpy(),
            extrapolation=preds,
        ),
    )


def _residual_panel(ax, study, key: str) -> None:
    """Each law's log residuals against one of N, D, C (with its rms in the label)."""
    for law, r in study.residuals.items():
        ax.scatter(
            study.points[key],
            r,
            s=7,
            alpha=0.6,
            color=COLOR[law],
            marker="o" if law == "approach3" else "x",
            label=f"{SHORT[law]} (rms {np.sqrt(np.mean(r**2)):.4f})",
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS[key])
    ax.grid(True, alpha=0.3)


def _extrapolation_panel(bx, ex) -> None:
    """Predicted against measured held-out loss per law, on square limits around the identity."""
    preds = ex.predictions
    laws = [k for k in ("approach3", "kaplan") if k in preds]
    for law in laws:
        bx.scatter(
            preds["loss"],
            preds[law],
            s=16,
            color=COLOR[law],
            marker="o" if law == "approach3" else "x",
            label=f"{SHORT[law]}: mean |error| {ex.errors[law]:.2%}",
        )
    lim = np.array(
        [
            min(preds["loss"].min(), *(preds[k].min() for k in laws)),
            max(preds["loss"].max(), *(preds[k].max() for k in laws)),
        ]
    )
    lim = lim * np.array([0.98, 1.02])
    bx.plot(lim, lim, color="black", lw=0.8, label="predicted = measured")
    bx.set_xlim(*lim)
    bx.set_ylim(*lim)
    bx.set_xlabel("measured loss (held out)")
    bx.set_ylabel("predicted loss")
    bx.legend(fontsize=7)
    bx.set_title(
        f"refit on {ex.n_train} points, tested on {ex.n_holdout}\nwith C >= {ex.holdout_C_min:.3g}",
        fontsize=8,
    )


def _no_extrapolation(bx) -> None:
    """The extrapolation panel when there is no check: a note, no axes."""
    bx.text(
        0.5,
        0.5,
        "no extrapolation check\n(too few points or budgets)",
        ha="center",
        va="center",
        transform=bx.transAxes,
    )
    bx.set_axis_off()


FIGURES = (
    "comparison",
    "loss_vs_n",
    "loss_vs_d",
    "isoflop",
    "approach1",
    "approach3_contours",
    "bootstrap",
    "residuals",
)


def all_figures(study, points=None) -> tuple[list[Plot], dict[str, str]]:
    """Every figure the study supports, in report order, and {name: reason} for those it does
    not."""
    makers = {
        "comparison": comparison,
        "loss_vs_n": loss_vs_n,
        "loss_vs_d": loss_vs_d,
        "isoflop": isoflop,
        "approach1": lambda s: approach1_envelope(s, points),
        "approach3_contours": approach3_contours,
        "bootstrap": bootstrap,
        "residuals": residuals,
    }
    plots, skipped = [], {}
    for name in FIGURES:
        try:
            plots.append(makers[name](study))
        except FitError as err:
            skipped[name] = str(err)
    for law in registry.laws():  # each law's own figures
        if law.key in study.fits:
            try:
                plots += law.figures(study, points)
            except FitError as err:
                skipped[law.key] = str(err)
    return plots, skipped

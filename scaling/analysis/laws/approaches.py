"""The three Chinchilla approaches and Kaplan's law, each from a canonical points frame
(columns N, D, C, loss; see scaling.analysis.tables) to a typed result.

Approach 2's per-budget minimum uses Akima interpolation of loss against log N (Porian et al.'s
method) by default. Measured on Porian's 15 IsoFLOP groups: one parabola over a budget's whole size
range misses the published exponent by up to 0.38 (0.15 with edge budgets dropped; the loss curve
is not symmetric in log N far from its minimum), a 5-point parabola local to the empirical minimum
by up to 0.031, Akima interpolation by at most 0.018 once budgets whose minimum sits on the
smallest or largest sampled size are dropped. Those edge budgets only bound N* from one side (the
off-centre bias of Open-Athena's analysis), so they are left out of the power-law fit with a
FitWarning, unless fewer than two budgets would remain.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.interpolate import Akima1DInterpolator

from scaling.analysis.laws.fit import (
    ChinchillaFit,
    FitStatus,
    KaplanFit,
    fit_chinchilla,
    fit_kaplan,
)
from scaling.analysis.laws.forms import Allocation, Exponents, PowerLaw
from scaling.errors import FitError, FitWarning
from scaling.flops import FLOPS_PER_PARAM_TOKEN

APPROACH2_METHODS = ("akima", "local", "full")


def budget_labels(C, tol: float = 0.05) -> np.ndarray:
    """Integer budget label per point: sorted log10 C split wherever a gap exceeds `tol` decades,
    so budgets whose C differ slightly (C from 6ND with rounded D) still group together."""
    logc = np.log10(np.asarray(C, float))
    order = np.argsort(logc, kind="stable")
    new = np.r_[True, np.diff(logc[order]) > tol]
    labels = np.empty(len(logc), dtype=int)
    labels[order] = np.cumsum(new) - 1
    return labels


class _AllocationExponents(Exponents):
    """`a` and `b` of a fit whose result is an `allocation` (N_opt ~ C^a, D_opt ~ C^b)."""

    allocation: Allocation

    def exponents(self) -> tuple[float, float]:
        return self.allocation.exponents()

    @property
    def status(self) -> FitStatus:
        """Always converged: the power laws are least-squares lines (a failed fit raises)."""
        return FitStatus.CONVERGED


@dataclass(frozen=True)
class BudgetProfile:
    """One IsoFLOP profile: its points, the located minimum and the curve drawn through them."""

    C: float  # geometric mean of the budget's C values
    N: np.ndarray  # sampled sizes, ascending
    loss: np.ndarray
    n_star: float
    d_star: float
    loss_star: float
    edge: bool  # the empirical minimum is the smallest or largest sampled size
    used: bool  # entered the N*(C) power-law fit
    curve_n: np.ndarray  # the interpolant / parabola evaluated on a grid, for plots
    curve_loss: np.ndarray
    parabola: tuple[float, float, float] | None = (
        None  # loss = c2 x^2 + c1 x + c0, x = ln N ('local'/'full')
    )


@dataclass(frozen=True)
class Approach2Fit(_AllocationExponents):
    """Approach 2 (IsoFLOP profiles): N*(C) and D*(C) power laws through the per-budget minima."""

    allocation: Allocation
    budgets: tuple[BudgetProfile, ...]
    method: str
    warnings: tuple[str, ...] = field(default=())


def isoflop_minimum(log_n: np.ndarray, loss: np.ndarray, method: str = "akima"):
    """Minimum of loss against ln N for one budget: (ln N*, loss*, curve x, curve y, parabola)."""
    order = np.argsort(log_n)
    x, y = log_n[order], loss[order]
    i = int(np.argmin(y))
    if method == "akima":
        xx = np.linspace(x[0], x[-1], 401)
        yy = Akima1DInterpolator(x, y)(xx) if len(x) > 2 else np.interp(xx, x, y)
        # the minimum is sought between the sampled neighbours of the empirical minimum only
        near = (xx >= x[max(i - 1, 0)]) & (xx <= x[min(i + 1, len(x) - 1)])
        j = int(np.flatnonzero(near)[np.argmin(yy[near])])
        return xx[j], float(yy[j]), xx, yy, None
    if method == "local":  # parabola through the minimum and two neighbours on each side
        lo, hi = max(0, i - 2), min(len(x), i + 3)
    elif method == "full":
        lo, hi = 0, len(x)
    else:
        raise FitError(
            f"unknown Approach 2 method {method!r}; choose one of {', '.join(APPROACH2_METHODS)}"
        )
    xs, ys = x[lo:hi], y[lo:hi]
    c2, c1, c0 = np.polyfit(xs, ys, 2)
    xx = np.linspace(xs[0], xs[-1], 101)
    if c2 <= 0:  # no interior minimum: fall back to the sampled one
        return x[i], float(y[i]), xx, np.polyval([c2, c1, c0], xx), (c2, c1, c0)
    xs_star = float(np.clip(-c1 / (2 * c2), xs[0], xs[-1]))
    return (
        xs_star,
        float(np.polyval([c2, c1, c0], xs_star)),
        xx,
        np.polyval([c2, c1, c0], xx),
        (c2, c1, c0),
    )


def approach2(
    df: pd.DataFrame,
    method: str = "akima",
    budget_tol: float = 0.05,
    drop_edge: bool = True,
    min_points: int = 3,
) -> Approach2Fit:
    """IsoFLOP analysis of a points frame: per budget the loss-minimising N*, then N*, D* ~ C^a,
    C^b."""
    labels = budget_labels(df["C"].to_numpy(), budget_tol)
    logn_all, logd_all = np.log(df["N"].to_numpy(float)), np.log(df["D"].to_numpy(float))
    logc_all, loss_all = np.log(df["C"].to_numpy(float)), df["loss"].to_numpy(float)
    profiles, msgs = [], []
    for lab in np.unique(labels):
        m = labels == lab
        if np.unique(logn_all[m]).size < min_points:
            continue
        profile, msg = _budget_profile(logn_all[m], logd_all[m], logc_all[m], loss_all[m], method)
        profiles.append(profile)
        if msg:
            msgs.append(msg)
    if len(profiles) < 2:
        raise FitError(
            f"Approach 2 needs at least 2 compute budgets with >= {min_points} model sizes each; "
            f"found {len(profiles)} (budgets group C values within {budget_tol} decades)"
        )
    msgs += _mark_used(profiles, drop_edge)
    used = [p for p in profiles if p["used"]]
    Cs = [p["C"] for p in used]
    alloc = Allocation(
        PowerLaw.fit(Cs, [p["n_star"] for p in used], "C", "N_opt"),
        PowerLaw.fit(Cs, [p["d_star"] for p in used], "C", "D_opt"),
    )
    for msg in msgs:
        warnings.warn(msg, FitWarning, stacklevel=2)
    return Approach2Fit(alloc, tuple(BudgetProfile(**p) for p in profiles), method, tuple(msgs))


def _budget_profile(
    log_n: np.ndarray, log_d: np.ndarray, log_c: np.ndarray, loss: np.ndarray, method: str
) -> tuple[dict, str | None]:
    """One budget's `BudgetProfile` fields (all but `used`) from its points' logs and losses, and
    the warning when its minimum is at an edge size (None otherwise)."""
    # average repeated sizes (seeds) so the interpolant is a function of N
    # (sizes within 1% count as one: read-off or rounded N would make the interpolant wild)
    frame = pd.DataFrame({"k": np.round(log_n / 0.01), "x": log_n, "d": log_d, "y": loss})
    frame = frame.groupby("k", as_index=False).mean()
    x, logd, y = frame["x"].to_numpy(), frame["d"].to_numpy(), frame["y"].to_numpy()
    xs, ls, cx, cy, par = isoflop_minimum(x, y, method)
    i = int(np.argmin(y))
    edge = i == 0 or i == len(x) - 1
    C = float(np.exp(log_c.mean()))
    msg = None
    if edge:
        msg = (
            f"Approach 2: at C = {C:.3g} the lowest loss is at the "
            f"{'smallest' if i == 0 else 'largest'} sampled size (N = {np.exp(x[i]):.3g}); N* "
            "there is only bounded from one side"
        )
    d_star = float(np.exp(np.interp(xs, x, logd)))
    profile = dict(
        C=C,
        N=np.exp(x),
        loss=y,
        n_star=float(np.exp(xs)),
        d_star=d_star,
        loss_star=ls,
        edge=edge,
        curve_n=np.exp(cx),
        curve_loss=cy,
        parabola=par,
    )
    return profile, msg


def _mark_used(profiles: list[dict], drop_edge: bool) -> list[str]:
    """Set each profile's `used` (edge budgets are left out when drop_edge and 2 interior ones
    remain); the warning when edge budgets had to be kept."""
    interior = [p for p in profiles if not p["edge"]]
    use_interior = drop_edge and len(interior) >= 2
    for p in profiles:
        p["used"] = (not p["edge"]) if use_interior else True
    if drop_edge and not use_interior and any(p["edge"] for p in profiles):
        return ["Approach 2: fewer than 2 budgets have an interior minimum; edge budgets were kept"]
    return []


@dataclass(frozen=True)
class Approach1Fit(_AllocationExponents):
    """Approach 1: the lower envelope of loss against C, and N_opt(C), D_opt(C) fitted along it."""

    allocation: Allocation
    envelope: pd.DataFrame  # columns C, N, D, loss (+ run_id with curves)
    source: str  # "curves" (training curves) or "final points" (one point per run)
    warnings: tuple[str, ...] = field(default=())


def _envelope_from_points(df: pd.DataFrame) -> pd.DataFrame:
    """Pareto front: per (numerically) equal C the lowest loss, kept when it beats every smaller
    C."""
    s = df.assign(_b=budget_labels(df["C"].to_numpy(), 1e-6)).sort_values(
        ["_b", "loss"], kind="stable"
    )
    s = s.groupby("_b", sort=True).head(1)
    best = s["loss"].cummin().shift(fill_value=np.inf)
    return s[s["loss"] < best][["C", "N", "D", "loss"]].reset_index(drop=True)


CurveRun = tuple[str, float, np.ndarray, np.ndarray]  # (run_id, N, ln flops ascending, ln loss)


def curve_runs(curves: pd.DataFrame) -> list[CurveRun]:
    """Every run's training curve as arrays, sorted by flops, positive values only; runs with < 2
    points left out. Built once, so a bootstrap can reuse the arrays of its resampled runs."""
    runs = []
    for _, g in curves.groupby("run_id", sort=False):
        g = g.sort_values("flops")
        g = g[(g["flops"] > 0) & (g["loss"] > 0)]
        if len(g) >= 2:
            runs.append(
                (
                    g["run_id"].iloc[0],
                    float(g["N"].iloc[0]),
                    np.log(g["flops"].to_numpy(float)),
                    np.log(g["loss"].to_numpy(float)),
                )
            )
    return runs


def point_curves(curves: pd.DataFrame) -> dict[str, list[CurveRun]]:
    """Each point's replicate curves (`curve_runs`), keyed by the run_id its point kept: the
    curves' point_id column where seeds were averaged into points, else every run a point."""
    runs = curve_runs(curves)
    if "point_id" not in curves:
        return {run[0]: [run] for run in runs}
    ids = curves.drop_duplicates("run_id")
    point_of = dict(zip(ids["run_id"], ids["point_id"], strict=True))
    out: dict[str, list[CurveRun]] = {}
    for run in runs:
        out.setdefault(point_of[run[0]], []).append(run)
    return out


def mean_curve(point_id: str, runs: list[CurveRun]) -> CurveRun:
    """One point's curve from its replicate runs: their mean loss (as the point's final loss is
    their mean) at the most densely logged run's flops, over the range every run covers
    (log-log interpolation; replicates of one point log the same steps, so it is exact there)."""
    if len(runs) == 1:
        return (point_id, *runs[0][1:])
    ref = max(runs, key=lambda r: len(r[2]))[2]
    lo, hi = max(r[2][0] for r in runs), min(r[2][-1] for r in runs)
    lx = ref[(ref >= lo) & (ref <= hi)]
    loss = np.mean([np.exp(np.interp(lx, r[2], r[3])) for r in runs], axis=0)
    return (point_id, runs[0][1], lx, np.log(loss))


def _envelope_from_curves(runs: list[CurveRun], n_grid: int) -> pd.DataFrame:
    """At each of n_grid log-spaced C values, the run with the lowest (log-log interpolated)
    loss."""
    if not runs:
        return pd.DataFrame(columns=["C", "N", "D", "loss", "run_id"])
    lo = min(lx[0] for _, _, lx, _ in runs)
    hi = max(lx[-1] for _, _, lx, _ in runs)
    grid = np.linspace(lo, hi, n_grid)
    table = np.full((len(runs), n_grid), np.inf)
    for k, (_, _, lx, ly) in enumerate(runs):
        inside = (grid >= lx[0]) & (grid <= lx[-1])
        table[k, inside] = np.interp(grid[inside], lx, ly)
    win = np.argmin(table, axis=0)
    ok = np.isfinite(table[win, np.arange(n_grid)])
    rows = []
    for j in np.flatnonzero(ok):
        run_id, n = runs[win[j]][:2]
        C = float(np.exp(grid[j]))
        rows.append(
            dict(
                C=C,
                N=n,
                D=C / (FLOPS_PER_PARAM_TOKEN * n),
                loss=float(np.exp(table[win[j], j])),
                run_id=run_id,
            )
        )
    return pd.DataFrame(rows)


def approach1(
    df: pd.DataFrame, curves: pd.DataFrame | list[CurveRun] | None = None, n_grid: int = 200
) -> Approach1Fit:
    """Approach 1 from training curves (Hoffmann's envelope) or, lacking curves, from final points.
    `curves`: metrics rows (run_id, flops, loss, N [, point_id]), each point's replicate runs
    averaged into one curve (`mean_curve`), or such curves as `CurveRun` arrays."""
    msgs = []
    if curves is not None and (
        isinstance(curves, list) or len(curves)
    ):  # arrays: even an empty list is curves
        runs = (
            [mean_curve(p, reps) for p, reps in point_curves(curves).items()]
            if isinstance(curves, pd.DataFrame)
            else curves
        )
        env, source = _envelope_from_curves(runs, n_grid), "curves"
        sizes = np.sort(df["N"].unique())
        inner = env[(env["N"] > sizes[0]) & (env["N"] < sizes[-1])] if len(sizes) > 2 else env
        if inner["N"].nunique() >= 2:
            env = inner  # the smallest/largest model winning only bounds N_opt from one side
        else:
            msgs.append(
                "Approach 1: the envelope is held by the smallest or largest model almost "
                "everywhere; N_opt(C) is poorly constrained (sample a wider range of sizes)"
            )
    else:
        env, source = _envelope_from_points(df), "final points"
    if len(env) < 2 or env["N"].nunique() < 2:
        raise FitError(
            "Approach 1 needs an envelope through at least 2 model sizes; found "
            f"{env['N'].nunique()} ({source})"
        )
    alloc = Allocation(
        PowerLaw.fit(env["C"], env["N"], "C", "N_opt"),
        PowerLaw.fit(env["C"], env["D"], "C", "D_opt"),
    )
    for msg in msgs:
        warnings.warn(msg, FitWarning, stacklevel=2)
    return Approach1Fit(alloc, env.reset_index(drop=True), source, tuple(msgs))


def _logs(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.log(df["N"].to_numpy(float)),
        np.log(df["D"].to_numpy(float)),
        np.log(df["loss"].to_numpy(float)),
    )


def approach3(
    df: pd.DataFrame, method: str = "fast", weights=None, fix_E: float | None = None
) -> ChinchillaFit:
    """Approach 3: L = E + A/N^alpha + B/D^beta by Huber(1e-3) on log residuals ('fast' or 'grid');
    fix_E holds E at a known value (e.g. the synthetic language's entropy floor)."""
    return fit_chinchilla(*_logs(df), method=method, weights=weights, fix_E=fix_E)


def kaplan(df: pd.DataFrame, weights=None) -> KaplanFit:
    """Kaplan's joint law L(N, D) fitted by least squares on log loss."""
    return fit_kaplan(*_logs(df), weights=weights)

"""Muennighoff et al. 2023's data-constrained law (arXiv:2305.16264) as a plug-in: loss when the
U_D unique training tokens are repeated for D/U_D epochs.

L = E + A/N'^alpha + B/D'^beta with effective data D' = U_D + U_D R*_D (1 - exp(-R_D/R*_D)),
R_D = D/U_D - 1 repeated epochs, and effective parameters N' = U_N + U_N R*_N (1 - exp(-R_N/R*_N)),
U_N = min(N, N_opt for U_D tokens under the base law), R_N = N/U_N - 1. The base law (E, A, B,
alpha, beta) is Approach 3 fitted to the single-epoch points (or given); R*_D and R*_N are then
fitted by Huber(1e-3) on log residuals. A repeated epoch is worth exp(-R/R*_D) of a fresh one, so
after 1 + R*_D epochs a further one adds less than 1/e of fresh data: repetition stops paying.
Applies when the points carry unique tokens (`--unique COL`); bootstrap intervals are of R*_D and
R*_N with the base law held at its full-data fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from scaling.analysis.laws.bootstrap import resample_counts, run_chunks
from scaling.analysis.laws.fit import LBFGS_OPTIONS, FitStatus, fit_chinchilla
from scaling.analysis.laws.forms import ChinchillaLaw
from scaling.analysis.laws.objectives import huber
from scaling.analysis.laws.registry import Draws, FitContext, Law, register
from scaling.analysis.laws.text import ci_text, interval_of, md_table, num
from scaling.errors import FitError

BOUNDS = ((1e-3, 1e4), (1e-3, 1e4))  # R*_D, R*_N: from "no value in repeats" to "as good as fresh"
# Muennighoff et al.'s start grid, np.linspace(0, 20, 4) per constant, without R* = 0 (undefined).
# On their C4 runs it ends at R*_D = 15.4, R*_N = 5.3; a start near 0 finds a second minimum
# (R*_D = 47, R*_N = 2.3) whose objective is 0.1% lower: the objective is flat along R*_D.
STARTS = (20 / 3, 40 / 3, 20.0)
NAMES = ("R_D_star", "R_N_star")


@dataclass(frozen=True)
class DataConstrainedLaw:
    """The base law and the two repetition constants."""

    base: ChinchillaLaw
    R_D_star: float
    R_N_star: float

    def unique_params(self, N, U_D) -> np.ndarray:
        """U_N = min(N, the compute-optimal N for U_D tokens under the base law)."""
        law = self.base
        g = (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / (law.alpha + law.beta))
        c6 = (g * np.asarray(U_D, float)) ** (1.0 / law.b)  # C/6 at which D_opt = U_D
        return np.minimum(np.asarray(N, float), g * c6**law.a)

    def effective(self, N, D, U_D) -> tuple[np.ndarray, np.ndarray]:
        """(N', D'): parameters and tokens counted at their value with repetition."""
        N, D = np.asarray(N, float), np.asarray(D, float)
        U_D = np.minimum(np.asarray(U_D, float), D)  # the unique tokens a run saw
        U_N = self.unique_params(N, U_D)
        R_D, R_N = D / U_D - 1, N / U_N - 1
        d_eff = U_D + U_D * self.R_D_star * (1 - np.exp(-R_D / self.R_D_star))
        n_eff = U_N + U_N * self.R_N_star * (1 - np.exp(-R_N / self.R_N_star))
        return n_eff, d_eff

    def predict(self, N, D, U_D) -> np.ndarray:
        return self.base.predict(*self.effective(N, D, U_D))

    @property
    def stops_paying(self) -> float:
        """Epochs after which a further epoch is worth less than 1/e of fresh data: 1 + R*_D."""
        return 1.0 + self.R_D_star

    def __repr__(self) -> str:
        b = self.base
        law = f"L = {b.E:.4g} + {b.A:.4g}/N'^{b.alpha:.3f} + {b.B:.4g}/D'^{b.beta:.3f}"
        return f"{law}; R*_D = {self.R_D_star:.3f}, R*_N = {self.R_N_star:.3f}"


@dataclass(frozen=True)
class DataConstrainedFit:
    law: DataConstrainedLaw
    objective: float  # sum of Huber(1e-3) of the log residuals
    status: FitStatus
    base_source: str  # "given" or e.g. "Approach 3 on 12 single-epoch points"


def _objective(x: np.ndarray, base: ChinchillaLaw, cols: tuple, weights: np.ndarray) -> float:
    N, D, U, log_loss = cols
    pred = DataConstrainedLaw(base, float(x[0]), float(x[1])).predict(N, D, U)
    return float(np.sum(weights * huber(np.log(pred) - log_loss)))


def _fit_constants(
    base: ChinchillaLaw, cols: tuple, weights: np.ndarray, starts: list[tuple[float, float]]
) -> tuple[np.ndarray, float, FitStatus]:
    """R*_D, R*_N by L-BFGS-B from every start; the best, its objective and how it stopped."""
    best = None
    for x0 in starts:
        r = minimize(
            _objective,
            x0,
            args=(base, cols, weights),
            method="L-BFGS-B",
            bounds=BOUNDS,
            options=LBFGS_OPTIONS,
        )
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    hit = any(np.isclose(v, b, rtol=1e-6).any() for v, b in zip(best.x, BOUNDS))
    status = (
        FitStatus.BOUND_HIT
        if hit
        else (FitStatus.CONVERGED if best.status in (0, 2) else FitStatus.MAX_ITER)
    )
    return best.x, float(best.fun), status


def fit_data_constrained(
    N,
    D,
    U_D,
    loss,
    base: ChinchillaLaw | None = None,
    method: str = "fast",
    fix_E: float | None = None,
) -> DataConstrainedFit:
    """Fit R*_D and R*_N with the base law given, or first fitted (Approach 3, `method`, `fix_E`)
    to the single-epoch points (D <= U_D)."""
    N, D, U_D, loss = (np.asarray(v, float) for v in (N, D, U_D, loss))
    if not (np.isfinite(U_D).all() and (U_D > 0).all()):
        raise FitError(
            "the unique-tokens column (--unique) has empty or non-positive values; "
            "give U_D for every point or filter those out (--query)"
        )
    source = "given"
    if base is None:
        single = D <= U_D * (1 + 1e-9)
        if single.sum() < 6 or np.unique(N[single]).size < 2:
            raise FitError(
                f"only {int(single.sum())} single-epoch point(s) (D <= U_D) to fit the "
                "base law on; it needs at least 6 over 2+ sizes"
            )
        base = fit_chinchilla(
            np.log(N[single]), np.log(D[single]), np.log(loss[single]), method=method, fix_E=fix_E
        ).law
        source = f"Approach 3 on {int(single.sum())} single-epoch points"
    if not (D > U_D * (1 + 1e-9)).any():
        raise FitError("no point repeats its data (every D <= U_D): R*_D cannot be fitted")
    cols = (N, D, U_D, np.log(loss))
    x, obj, status = _fit_constants(
        base, cols, np.ones(len(N)), [(a, b) for a in STARTS for b in STARTS]
    )
    return DataConstrainedFit(
        DataConstrainedLaw(base, float(x[0]), float(x[1])), obj, status, source
    )


class DataConstrained(Law):
    key, label, short, color = "data_constrained", "Data-constrained law", "DC", "tab:purple"
    order, allocates = 50, False

    def applies(self, df: pd.DataFrame) -> bool:
        return "U_D" in df

    def fit(self, ctx: FitContext) -> DataConstrainedFit:
        df = ctx.df
        return fit_data_constrained(
            df["N"], df["D"], df["U_D"], df["loss"], method=ctx.options.method, fix_E=ctx.fix_E
        )

    def residuals(self, ctx: FitContext, fit: Any) -> np.ndarray:
        df = ctx.df
        return np.log(fit.law.predict(df["N"], df["D"], df["U_D"])) - np.log(
            df["loss"].to_numpy(float)
        )

    def bootstrap(self, ctx: FitContext, fit: Any) -> Draws:
        """Refits of R*_D, R*_N on resampled points (seed + 5), the base law held fixed."""
        df, law = ctx.df, fit.law
        cols = tuple(df[c].to_numpy(float) for c in ("N", "D", "U_D")) + (
            np.log(df["loss"].to_numpy(float)),
        )
        counts = resample_counts(len(df), ctx.options.n_boot, ctx.options.seed + 5)
        start = [(law.R_D_star, law.R_N_star)]
        chunk = partial(_constants_chunk, start=start)
        draws, _ = run_chunks(chunk, law.base, cols, counts, ctx.options.n_jobs)
        return Draws({n: draws[:, i] for i, n in enumerate(NAMES)}, len(draws), len(draws))

    def extrapolate(self, ctx: FitContext, train: pd.DataFrame, preds: pd.DataFrame) -> float:
        """Refit (base law included) on the smaller budgets; mean |relative error| held out."""
        opt = ctx.options
        law = fit_data_constrained(
            train["N"], train["D"], train["U_D"], train["loss"], method=opt.method, fix_E=ctx.fix_E
        ).law
        p = law.predict(preds["N"], preds["D"], preds["U_D"])
        preds[self.key] = p
        return float(np.mean(np.abs(p / preds["loss"] - 1)))

    def to_json(self, study: Any, fit: Any) -> dict:
        law, base = fit.law, fit.law.base
        return {
            "R_D_star": law.R_D_star,
            "R_N_star": law.R_N_star,
            "objective": fit.objective,
            "status": fit.status.value,
            "formula": repr(law),
            "base": {
                "E": base.E,
                "A": base.A,
                "B": base.B,
                "alpha": base.alpha,
                "beta": base.beta,
                "source": fit.base_source,
            },
            "stops_paying_epochs": law.stops_paying,
            "ci": study.cis(self.key, NAMES),
            "flags": study.flags(self.key),
        }

    def cli_lines(self, study: Any, fit: Any) -> list[str]:
        cis = "  ".join(
            f"{n} {ci_text(study.ci(self.key, n))}" for n in NAMES if ci_text(study.ci(self.key, n))
        )
        return [
            f"{'Data-constr.':<11} {fit.law!r}",
            f"{'':<11} objective {fit.objective:.6g}, {fit.status.value}; base law: "
            f"{fit.base_source}; repetition stops paying after {fit.law.stops_paying:.1f} "
            "epochs" + (f"; {cis}" if cis else ""),
        ]

    def report_lines(self, study: Any, fit: Any, pct: int) -> list[str]:
        law = fit.law
        rows = [[n, num(getattr(law, n)), interval_of(study.ci(self.key, n), ".4g")] for n in NAMES]
        return (
            [
                "",
                (
                    f"**{self.label}** (Muennighoff et al. 2023) `{law!r}` (objective "
                    f"{fit.objective:.6g}, {fit.status.value}; base law: {fit.base_source})"
                ),
                "",
            ]
            + md_table(["parameter", "value", f"{pct}% interval"], rows)
            + [
                "",
                (
                    f"Repeating the data stops paying after **{law.stops_paying:.1f} epochs** "
                    "(1 + R*_D): a further epoch is then worth less than 1/e of fresh tokens."
                ),
            ]
        )

    def figures(self, study: Any, points: Any) -> list[Any]:
        return [loss_vs_epochs(study)]


def loss_vs_epochs(study: Any) -> Any:
    """Loss against epochs (D / U_D), coloured by N, with the fitted curve of every (N, U_D)
    measured at 2+ epoch counts, and where repetition stops paying (1 + R*_D epochs)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    from scaling.analysis.plots import COLOR, Plot, _figure, loss_axis

    fit, df = study.fits["data_constrained"], study.points
    law, epochs = fit.law, (df["D"] / df["U_D"]).to_numpy(float)
    fig, (ax,) = _figure()
    grid = np.geomspace(min(epochs.min(), 1.0), max(epochs.max(), 2 * law.stops_paying), 200)
    cmap = colormaps["viridis"]
    norm = LogNorm(df["N"].min(), max(df["N"].max(), 1.01 * df["N"].min()))
    curves = {}
    for (n, u), part in df.groupby(["N", "U_D"], sort=True):
        ax.scatter(part["D"] / part["U_D"], part["loss"], s=10, color=cmap(norm(n)), zorder=3)
        if part["D"].nunique() > 1:
            curves[(n, u)] = law.predict(n, grid * u, u)
            ax.plot(grid, curves[(n, u)], color=cmap(norm(n)), lw=0.8, alpha=0.7)
    ax.axvline(law.stops_paying, color=COLOR["data_constrained"], ls="--", lw=1.4)
    ax.set_xscale("log")
    ax.set_xlabel("epochs (D / U_D)")
    ax.set_ylabel(loss_axis(study))
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label="N (parameters)")
    handles = [
        Line2D([], [], color="grey", lw=0.8),
        Line2D([], [], color=COLOR["data_constrained"], ls="--"),
    ]
    labels = ["fitted law per (N, U_D)", f"stops paying: {law.stops_paying:.1f} epochs (1 + R*_D)"]
    ax.legend(handles, labels, fontsize=7)
    ax.set_title(
        f"Data-constrained law: R*_D = {law.R_D_star:.2f}, R*_N = {law.R_N_star:.2f}", fontsize=9
    )
    data = {"epochs": epochs, "loss": df["loss"].to_numpy(float), "grid": grid, "curves": curves}
    return Plot(
        "data_constrained",
        "Loss against epochs of repeated data, the data-constrained law's curves and where "
        "repeating stops paying",
        fig,
        {**data, "stops_paying": law.stops_paying},
    )


def _constants_chunk(base, cols, counts, start):
    """R*_D, R*_N refitted on each row of counts (one chunk of the bootstrap, in one process)."""
    return np.array([_fit_constants(base, cols, w, start)[0] for w in counts]), None


register(DataConstrained())

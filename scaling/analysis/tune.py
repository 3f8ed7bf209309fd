"""Hyperparameters that scale with N: the best learning rate of each size from an lr sweep, the
power laws lr*(N) (and B*(C) where the batch was swept), the file that stores them, and the rule
`train.lr=auto` applies (docs/tuning.md).

Pure numpy (no torch, no plotting), behind `scaling tune` (scaling/analysis/tunecli.py); the file it
writes and the rules that read it are scaling/tuned.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scaling.errors import FitError

C_REF = 1e12  # B*(C) = coef * (C / C_REF)^exponent
NOISE = 0.01  # least relative loss noise assumed per point: the top of the reference study's
# seed spread at 1e12 FLOPs, 0.2-1.1% of the loss (analysis/reference/seeds/summary.md)
# The local quadratic uses the best lr and WINDOW sampled lrs on each side. One: measured loss
# against lr is asymmetric (steep past the best lr, where training turns unstable), so a wider
# window pulls the vertex toward the gentle side, off the lowest losses (docs/tuning.md).
WINDOW = 1


@dataclass(frozen=True)
class LrMinimum:
    """The best peak lr of one (size, batch): the vertex of a quadratic in log lr fitted to the
    losses around the lowest one, with a bootstrap interval; `edge` says when the lowest loss sat at
    the smallest ("low") or largest ("high") lr sampled, so the true best lies beyond it."""

    lr: float
    lo: float
    hi: float
    loss: float  # the quadratic's value at its vertex (the loss at the best lr)
    edge: str  # "" | "low" | "high"
    n_points: int  # sampled lrs in the quadratic's window
    log_samples: np.ndarray = field(repr=False, compare=False)  # bootstrap draws of log lr*


@dataclass(frozen=True)
class PowerLaw:
    """y = coef * (x / ref)^exponent, with bootstrap intervals of coef and exponent."""

    coef: float
    exponent: float
    ref: float
    coef_interval: tuple[float, float]
    exponent_interval: tuple[float, float]

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.coef * (np.asarray(x, dtype=float) / self.ref) ** self.exponent


def _quadratic_vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Vertex (x*, y*) of the least-squares quadratic through (x, y), clipped to [x.min, x.max];
    a fit without positive curvature gives the lowest point instead."""
    a, b, c = np.polyfit(x, y, 2)
    if a <= 0:
        i = int(np.argmin(y))
        return float(x[i]), float(y[i])
    xv = float(np.clip(-b / (2 * a), x.min(), x.max()))
    return xv, float(a * xv * xv + b * xv + c)


def find_lr_minimum(
    lrs: np.ndarray,
    losses: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    noise: float = NOISE,
    seed: int = 0,
) -> LrMinimum:
    """The best lr from the losses of runs that differ only in lr (several runs per lr are seeds).

    A quadratic in log lr is fitted to the mean loss of the lowest lr point and up to WINDOW lrs on
    either side. Its interval is a parametric bootstrap: new losses drawn around the fitted curve
    with the largest of the residual spread, the seeds' spread and `noise` * loss, refitted
    `n_boot` times. Runs with a non-finite loss (diverged) are left out.
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    keep = np.isfinite(losses) & (lrs > 0)
    lrs, losses = lrs[keep], losses[keep]
    grid = np.unique(lrs)
    if grid.size < 3:
        raise FitError(
            f"{grid.size} learning rate(s) with a finite loss; the lr minimum needs 3 or more, "
            "so sweep train.lr over at least 3 values (e.g. sweep=lr)"
        )
    x = np.log(grid)
    y = np.array([losses[lrs == v].mean() for v in grid])
    seed_var = [
        losses[lrs == v].var(ddof=1) / (lrs == v).sum() for v in grid if (lrs == v).sum() > 1
    ]
    i = int(np.argmin(y))
    lo_i, hi_i = max(0, i - WINDOW), min(grid.size, i + WINDOW + 1)
    if hi_i - lo_i < 3:  # at an edge: take the 3 nearest points
        lo_i, hi_i = (0, 3) if i < grid.size / 2 else (grid.size - 3, grid.size)
    xw, yw = x[lo_i:hi_i], y[lo_i:hi_i]
    coeffs = np.polyfit(xw, yw, 2)
    fitted = np.polyval(coeffs, xw)
    sigmas = [noise * float(y[i])]
    if xw.size > 3:
        sigmas.append(math.sqrt(float(((yw - fitted) ** 2).sum()) / (xw.size - 3)))
    if seed_var:
        sigmas.append(math.sqrt(float(np.mean(seed_var))))
    sigma = max(sigmas)
    xv, yv = _quadratic_vertex(xw, yw)
    rng = np.random.default_rng(seed)
    draws = fitted + sigma * rng.standard_normal((n_boot, xw.size))
    samples = np.array([_quadratic_vertex(xw, d)[0] for d in draws]) if n_boot else np.array([xv])
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    edge = "low" if i == 0 else "high" if i == grid.size - 1 else ""
    return LrMinimum(
        lr=math.exp(xv),
        lo=math.exp(lo),
        hi=math.exp(hi),
        loss=yv,
        edge=edge,
        n_points=int(xw.size),
        log_samples=samples,
    )


def fit_power_law(
    x: np.ndarray, log_samples: list[np.ndarray], ref: float, *, level: float = 0.95, seed: int = 0
) -> PowerLaw:
    """log y = log coef + exponent * log(x / ref) by least squares on the central values (the
    medians of `log_samples`). Its intervals refit each joint draw of the samples plus a normal
    draw of the points' scatter about the line (its residual spread, with 3 or more points), so
    sizes that disagree with the law widen them."""
    lx = np.log(np.asarray(x, dtype=float) / ref)
    if np.unique(lx).size < 2:
        raise FitError(
            "a power law needs 2 or more distinct sizes with an interior minimum; "
            "widen the sweep's lr range or add sizes"
        )
    central = np.array([np.median(s) for s in log_samples])
    slope, icpt = np.polyfit(lx, central, 1)
    resid = central - (icpt + slope * lx)
    scatter = math.sqrt(float((resid**2).sum()) / (lx.size - 2)) if lx.size > 2 else 0.0
    n = min(s.size for s in log_samples)
    rng = np.random.default_rng(seed)
    draws = np.array([s[:n] for s in log_samples]).T + scatter * rng.standard_normal((n, lx.size))
    boots = np.array([np.polyfit(lx, d, 1) for d in draws])
    tail = 100 * (1 - level) / 2
    e_int = np.percentile(boots[:, 0], [tail, 100 - tail])
    c_int = np.exp(np.percentile(boots[:, 1], [tail, 100 - tail]))
    return PowerLaw(
        coef=math.exp(icpt),
        exponent=float(slope),
        ref=ref,
        coef_interval=(float(c_int[0]), float(c_int[1])),
        exponent_interval=(float(e_int[0]), float(e_int[1])),
    )


# ---------------------------------------------------------------- the tuned file and `auto`


def law_dict(law: PowerLaw, **extra: Any) -> dict:
    """A power law as the tuned file stores it."""
    return {
        "coef": law.coef,
        "exponent": law.exponent,
        "ref": law.ref,
        "coef_interval": list(law.coef_interval),
        "exponent_interval": list(law.exponent_interval),
        **extra,
    }


def minimum_row(size: str, N: float, batch: int, D: float, m: LrMinimum) -> dict:
    """One size's minimum as the tuned file and the table store it."""
    row = {"size": size, "N": N, "batch_size": batch, "D": D}
    row.update({k: v for k, v in asdict(m).items() if k != "log_samples"})
    return row

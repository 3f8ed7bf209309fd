"""Intervals from the bootstrap's resample arrays: percentile or BCa, and the flags that say when
an interval is weak (its own estimate outside it, or built from too few resamples).

BCa (Efron 1987) needs the bias correction z0 (from the resamples) and the acceleration (from a
jackknife: one leave-one-out refit per point, or per run for training curves). scipy's
`scipy.stats.bootstrap(method="BCa")` computes it only by resampling the data itself through a
statistic; it has no public entry that takes resamples a fit has already produced, so the standard
formula is written out here on top of the normal cdf (`scipy.special.ndtr`, `ndtri`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri  # the standard normal's cdf and its inverse

from scaling.analysis.laws.bootstrap import interval as percentile  # the percentile interval
from scaling.errors import ConfigError, FitError, FitWarning

CI_METHODS = ("percentile", "bca")
MIN_USED = 0.8  # an interval built from fewer than this share of the resamples is flagged


def acceleration(jack) -> float:
    """BCa acceleration from jackknife (leave-one-out) estimates; NaN with fewer than 3 finite."""
    j = np.asarray(jack, float)
    j = j[np.isfinite(j)]
    if j.size < 3:
        return float("nan")
    d = j.mean() - j
    den = 6.0 * float(np.sum(d**2)) ** 1.5
    return float(np.sum(d**3) / den) if den > 0 else 0.0


def bca(samples, estimate: float, jack, level: float = 0.95) -> tuple[float, float]:
    """BCa interval of the finite samples around `estimate`; NaN, NaN when undefined (no samples,
    every sample on one side of the estimate, or no jackknife)."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    acc = acceleration(jack)
    if s.size == 0 or not np.isfinite(estimate) or not np.isfinite(acc):
        return float("nan"), float("nan")
    below = (np.sum(s < estimate) + 0.5 * np.sum(s == estimate)) / s.size
    if not 0 < below < 1:
        return float("nan"), float("nan")
    z0 = ndtri(below)
    z = ndtri(np.array([(1 - level) / 2, (1 + level) / 2]))
    q = ndtr(z0 + (z0 + z) / (1 - acc * (z0 + z)))
    lo, hi = np.percentile(s, 100 * q)
    return float(lo), float(hi)


def interval(
    samples,
    level: float = 0.95,
    method: str = "percentile",
    estimate: float = float("nan"),
    jack=None,
) -> tuple[float, float]:
    """The interval of `method`; BCa needs the estimate and its jackknife values."""
    if method not in CI_METHODS:
        raise ConfigError(f"interval method {method!r}: choose one of {', '.join(CI_METHODS)}")
    if method == "bca":
        return bca(samples, estimate, jack if jack is not None else (), level)
    return percentile(samples, level)


def flags(
    estimates: dict[str, float],
    intervals: dict[str, tuple[float, float]],
    used: int,
    total: int,
    method: str = "percentile",
) -> list[str]:
    """One line per weakness of a law's intervals: an estimate outside its own interval, an interval
    that could not be built, and intervals built from fewer than 80% of the resamples."""
    out = []
    if total > 0 and used == 0:
        return [f"no interval: none of the {total} resample refits converged cleanly"]
    if total > 0 and used < MIN_USED * total:
        out.append(
            f"intervals from {used} of {total} resamples ({used / total:.0%}, under "
            f"{MIN_USED:.0%}): the failed refits are left out, so the intervals may be "
            "too narrow"
        )
    for name, value in estimates.items():
        lo, hi = intervals.get(name, (float("nan"), float("nan")))
        if not np.isfinite(value):
            continue
        if not (np.isfinite(lo) and np.isfinite(hi)):
            if method == "bca" and used > 0:
                out.append(f"{name}: no BCa interval (every resample on one side of the estimate)")
            continue
        if not lo <= value <= hi:
            out.append(f"{name} = {value:.4g} lies outside its own interval [{lo:.4g}, {hi:.4g}]")
    return out


# ------------------------------------------------------------------------------------- jackknife


def _leave_one_out(n: int):
    for i in range(n):
        w = np.ones(n)
        w[i] = 0.0
        yield i, w


def jackknife_chinchilla(
    df: pd.DataFrame, theta, fix_E: float | None = None
) -> dict[str, np.ndarray]:
    """Approach 3 refitted without each point in turn (weight 0), from the full-data optimum."""
    from scaling.analysis.laws.fit import polish_chinchilla
    from scaling.analysis.laws.forms import ChinchillaLaw

    log_n, log_d, log_loss = (np.log(df[c].to_numpy(float)) for c in ("N", "D", "loss"))
    theta = np.array(theta, float)
    fixed_e = None if fix_E is None else float(np.log(fix_E))
    laws = []
    for _, w in _leave_one_out(len(df)):
        th, _, _ = polish_chinchilla(theta, log_n, log_d, log_loss, weights=w, fixed_e=fixed_e)
        laws.append(ChinchillaLaw.from_theta(th))
    names = ("E", "A", "B", "alpha", "beta", "a", "b")
    return {n: np.array([getattr(law, n) for law in laws]) for n in names}


def jackknife_kaplan(df: pd.DataFrame, law) -> dict[str, np.ndarray]:
    """Kaplan's law refitted without each point in turn, started from the full-data fit."""
    from scaling.analysis.laws.fit import fit_kaplan

    log_n, log_d, log_loss = (np.log(df[c].to_numpy(float)) for c in ("N", "D", "loss"))
    p0 = np.array([law.alpha_N, law.alpha_D, np.log(law.N_c), np.log(law.D_c)])
    names = ("alpha_N", "alpha_D", "N_c", "D_c", "a", "b")
    out = {n: np.full(len(df), np.nan) for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for i, w in _leave_one_out(len(df)):
            try:
                fit = fit_kaplan(log_n, log_d, log_loss, weights=w, starts=p0[None, :]).law
            except FitError:
                continue
            for n in names:
                out[n][i] = getattr(fit, n)
    return out


def jackknife_allocation(df: pd.DataFrame, refit) -> dict[str, np.ndarray]:
    """(a, b) of `refit(frame without row i)` for every row i; NaN where the refit fails."""
    ab = np.full((len(df), 2), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for i in range(len(df)):
            try:
                f = refit(df.drop(index=df.index[i]))
                ab[i] = f.a, f.b
            except FitError:
                pass
    return {"a": ab[:, 0], "b": ab[:, 1]}

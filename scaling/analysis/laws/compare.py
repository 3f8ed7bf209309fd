"""Comparison of the approaches: the a/b table with intervals, loss elasticities at the median
point, an extrapolation check on the largest-compute points, and a verdict in plain words."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling.analysis.laws import registry
from scaling.analysis.laws.approaches import budget_labels
from scaling.analysis.laws.registry import FitContext
from scaling.errors import FitError, FitWarning


@dataclass(frozen=True)
class AllocationRow:
    """One line of the comparison table: N_opt ~ C^a, D_opt ~ C^b from one approach."""

    approach: str
    a: float
    a_ci: tuple[float, float]
    b: float
    b_ci: tuple[float, float]
    status: str = "converged"
    weak: str = ""  # why a's interval deserves care (its flags), appended to a resolved verdict


@dataclass(frozen=True)
class Extrapolation:
    """Each law refitted without the largest-compute points and scored on them."""

    holdout_C_min: float  # points with C >= this were held out
    n_train: int
    n_holdout: int
    errors: dict[
        str, float
    ]  # law -> mean |relative error| of loss on held-out points (approach2: |ln N* ratio|)
    predictions: pd.DataFrame  # held-out N, D, C, loss and one predicted-loss column per law


@dataclass(frozen=True)
class Comparison:
    table: tuple[AllocationRow, ...]
    elasticities: dict[
        str, dict
    ]  # law -> {"N": dlogL/dlogN, "D": ..., "N_ci", "D_ci", "at": {"N", "D"}}
    extrapolation: Extrapolation | None
    verdict: str
    notes: tuple[str, ...] = field(default=())


def holdout_mask(df: pd.DataFrame, budget_tol: float = 0.05, frac: float = 0.2) -> np.ndarray:
    """The points to hold out: the largest budget when there are >= 3 budgets, else the top `frac`
    by C."""
    labels = budget_labels(df["C"].to_numpy(), budget_tol)
    if np.unique(labels).size >= 3 and np.unique(labels).size < len(df):
        return labels == labels.max()
    return df["C"].to_numpy() >= np.quantile(df["C"].to_numpy(), 1 - frac)


def extrapolation_check(ctx: FitContext) -> Extrapolation | None:
    """Refit every law that takes part (`Law.extrapolate`: Approach 3 with the same fixed E, if
    any, Kaplan, Approach 2) on the smaller budgets; its error on the held-out largest."""
    df = ctx.df
    hold = holdout_mask(df, ctx.options.budget_tol)
    train, test = df[~hold], df[hold]
    if len(test) == 0 or train["N"].nunique() < 2 or len(train) < 8:
        return None
    cols = ["N", "D", "C", "loss"] + [c for c in ("U_D",) if c in df]  # U_D: repeated data
    preds = test[cols].reset_index(drop=True).copy()
    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for law in registry.laws():
            if not law.applies(df):
                continue
            try:
                error = law.extrapolate(ctx, train, preds)
            except FitError:
                continue
            if error is not None:
                errors[law.key] = error
    return Extrapolation(float(test["C"].min()), len(train), len(test), errors, preds)


EQUAL_BAND = 0.05  # "equal growth" only when a's whole interval lies inside 0.5 +- this


def row_verdict(r: AllocationRow, level: float = 0.95, band: float = EQUAL_BAND) -> str:
    """One approach's verdict: N grows faster, D grows faster, equal growth (interval inside
    0.5 +- band), or not resolved; a bound-hit or interval-free fit gets only the reason."""
    if r.status != "converged":
        return f"no verdict: the fit stopped at {r.status} (a = {r.a:.3f} is not a clean optimum)"
    lo, hi = r.a_ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"no verdict: a = {r.a:.3f} has no interval (no bootstrap, or no resample refitted)"
    pct = int(round(100 * level))
    ci = f"a = {r.a:.3f}, {pct}% CI [{lo:.3f}, {hi:.3f}]"
    weak = f" [flagged: {r.weak}]" if r.weak else ""
    if 0.5 - band <= lo and hi <= 0.5 + band:
        return f"equal growth ({ci} inside 0.5 +- {band:g}){weak}"
    if lo > 0.5:
        return f"N grows faster ({ci} above 0.5){weak}"
    if hi < 0.5:
        return f"D grows faster ({ci} below 0.5){weak}"
    return f"not resolved: the interval [{lo:.3f}, {hi:.3f}] spans both (a = {r.a:.3f})"


def agreement(rows: list[AllocationRow]) -> str:
    """The Chinchilla approaches' spread in a, as disagreement; whether their intervals overlap."""
    if len(rows) < 2:
        return ""
    lo_r, hi_r = min(rows, key=lambda r: r.a), max(rows, key=lambda r: r.a)
    text = (
        f"The Chinchilla approaches disagree by up to {hi_r.a - lo_r.a:.3f} in a "
        f"({lo_r.approach} {lo_r.a:.3f} to {hi_r.approach} {hi_r.a:.3f})"
    )
    cis = [r for r in rows if np.isfinite(r.a_ci[0]) and np.isfinite(r.a_ci[1])]
    if len(cis) < 2:
        return text + "; too few intervals to say whether they overlap."
    lo, hi = max(r.a_ci[0] for r in cis), min(r.a_ci[1] for r in cis)
    names = ", ".join(r.approach for r in cis)
    if lo <= hi:
        return text + f"; the intervals of {names} overlap on [{lo:.3f}, {hi:.3f}]."
    return text + f"; the intervals of {names} do not all overlap."


def verdict(rows: tuple[AllocationRow, ...], level: float = 0.95, band: float = EQUAL_BAND) -> str:
    """Which of N and D should grow faster with compute, per approach, saying only what a's
    interval supports (see `row_verdict`), then how far the Chinchilla approaches disagree."""
    good = [r for r in rows if np.isfinite(r.a)]
    if not good:
        return "No approach produced an allocation exponent."
    parts = [f"{r.approach}: {row_verdict(r, level, band)}" for r in good]
    tail = agreement([r for r in good if r.approach != "kaplan"])
    return "; ".join(parts) + "." + (" " + tail if tail else "")

"""Comparison of the approaches: the a/b table with intervals, loss elasticities at the median
point, an extrapolation check on the largest-compute points, and a verdict in plain words."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scaling.errors import FitError, FitWarning
from scaling.laws.approaches import approach2, approach3, budget_labels, kaplan


@dataclass(frozen=True)
class AllocationRow:
    """One line of the comparison table: N_opt ~ C^a, D_opt ~ C^b from one approach."""

    approach: str
    a: float
    a_ci: tuple[float, float]
    b: float
    b_ci: tuple[float, float]
    status: str = "converged"


@dataclass(frozen=True)
class Extrapolation:
    """Each law refitted without the largest-compute points and scored on them."""

    holdout_C_min: float  # points with C >= this were held out
    n_train: int
    n_holdout: int
    errors: dict[str, float]  # law -> mean |relative error| of loss on held-out points (approach2: |ln N* ratio|)
    predictions: pd.DataFrame  # held-out N, D, C, loss and one predicted-loss column per law


@dataclass(frozen=True)
class Comparison:
    table: tuple[AllocationRow, ...]
    elasticities: dict[str, dict]  # law -> {"N": dlogL/dlogN, "D": ..., "N_ci", "D_ci", "at": {"N", "D"}}
    extrapolation: Extrapolation | None
    verdict: str
    notes: tuple[str, ...] = field(default=())


def holdout_mask(df: pd.DataFrame, budget_tol: float = 0.05, frac: float = 0.2) -> np.ndarray:
    """The points to hold out: the largest budget when there are >= 3 budgets, else the top `frac` by C."""
    labels = budget_labels(df["C"].to_numpy(), budget_tol)
    if np.unique(labels).size >= 3 and np.unique(labels).size < len(df):
        return labels == labels.max()
    return df["C"].to_numpy() >= np.quantile(df["C"].to_numpy(), 1 - frac)


def extrapolation_check(df: pd.DataFrame, method: str = "fast", budget_tol: float = 0.05,
                        approach2_method: str = "akima", fix_E: float | None = None) -> Extrapolation | None:
    """Refit Approach 3 (with the same fixed E, if any), Kaplan and Approach 2 on the smaller budgets;
    error on the held-out largest."""
    hold = holdout_mask(df, budget_tol)
    train, test = df[~hold], df[hold]
    if len(test) == 0 or train["N"].nunique() < 2 or len(train) < 8:
        return None
    preds = test[["N", "D", "C", "loss"]].reset_index(drop=True).copy()
    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for name, fitter in (("approach3", lambda: approach3(train, method, fix_E=fix_E)), ("kaplan", lambda: kaplan(train))):
            try:
                law = fitter().law
            except FitError:
                continue
            p = law.predict(preds["N"], preds["D"])
            preds[name] = p
            errors[name] = float(np.mean(np.abs(p / preds["loss"] - 1)))
        try:  # Approach 2 predicts N* at the held-out budget; compare with the one measured there
            fit_train = approach2(train, approach2_method, budget_tol)
            fit_test = approach2(df, approach2_method, budget_tol)
            top = max((b for b in fit_test.budgets if b.used), key=lambda b: b.C, default=None)
            if top is not None and top.C >= test["C"].min() * 0.99:
                errors["approach2"] = float(abs(np.log(fit_train.allocation.n_opt(top.C) / top.n_star)))
        except FitError:
            pass
    return Extrapolation(float(test["C"].min()), len(train), len(test), errors, preds)


def verdict(rows: tuple[AllocationRow, ...], level: float = 0.95) -> str:
    """Which of N and D should grow faster with compute, and whether a differs from 0.5 beyond its interval."""
    good = [r for r in rows if np.isfinite(r.a)]
    if not good:
        return "No approach produced an allocation exponent."
    pct = int(round(100 * level))
    parts = []
    for r in good:
        lo, hi = r.a_ci
        if np.isfinite(lo) and np.isfinite(hi):
            if lo > 0.5:
                s = f"N should grow faster than D (a = {r.a:.3f}, {pct}% CI [{lo:.3f}, {hi:.3f}] above 0.5)"
            elif hi < 0.5:
                s = f"D should grow faster than N (a = {r.a:.3f}, {pct}% CI [{lo:.3f}, {hi:.3f}] below 0.5)"
            else:
                s = f"N and D should grow at the same rate (a = {r.a:.3f}, {pct}% CI [{lo:.3f}, {hi:.3f}] contains 0.5)"
        else:
            s = f"a = {r.a:.3f} ({'N' if r.a > 0.5 else 'D'} grows faster; no interval)"
        if r.status != "converged":
            s += f" [fit status: {r.status}]"
        parts.append(f"{r.approach}: {s}")
    chin = [r for r in good if r.approach != "kaplan"]
    spread = (max(r.a for r in chin) - min(r.a for r in chin)) if len(chin) > 1 else 0.0
    tail = f" The Chinchilla approaches agree within {spread:.3f} in a." if len(chin) > 1 else ""
    return "; ".join(parts) + "." + tail

"""Bootstrap over points: refit every law on resampled data and report percentile intervals.

A resample is represented by per-point counts used as weights (identical to refitting on the
resampled rows, cheaper). Approach 3 and Kaplan refits start from the full-data optimum, all
resamples at once (batched Newton / Levenberg-Marquardt steps), and are polished to tight
tolerances (a fixed E stays fixed in every resample); chunks run in forked processes (`n_jobs`,
default every core). Approach 2 resamples within each compute budget (an IsoFLOP profile keeps
its shape), Approach 1 resamples points, or whole runs when it works from training curves. Seeds
fix everything: same seed, same samples, whatever n_jobs.
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pandas as pd

from scaling.analysis.laws._blas import single_thread_blas
from scaling.analysis.laws._parallel import resolve_jobs, run_forked
from scaling.analysis.laws.approaches import approach1, mean_curve, point_curves
from scaling.analysis.laws.fastboot import Approach2Arrays, envelope_slopes
from scaling.analysis.laws.fit import (
    FitStatus,
    fit_kaplan,
    kaplan_batch,
    polish_chinchilla,
    polish_chinchilla_batch,
)
from scaling.errors import FitError, FitWarning


def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) counts of each point in each resample (rows sum to n)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    return np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)


def interval(samples, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite samples (NaN, NaN if none)."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(s, [q, 100 - q])
    return float(lo), float(hi)


def _with_replicates(counts, replicates, n_boot: int, seed: int, log: bool) -> np.ndarray:
    """Rows [counts | each point's replicates resampled within it, their mean loss (its log where
    the fit works in log loss)], or counts alone without replicates; `_split_rows` undoes it."""
    if replicates is None:
        return counts
    means = replicate_means(replicates, n_boot, seed + 4)
    return np.hstack([counts, np.log(means) if log else means])


def _split_rows(counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(counts, each row's own point losses or None) of rows built by `_with_replicates`."""
    return counts[:, :n], (counts[:, n:] if counts.shape[1] > n else None)


def _chinchilla_chunk(theta0, logs, counts, fixed_e=None):
    counts, row_ll = _split_rows(counts, len(logs[0]))
    ll = logs[2] if row_ll is None else row_ll
    with single_thread_blas():
        out, ok, vanished = polish_chinchilla_batch(
            theta0, logs[0], logs[1], ll, counts, fixed_e=fixed_e
        )
        # rows the batched Newton steps could not settle: L-BFGS-B (a vanished E stays unconverged)
        for i in np.flatnonzero(~ok & ~vanished):
            theta, _, status = polish_chinchilla(
                theta0,
                logs[0],
                logs[1],
                ll if row_ll is None else ll[i],
                weights=counts[i],
                fixed_e=fixed_e,
            )
            out[i], ok[i] = theta, status is FitStatus.CONVERGED
    return out, ok


def _kaplan_chunk(p0, logs, counts):
    counts, row_ll = _split_rows(counts, len(logs[0]))
    ll = logs[2] if row_ll is None else row_ll
    with single_thread_blas():
        out, ok = kaplan_batch(p0, logs[0], logs[1], ll, counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for i in np.flatnonzero(~ok):  # rows the batched solver could not settle: one by one
            f = fit_kaplan(
                logs[0],
                logs[1],
                ll if row_ll is None else ll[i],
                weights=counts[i],
                starts=p0[None, :],
            )
            law = f.law
            out[i] = (law.alpha_N, law.alpha_D, np.log(law.N_c), np.log(law.D_c))
            ok[i] = f.ok
    return out, ok


MIN_PARALLEL = 100  # resamples below which one process is faster than starting others


def run_chunks(func, start, logs, counts, n_jobs: int | None):
    """func(start, logs, rows of counts) -> (samples, ok) over contiguous chunks of the resamples,
    in forked processes; every row's result depends on that row alone, so the samples do not
    depend on n_jobs. The chunk functions keep BLAS to one thread (no oversubscription)."""
    n_jobs = min(resolve_jobs(n_jobs), max(1, len(counts) // (MIN_PARALLEL // 2)))
    if n_jobs == 1:
        return func(start, logs, counts)
    parts = run_forked([partial(func, start, logs, c) for c in np.array_split(counts, n_jobs)])
    ok = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return np.concatenate([p[0] for p in parts]), ok


def _logs(df: pd.DataFrame):
    return (
        np.log(df["N"].to_numpy(float)),
        np.log(df["D"].to_numpy(float)),
        np.log(df["loss"].to_numpy(float)),
    )


def bootstrap_chinchilla(
    df: pd.DataFrame,
    theta0,
    n_boot: int = 1000,
    seed: int = 0,
    n_jobs: int | None = 1,
    fix_E: float | None = None,
    replicates: list[np.ndarray] | None = None,
):
    """Approach 3 refits on n_boot resamples: (theta samples (n_boot, 5) as (a, b, e, alpha, beta),
    converged mask). fix_E: E held at this value in every refit (e = log fix_E in every sample).
    replicates: each point's replicate losses (e.g. seeds; df's loss is their mean): every resample
    then also resamples them within each point, on top of the same resampled points."""
    counts = resample_counts(len(df), n_boot, seed)
    theta0 = np.array(theta0, float)
    kwargs = {}
    if fix_E is not None:
        theta0[2] = np.log(fix_E)
        kwargs["fixed_e"] = float(theta0[2])
    counts = _with_replicates(counts, replicates, n_boot, seed, log=True)
    return run_chunks(partial(_chinchilla_chunk, **kwargs), theta0, _logs(df), counts, n_jobs)


def replicate_means(replicates: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, points) mean loss of each point's replicates resampled with replacement."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(replicates)))
    for j, reps in enumerate(replicates):
        reps = np.asarray(reps, float)
        if len(reps) == 1:
            out[:, j] = reps[0]
        else:
            out[:, j] = reps[rng.integers(0, len(reps), (n_boot, len(reps)))].mean(1)
    return out


def bootstrap_kaplan(
    df: pd.DataFrame,
    law,
    n_boot: int = 1000,
    seed: int = 0,
    n_jobs: int | None = 1,
    replicates: list[np.ndarray] | None = None,
):
    """Kaplan refits: (samples (n_boot, 4) as (alpha_N, alpha_D, ln N_c, ln D_c), converged
    mask). replicates: as `bootstrap_chinchilla`'s (resampled within each point as well)."""
    counts = resample_counts(len(df), n_boot, seed + 1)
    p0 = np.array([law.alpha_N, law.alpha_D, np.log(law.N_c), np.log(law.D_c)])
    counts = _with_replicates(counts, replicates, n_boot, seed, log=True)
    return run_chunks(_kaplan_chunk, p0, _logs(df), counts, n_jobs)


def bootstrap_approach2(
    df: pd.DataFrame,
    n_boot: int = 200,
    seed: int = 0,
    replicates: list[np.ndarray] | None = None,
    **kwargs,
) -> np.ndarray:
    """(n_boot, 2) samples of (a, b), resampling points within each budget; NaN where a refit fails.
    replicates: as `bootstrap_chinchilla`'s (resampled within each point as well). kwargs:
    `approach2`'s method, budget_tol, drop_edge, min_points, and n_jobs (processes)."""
    rng = np.random.default_rng(seed + 2)
    tol, n_jobs = kwargs.pop("budget_tol", 0.05), kwargs.pop("n_jobs", 1)
    N, D, C, loss = (df[c].to_numpy(float) for c in ("N", "D", "C", "loss"))
    arrays = Approach2Arrays(N, D, C, loss, budget_tol=tol)
    counts = np.zeros((n_boot, len(df)))
    for i in range(n_boot):  # the draws of the frame-based refits, in their order
        idx = np.concatenate([rng.choice(g, size=len(g)) for g in arrays.groups])
        counts[i] = np.bincount(idx, minlength=len(df))
    counts = _with_replicates(counts, replicates, n_boot, seed, log=False)
    return run_chunks(partial(_approach2_chunk, **kwargs), arrays, None, counts, n_jobs)[0]


def _approach2_chunk(arrays: Approach2Arrays, _, counts, **kwargs):
    counts, loss = _split_rows(counts, len(arrays.loss))
    return arrays.fit(counts, loss=loss, **kwargs), None


def bootstrap_approach1(
    df: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    n_boot: int = 200,
    seed: int = 0,
    replicates: list[np.ndarray] | None = None,
) -> np.ndarray:
    """(n_boot, 2) samples of (a, b): resampling points, or whole points' curves when curves are
    given; with `replicates` (seeds averaged into points) each drawn point's seeds are resampled
    within it too (its curve, or its final loss, is the mean of the drawn seeds')."""
    rng = np.random.default_rng(seed + 3)
    rng_seeds = np.random.default_rng(seed + 5)  # apart, so the points drawn do not depend on it
    out = np.full((n_boot, 2), np.nan)
    use_curves = curves is not None and len(curves) and "run_id" in df
    if use_curves:  # every point's curves as arrays, once: a resample only picks and relabels them
        assert curves is not None
        by_point = point_curves(curves)
        means = {p: mean_curve(p, reps) for p, reps in by_point.items()}
        run_ids = df["run_id"].to_numpy()
    C, N, D, loss = (df[c].to_numpy(float) for c in ("C", "N", "D", "loss"))
    point_loss = None if replicates is None else replicate_means(replicates, n_boot, seed + 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        for i in range(n_boot):
            idx = rng.integers(0, len(df), len(df))
            if use_curves and means.keys() & set(run_ids[idx]):
                # a point drawn k times enters as k runs of its own (relabelled copies)
                cv = []
                for k, rid in enumerate(run_ids[idx]):
                    reps = by_point.get(rid, [])
                    if replicates is not None and len(reps) > 1:
                        curve = mean_curve(
                            rid, [reps[j] for j in rng_seeds.integers(0, len(reps), len(reps))]
                        )
                    elif reps:
                        curve = means[rid]
                    else:
                        continue
                    cv.append((f"{rid}#{k}", *curve[1:]))
                try:
                    f = approach1(df.iloc[idx], cv)
                    out[i] = f.a, f.b
                except FitError:
                    pass
            else:
                lo = loss if point_loss is None else point_loss[i]
                out[i] = envelope_slopes(C[idx], N[idx], D[idx], lo[idx])
    return out

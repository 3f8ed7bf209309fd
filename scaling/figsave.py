"""Write many figures at once: drawing a figure into a PNG is single-threaded matplotlib work, so
the figures of a report are saved by forked processes, one figure at a time each, on every core."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

_JOBS: list = []  # (plot, folder, pdf) of the call in progress; forked workers inherit it


def _save(i: int) -> list[str]:
    plot, folder, pdf = _JOBS[i]
    return [str(p) for p in plot.save(folder, pdf=pdf)]


def save_all(jobs: list[tuple], n_jobs: int | None = None) -> list[list[Path]]:
    """Save every (plot, folder, pdf) of `jobs`; the written paths of each, in order. n_jobs:
    processes (default: every available core); one process where fork is unavailable."""
    global _JOBS
    from scaling.laws.bootstrap import resolve_jobs

    n = min(resolve_jobs(n_jobs), len(jobs))
    if n <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [plot.save(folder, pdf=pdf) for plot, folder, pdf in jobs]
    _JOBS = list(jobs)
    try:
        with multiprocessing.get_context("fork").Pool(n) as pool:
            out = pool.map(_save, range(len(jobs)), chunksize=1)
    finally:
        _JOBS = []
    return [[Path(p) for p in paths] for paths in out]

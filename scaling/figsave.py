"""Draw and write many figures at once: rendering a figure into a PNG is single-threaded
matplotlib work, so a report's figures are made by forked processes, one figure at a time each,
on every core (forked: the workers share the parent's data and figures without copying them)."""

from __future__ import annotations

import multiprocessing
from functools import partial
from pathlib import Path
from typing import Callable

_TASKS: list = []  # zero-argument callables of the call in progress; forked workers inherit them


def _run(i: int):
    return _TASKS[i]()


def run_forked(tasks: list[Callable], n_jobs: int | None = None) -> list:
    """Every task's result, in order, from up to n_jobs forked processes (default: every
    available core); in this process where fork is unavailable or one process would do. Results
    must pickle."""
    global _TASKS
    from scaling.laws.bootstrap import resolve_jobs

    n = min(resolve_jobs(n_jobs), len(tasks))
    if n <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [task() for task in tasks]
    _TASKS = list(tasks)
    try:
        with multiprocessing.get_context("fork").Pool(n) as pool:
            return pool.map(_run, range(len(tasks)), chunksize=1)
    finally:
        _TASKS = []


def save_all(jobs: list[tuple], n_jobs: int | None = None) -> list[list[Path]]:
    """Save every (plot, folder, pdf) of `jobs` (`scaling.plots.Plot.save`); the paths written."""
    return run_forked([partial(plot.save, folder, pdf=pdf) for plot, folder, pdf in jobs], n_jobs)

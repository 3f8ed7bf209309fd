"""Draw and write many figures at once: rendering a figure into a PNG is single-threaded
matplotlib work, so a report's figures are made by forked processes, one figure at a time each,
on every core."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from scaling.analysis.laws._parallel import run_forked


def save_all(jobs: list[tuple], n_jobs: int | None = None) -> list[list[Path]]:
    """Save every (plot, folder, pdf) of `jobs` (`scaling.analysis.plots.Plot.save`); the paths
    written."""
    return run_forked([partial(plot.save, folder, pdf=pdf) for plot, folder, pdf in jobs], n_jobs)

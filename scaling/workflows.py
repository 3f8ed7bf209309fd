"""Commands that span both wings: a sweep, then the report of its runs; task probes, then the
report of their tables. The experiment wing trains and writes the run store, then hands its
folders to the reports given here; only this module (and the CLI above it) knows both wings."""

from __future__ import annotations

from pathlib import Path


def sweep_report(sweep_path: Path, out: Path, n_boot: int, group: str | None, command: str) -> Path:
    """`scaling report` of a finished sweep folder (every law, figure, report.md, fits.json)."""
    from scaling.analysis.laws.study import FitOptions
    from scaling.analysis.report import write_report

    load = {"group": group}
    return write_report(sweep_path, out, FitOptions(n_boot=n_boot), load=load, command=command)


def task_report(tables: list[Path], out: Path) -> Path:
    """The family x task report of task-probe tables (docs/tasks.md)."""
    from scaling.analysis.taskreport import write_report

    return write_report(tables, out)


def sweep(argv: list[str]) -> int:
    """`scaling sweep`: train the preset's runs, then report them."""
    from scaling.experiment.sweep import Reports, main

    return main(argv, Reports(sweep=sweep_report, tasks=task_report))


def tasks(argv: list[str]) -> int:
    """`scaling tasks`: probe kept checkpoints, then (--out) report the tables."""
    from scaling.experiment.tasks import main

    return main(argv, task_report)

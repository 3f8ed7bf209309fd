"""load -> fit -> figures, written once: `scaling fit` prints an `Analysis`, `scaling plot` writes
its figures and `scaling report` its figures, report.md and fits.json. With a group column every
group is fitted separately and the side-by-side figures are drawn once for all groups."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.analysis.laws.study import FitOptions, StudyFit, fit_study
from scaling.analysis.tables import Points, load_points
from scaling.errors import FitWarning


@dataclass
class Analysis:
    """Every group's points and fits; `paths` are the inputs (None for in-memory points)."""

    points: Points
    parts: dict[str, Points]
    studies: dict[str, StudyFit]
    paths: list | None

    @property
    def grouped(self) -> bool:
        return "group" in self.points.frame

    def to_json(self) -> dict:
        """fits.json / `--json`: one study's schema, or {"groups": {name: schema}}."""
        if self.grouped:
            return {"groups": {name: s.to_json() for name, s in self.studies.items()}}
        return self.studies["all"].to_json()


@dataclass
class Figures:
    """`top`: the side-by-side figures of the groups (none without groups); `groups[name]`: that
    group's figures, {figure: reason} for those it cannot draw, and its subfolder prefix ('' for
    ungrouped points, else e.g. 'Chinchilla/')."""

    top: list[Any]
    groups: dict[str, tuple[list[Any], dict[str, str], str]]

    def clear(self) -> None:
        """Free the matplotlib figures once written."""
        for p in self.top + [p for plots, _, _ in self.groups.values() for p in plots]:
            p.figure.clear()


def input_paths(paths_or_points: Any) -> list | None:
    """The sweep folders / tables an analysis reads (a list), or None for a `Points`."""
    if isinstance(paths_or_points, Points):
        return None
    if isinstance(paths_or_points, (str, Path)):
        return [paths_or_points]
    return list(paths_or_points)


def analyse(
    paths_or_points: Any, load: dict | None = None, options: FitOptions | None = None
) -> Analysis:
    """Load (a `Points`, or sweep folders / tables read with `load_points(**load)`) and fit every
    group; FitWarnings are kept in each study's warnings rather than printed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        paths = input_paths(paths_or_points)
        points = paths_or_points if paths is None else load_points(paths, **(load or {}))
        parts = points.groups()
        studies = {name: fit_study(p, options=options) for name, p in parts.items()}
    return Analysis(points, parts, studies, paths)


def draw(analysis: Analysis) -> Figures:
    """Every figure: each group's (`plots.all_figures`) and, with groups, the allocation and the
    loss against compute of all groups side by side."""
    from scaling.analysis import plots as P
    from scaling.analysis.archplots import loss_vs_compute

    folders = group_folders(analysis.studies) if analysis.grouped else {"all": ""}
    groups = {
        name: (*P.all_figures(s, analysis.parts[name]), f"{folders[name]}/".lstrip("/"))
        for name, s in analysis.studies.items()
    }
    top = []
    if analysis.grouped:
        top = [P.group_comparison(analysis.studies), loss_vs_compute(analysis.studies)]
    return Figures(top, groups)


def slug(name: str) -> str:
    """A folder name for a group value."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "group"
    return s[:60]


def group_folders(names: Iterable[str]) -> dict[str, str]:
    """A distinct subfolder name per group value."""
    out: dict[str, str] = {}
    for name in names:
        sl = slug(name)
        while sl in out.values():
            sl += "_"
        out[name] = sl
    return out

"""Scaling-law fitting: typed laws, objectives, fitters, the three Chinchilla approaches, Kaplan,
bootstrap and comparison. Entry point: `fit_study(points, options=FitOptions(...)) -> StudyFit`;
every law is a plug-in (`registry.py`, one `law_*.py` module each)."""

from __future__ import annotations

from scaling.analysis.laws.approaches import (
    Approach1Fit,
    Approach2Fit,
    BudgetProfile,
    approach1,
    approach2,
    approach3,
    kaplan,
)
from scaling.analysis.laws.fit import (
    ChinchillaFit,
    FitStatus,
    KaplanFit,
    fit_chinchilla,
    fit_kaplan,
    hoffmann_grid,
)
from scaling.analysis.laws.forms import Allocation, ChinchillaLaw, KaplanLaw, PowerLaw
from scaling.analysis.laws.study import FitOptions, StudyFit, fit_study

__all__ = [
    "Allocation",
    "Approach1Fit",
    "Approach2Fit",
    "BudgetProfile",
    "ChinchillaFit",
    "ChinchillaLaw",
    "FitOptions",
    "FitStatus",
    "KaplanFit",
    "KaplanLaw",
    "PowerLaw",
    "StudyFit",
    "approach1",
    "approach2",
    "approach3",
    "fit_chinchilla",
    "fit_kaplan",
    "fit_study",
    "hoffmann_grid",
    "kaplan",
]

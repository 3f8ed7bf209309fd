"""The law plug-in interface and its registry: every estimator (Kaplan's law, Approaches 1-3, the
data-constrained law, any later one) is a `Law` subclass in a `scaling/analysis/laws/law_*.py`
module, found here by name. The study, the CLI table, the JSON, the figures and the report iterate
over `laws()` and ask each law for its part, so adding a law touches one new module plus its
tests."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from scaling.analysis.laws.study import FitOptions, StudyFit


@dataclass(frozen=True)
class FitContext:
    """What every law's fitter sees: the points, the training curves, the options, a fixed E."""

    df: pd.DataFrame
    curves: pd.DataFrame | None
    options: FitOptions
    fix_E: float | None = None
    replicates: list[np.ndarray] | None = None


@dataclass
class Draws:
    """A law's bootstrap: parameter -> resampled values, and how many refits of how many were used.
    `notes` become the study's warnings."""

    samples: dict[str, np.ndarray]
    used: int
    total: int
    notes: list[str] = field(default_factory=list)


class Law:
    """One estimator. `fit` returns its result (with a `FitStatus` `.status` and `.law` or
    `.allocation`) or raises FitError (the study records the reason as skipped); every other hook
    has a default that contributes nothing, so a law implements only what it has.

    `order` places the law in the study (fit, JSON, CLI and report sections); `table_order` in the
    allocation table, the flags and the predictions (laws with `allocates` only)."""

    key: str = ""
    label: str = ""  # e.g. "Approach 3 (parametric)": tables and legends
    short: str = ""  # e.g. "A3": narrow columns and figure legends
    color: str = "black"
    marker: str = "o"  # its point in the groups' side-by-side a panel
    order: int = 100
    table_order: int = 100
    allocates: bool = True  # gives N_opt ~ C^a, D_opt ~ C^b (a row of the comparison table)
    group_b: bool = False  # its b gets a column in the side-by-side table of groups
    # its bootstrap resamples `FitContext.replicates` within each point (the seed-noise share)
    resamples_replicates: bool = False

    def applies(self, df: pd.DataFrame) -> bool:
        """Whether this law is tried at all on these points (False: not even listed as skipped)."""
        return True

    def fit(self, ctx: FitContext) -> Any:
        raise NotImplementedError

    def residuals(self, ctx: FitContext, fit: Any) -> np.ndarray | None:
        """log(predicted) - log(loss) per point, for the residual figure; None if not a loss law."""
        return None

    def bootstrap(self, ctx: FitContext, fit: Any) -> Draws | None:
        return None

    def jackknife(self, ctx: FitContext, fit: Any) -> dict[str, np.ndarray] | None:
        """Leave-one-out parameter values for BCa intervals."""
        return None

    def exponents(self, fit: Any) -> tuple[float, float]:
        """(a, b) of N_opt ~ C^a, D_opt ~ C^b (laws with `allocates`)."""
        target = getattr(fit, "law", None) or fit
        return float(target.a), float(target.b)

    def status(self, fit: Any) -> str:
        """'converged', 'max-iter' or 'bound-hit' (every fit result has a `FitStatus`)."""
        return str(fit.status.value)

    def elasticity(self, study: StudyFit, fit: Any, at: tuple[float, float]) -> dict | None:
        return None

    def prediction(self, study: StudyFit, fit: Any, C: float) -> dict | None:
        """N_opt, D_opt (and loss) at budget C, a row of the predictions table."""
        return None

    def extrapolate(
        self, ctx: FitContext, train: pd.DataFrame, preds: pd.DataFrame
    ) -> float | None:
        """Refit on `train` (smaller budgets) and score the held-out `preds` (adding a column of
        predicted losses when it predicts loss); None when it takes no part or cannot refit."""
        return None

    def extrapolation_text(self, error: float) -> tuple[str, str]:
        """(error, what it measures) for the report's extrapolation table."""
        return f"{error:.2%}", "mean |relative error| of loss"

    def extrapolation_cli(self, error: float) -> str:
        """The error in `scaling fit`'s extrapolation line."""
        return f"{self.key} {error:.2%}"

    def to_json(self, study: StudyFit, fit: Any) -> dict:
        raise NotImplementedError

    def skipped_json(self, reason: str | None) -> dict:
        return {"status": "skipped", "reason": reason}

    def cli_lines(self, study: StudyFit, fit: Any) -> list[str]:
        """Its lines in `scaling fit`'s output, above the allocation table."""
        return []

    def report_lines(self, study: StudyFit, fit: Any, pct: int) -> list[str]:
        """Its paragraph (and table) under the report's 'Fitted laws'."""
        return []

    def figures(self, study: StudyFit, points: Any) -> list[Any]:
        """Figures of its own (`scaling.analysis.plots.Plot`), drawn after the study's shared ones;
        a figure it cannot draw raises FitError and is listed as not drawn."""
        return []


_LAWS: dict[str, Law] = {}
_DISCOVERED: list[bool] = []  # non-empty once every law module was imported


def register(law: Law) -> Law:
    """Add a law (a module-level call in its `law_*.py` module); the key must be new."""
    if law.key in _LAWS and type(_LAWS[law.key]) is not type(law):
        raise ValueError(f"law {law.key!r} is registered twice")
    _LAWS[law.key] = law
    return law


def _discover() -> None:
    """Import every `scaling.analysis.laws.law_*` module once; each registers its laws."""
    import scaling.analysis.laws as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("law_"):
            importlib.import_module(f"scaling.analysis.laws.{info.name}")


def laws() -> list[Law]:
    """Every registered law, in study order."""
    if not _DISCOVERED:
        _discover()
        _DISCOVERED.append(True)
    return sorted(_LAWS.values(), key=lambda law: law.order)


def allocating() -> list[Law]:
    """The laws that give N_opt ~ C^a and D_opt ~ C^b, in table order."""
    return sorted((law for law in laws() if law.allocates), key=lambda law: law.table_order)


def flag_order() -> list[Law]:
    """The order in which laws' interval flags are listed: the allocating laws in table order,
    then the others in study order."""
    return allocating() + [law for law in laws() if not law.allocates]


def get(key: str) -> Law:
    """The law registered under `key`."""
    laws()
    return _LAWS[key]

"""The law plug-in contract (laws/registry.py): a law registered from one module reaches the
study, fits.json, `scaling fit`'s text and the report without any other file naming it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import plots  # imported before the toy law is registered
from scaling.analysis.fitcli import render
from scaling.analysis.laws import registry
from scaling.analysis.laws.fit import FitStatus
from scaling.analysis.laws.forms import ChinchillaLaw
from scaling.analysis.laws.registry import Draws, FitContext, Law
from scaling.analysis.laws.study import FitOptions, fit_study
from scaling.analysis.report import _study_body
from scaling.errors import FitError

TRUE = ChinchillaLaw(E=1.7, A=400.0, B=410.0, alpha=0.34, beta=0.28)


@dataclass(frozen=True)
class MeanLaw:
    mean: float


@dataclass(frozen=True)
class MeanFit:
    law: MeanLaw
    status: FitStatus = FitStatus.CONVERGED


class MeanLoss(Law):
    """A toy law: the mean loss, with a bootstrap of it; skipped on fewer than 10 points."""

    key, label, short = "mean_loss", "Mean loss", "ML"
    order, allocates = 99, False

    def fit(self, ctx: FitContext) -> Any:
        if len(ctx.df) < 10:
            raise FitError("needs 10 points")
        return MeanFit(MeanLaw(float(ctx.df["loss"].mean())))

    def bootstrap(self, ctx: FitContext, fit: Any) -> Draws:
        rng = np.random.default_rng(ctx.options.seed)
        loss = ctx.df["loss"].to_numpy()
        means = np.array([rng.choice(loss, len(loss)).mean() for _ in range(ctx.options.n_boot)])
        return Draws({"mean": means}, len(means), len(means))

    def to_json(self, study: Any, fit: Any) -> dict:
        return {"mean": fit.law.mean, "ci": study.cis(self.key, ("mean",))}

    def cli_lines(self, study: Any, fit: Any) -> list[str]:
        return [f"{'Mean loss':<11} {fit.law.mean:.4f}"]

    def report_lines(self, study: Any, fit: Any, pct: int) -> list[str]:
        return ["", f"**Mean loss** {fit.law.mean:.4f}"]


@pytest.fixture
def toy_law():
    law = registry.register(MeanLoss())
    yield law
    del registry._LAWS[law.key]


def _points(n_sizes: int) -> pd.DataFrame:
    N = np.repeat(np.geomspace(1e6, 1e8, n_sizes), 4)
    D = np.tile(np.geomspace(1e8, 1e10, 4), n_sizes)
    return pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": TRUE.predict(N, D)})


def test_a_registered_law_reaches_the_json_the_cli_and_the_report(toy_law):
    df = _points(4)
    study = fit_study(df, options=FitOptions(n_boot=20, extrapolate=False))
    out = study.to_json()
    assert out["mean_loss"]["mean"] == pytest.approx(df["loss"].mean())
    assert list(out)[:6] == [
        "n_points",
        "approach3",
        "kaplan",
        "approach2",
        "approach1",
        "mean_loss",
    ]  # study order: the built-in laws, then the new one
    assert study.resamples["mean_loss"] == (20, 20)
    lo, hi = out["mean_loss"]["ci"]["mean"]
    assert lo < out["mean_loss"]["mean"] < hi
    assert f"Mean loss   {df['loss'].mean():.4f}" in render("", study)
    assert f"**Mean loss** {df['loss'].mean():.4f}" in _study_body(study, "", [], {}, 2, True)
    assert [r.approach for r in study.comparison.table] == [
        "approach1",
        "approach2",
        "approach3",
        "kaplan",
    ]  # it allocates nothing


def test_a_law_the_data_cannot_support_is_skipped_with_its_reason(toy_law):
    study = fit_study(_points(2), options=FitOptions(n_boot=0, extrapolate=False))
    assert study.skipped["mean_loss"] == "needs 10 points"
    assert study.to_json()["mean_loss"] == {"status": "skipped", "reason": "needs 10 points"}
    assert "mean_loss   skipped: needs 10 points" in render("", study)


def test_figures_know_a_law_registered_after_their_import(toy_law):
    assert plots.LABEL["mean_loss"] == "Mean loss" and plots.SHORT["mean_loss"] == "ML"
    assert "mean_loss" in plots.COLOR and plots.LABEL.get("no_such_law") is None

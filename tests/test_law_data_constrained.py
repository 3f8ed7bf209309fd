"""The data-constrained law (laws/law_data_constrained.py): Muennighoff et al.'s golden values on
their C4 runs, recovery of a known law, and its parts in the study, JSON, figures and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.laws import registry
from scaling.analysis.laws.forms import ChinchillaLaw
from scaling.analysis.laws.law_data_constrained import DataConstrainedLaw, fit_data_constrained
from scaling.analysis.laws.study import FitOptions, fit_study
from scaling.analysis.tables import load_points
from scaling.errors import DataError

REF = Path(__file__).resolve().parent / "data" / "reference"  # published tables, see its README
# their single-epoch C4 base law, in log form (README of tests/data/reference)
C4_BASE = ChinchillaLaw.from_theta([6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596])
TRUE = DataConstrainedLaw(ChinchillaLaw(E=1.7, A=400.0, B=410.0, alpha=0.34, beta=0.28), 15.0, 5.0)


def test_golden_datablations_c4():
    """With the base law held at their values: R*_D = 15.39, R*_N = 5.31 (2%), objective (1%)."""
    df = pd.read_csv(REF / "datablations_c4_fit_runs_182.csv")
    fit = fit_data_constrained(
        df["params"], df["tokens"], df["unique_tokens"], df["loss"], base=C4_BASE
    )
    assert fit.law.R_D_star == pytest.approx(15.387756, rel=0.02)
    assert fit.law.R_N_star == pytest.approx(5.309743, rel=0.02)
    assert fit.objective == pytest.approx(0.0158259, rel=0.01)
    assert fit.status.value == "converged" and fit.base_source == "given"


def test_effective_data_saturates_and_single_epoch_is_plain():
    u = 1e9
    _, d_eff = TRUE.effective(1e8, np.array([0.5, 1.0, 5.0, 1e4]) * u, u)
    assert d_eff[1] == pytest.approx(u)  # one epoch: D' = U_D
    assert d_eff[2] < 5 * u and d_eff[-1] == pytest.approx(u * (1 + TRUE.R_D_star), rel=1e-6)
    assert TRUE.stops_paying == pytest.approx(16.0)


def _table(law: DataConstrainedLaw) -> pd.DataFrame:
    """Repeated epochs of every size; single epochs only of sizes below the compute-optimal N of
    their data (larger ones would hold excess parameters, which the base law does not model)."""
    rows = [
        (n, u * e, u)
        for n in (2e6, 5e6, 1e7, 1e8, 3e8)
        for u in (1e9, 1e10)
        for e in (0.5, 1, 2, 4, 8, 16, 32)
        if e > 1 or n <= 1e7
    ]
    df = pd.DataFrame(rows, columns=["N", "D", "unique"])
    df["loss"] = law.predict(df["N"], df["D"], df["unique"])
    return df


def test_recovers_a_known_law_with_the_base_fitted_on_single_epoch_points():
    df = _table(TRUE)
    fit = fit_data_constrained(df["N"], df["D"], df["unique"], df["loss"])
    assert fit.base_source == "Approach 3 on 12 single-epoch points"
    assert fit.law.base.alpha == pytest.approx(0.34, rel=1e-3)
    assert fit.law.R_D_star == pytest.approx(15.0, rel=1e-3)
    assert fit.law.R_N_star == pytest.approx(5.0, rel=1e-3)


def test_everything_about_the_fit_comes_from_the_registry(tmp_path):
    """Bootstrap intervals, JSON, the figure and the report line, with --unique given."""
    from scaling.analysis.report import write_report

    path = tmp_path / "repeats.csv"
    noisy = _table(TRUE)
    noisy["loss"] *= np.exp(0.003 * np.random.default_rng(0).standard_normal(len(noisy)))
    noisy.to_csv(path, index=False)
    points = load_points(path, unique="unique")
    study = fit_study(points, options=FitOptions(n_boot=20, extrapolate=False))
    lo, hi = study.ci("data_constrained", "R_D_star")
    assert lo < study.fits["data_constrained"].law.R_D_star < hi
    out = write_report(points, tmp_path / "report", FitOptions(n_boot=20, extrapolate=False))
    fits = json.loads((out / "fits.json").read_text())
    entry = fits["data_constrained"]
    assert entry["R_D_star"] == pytest.approx(study.fits["data_constrained"].law.R_D_star)
    assert set(entry["ci"]) == {"R_D_star", "R_N_star"}
    assert entry["stops_paying_epochs"] == pytest.approx(1 + entry["R_D_star"])
    md = (out / "report.md").read_text()
    assert f"stops paying after **{entry['stops_paying_epochs']:.1f} epochs**" in md
    assert (out / "data_constrained.png").is_file()


def test_figure_draws_the_fitted_curves_and_where_repeating_stops_paying():
    from scaling.analysis.plots import all_figures

    df = _table(TRUE).rename(columns={"unique": "U_D"})
    df["C"] = 6 * df["N"] * df["D"]
    study = fit_study(df, options=FitOptions(n_boot=0, extrapolate=False))
    plots, _ = all_figures(study)
    plot = next(p for p in plots if p.name == "data_constrained")
    assert plot.data["stops_paying"] == pytest.approx(16.0, rel=1e-3)
    n, u = 3e8, 1e9
    at = np.argmin(np.abs(plot.data["grid"] - 8))
    assert plot.data["curves"][(n, u)][at] == pytest.approx(
        TRUE.predict(n, plot.data["grid"][at] * u, u), rel=1e-3
    )


def test_absent_without_unique_tokens_and_a_missing_column_is_one_line(tmp_path):
    df = _table(TRUE)
    assert not registry.get("data_constrained").applies(df)
    study = fit_study(
        df.assign(C=6 * df["N"] * df["D"]).drop(columns="unique"),
        options=FitOptions(n_boot=0),
    )
    assert "data_constrained" not in study.to_json() and "data_constrained" not in study.skipped
    assert "data_constrained" not in study.comparison.extrapolation.errors
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="no unique-tokens column 'U'"):
        load_points(path, unique="U")


def test_extrapolation_check_refits_the_law_without_the_largest_budgets():
    df = _table(TRUE).rename(columns={"unique": "U_D"})
    df["C"] = 6 * df["N"] * df["D"]
    ex = fit_study(df, options=FitOptions(n_boot=0)).comparison.extrapolation
    assert ex.n_holdout > 0 and ex.errors["data_constrained"] < 1e-4  # the exact law, refitted
    held = ex.predictions
    np.testing.assert_allclose(held["data_constrained"], held["loss"], rtol=1e-4)

"""fit_study: the JSON schema, skipped laws, single-size and extrapolation behaviour."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.laws import ChinchillaLaw, FitOptions, fit_study
from scaling.errors import FitError

TRUTH = ChinchillaLaw(E=1.7, A=400.0, B=1500.0, alpha=0.34, beta=0.28)


def _frame(noise=0.005, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for C in np.logspace(18, 21, 6):
        n_opt, _ = TRUTH.allocation(C)
        for n in n_opt * np.exp(np.linspace(-1.5, 1.5, 7)):
            d = C / (6 * n)
            rows.append(
                dict(
                    N=n,
                    D=d,
                    C=C,
                    loss=float(TRUTH.predict(n, d)) * np.exp(noise * rng.standard_normal()),
                )
            )
    return pd.DataFrame(rows)


def test_study_json_schema_and_values():
    s = fit_study(_frame(noise=0.002), options=FitOptions(n_boot=20, seed=1))
    j = json.loads(json.dumps(s.to_json()))  # must be plain JSON
    assert {"approach1", "approach2", "approach3", "kaplan", "comparison", "n_points"} <= set(j)
    assert j["n_points"] == 42
    a3 = j["approach3"]
    assert {"E", "A", "B", "alpha", "beta", "a", "b", "objective", "status", "ci"} <= set(a3)
    assert a3["status"] == "converged" and a3["a"] == pytest.approx(TRUTH.a, abs=0.03)
    assert a3["ci"]["alpha"][0] < a3["alpha"] < a3["ci"]["alpha"][1]
    assert {"alpha_N", "alpha_D", "N_c", "D_c", "a", "b"} <= set(j["kaplan"])
    assert j["approach2"]["a"] == pytest.approx(TRUTH.a, abs=0.02) and "a" in j["approach1"]
    c = j["comparison"]
    assert [r["approach"] for r in c["table"]] == ["approach1", "approach2", "approach3", "kaplan"]
    assert c["elasticities"]["approach3"]["N"] < 0 and "D grows faster" in c["verdict"]
    assert c["extrapolation"]["errors"]["approach3"] < 0.02  # the true form extrapolates
    assert len(s.samples["approach3"]["a"]) > 15 and s.residuals["approach3"].shape == (42,)
    assert len(s.approach2.budgets) == 6 and len(s.approach1.envelope) >= 2


def test_single_model_size_is_one_line_error():
    df = _frame()
    df["N"] = 1e8
    with pytest.raises(FitError, match="one model size"):
        fit_study(df, options=FitOptions(n_boot=0))


def test_law_that_cannot_fit_is_skipped_with_reason():
    df = _frame()
    df = df[df["C"] < 2e18].reset_index(drop=True)  # one budget: no Approach 2
    s = fit_study(df, options=FitOptions(n_boot=0, extrapolate=False))
    assert s.approach2 is None and "budgets" in s.skipped["approach2"]
    j = s.to_json()
    assert j["approach2"]["status"] == "skipped" and j["approach2"]["a"] is None


def test_approach1_reads_curves_by_default_and_final_points_when_asked(tmp_path):
    """`--approach1 final` builds the envelope from each run's final point only (for runs whose
    schedule ends at their own D); the default reads every logged evaluation."""
    from test_plots import write_sweep

    from scaling.analysis.tables import load_points
    from scaling.errors import ConfigError, FitWarning

    with pytest.warns(FitWarning, match="diverged"):  # the toy sweep holds one diverged run
        points = load_points(write_sweep(tmp_path / "toy", seed=3))
    curves = fit_study(points, options=FitOptions(n_boot=0)).approach1
    final = fit_study(points, options=FitOptions(n_boot=0, approach1_points="final")).approach1
    assert curves.source == "curves" and final.source == "final points"
    assert final.envelope["D"].isin(points.frame["D"]).all()  # final D of some run, never midway
    assert not curves.envelope["D"].isin(points.frame["D"]).all()
    with pytest.raises(ConfigError, match="--approach1"):
        fit_study(points, options=FitOptions(n_boot=0, approach1_points="last"))

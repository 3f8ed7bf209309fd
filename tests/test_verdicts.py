"""Verdicts say only what a's interval supports (three states, 'equal' only inside a stated band,
no verdict without a clean fit and an interval), and intervals say when they are weak (flags,
BCa)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from test_laws_study import _frame

from scaling.analysis.laws import intervals as iv
from scaling.analysis.laws.compare import AllocationRow, agreement, row_verdict, verdict
from scaling.analysis.laws.study import FitOptions, fit_study


def row(a, lo, hi, status="converged", name="approach2"):
    return AllocationRow(name, a, (lo, hi), 1 - a, (1 - hi, 1 - lo), status)


def test_three_states_and_equal_only_inside_the_band():
    assert row_verdict(row(0.70, 0.62, 0.78)).startswith("N grows faster")
    assert row_verdict(row(0.30, 0.22, 0.41)).startswith("D grows faster")
    wide = row_verdict(
        row(0.886, 0.417, 0.972)
    )  # the example: contains 0.5, supports nothing
    assert (
        wide.startswith("not resolved: the interval [0.417, 0.972] spans both")
        and "same rate" not in wide
    )
    assert row_verdict(row(0.51, 0.47, 0.54)).startswith(
        "equal growth"
    ) and "0.5 +- 0.05" in row_verdict(row(0.51, 0.47, 0.54))
    assert row_verdict(row(0.51, 0.44, 0.54)).startswith("not resolved")  # pokes out of the band


def test_bound_hit_or_interval_free_fit_gets_no_verdict():
    hit = row_verdict(row(0.476, 0.3, 0.6, status="bound-hit"))
    assert hit.startswith("no verdict") and "bound-hit" in hit and "grows faster" not in hit
    free = row_verdict(row(0.476, float("nan"), float("nan")))
    assert free.startswith("no verdict") and "no interval" in free and "grows faster" not in free


def test_cross_approach_line_is_disagreement_with_overlap():
    rows = [
        row(0.31, -0.05, 0.46, name="approach1"),
        row(0.59, -0.08, 0.78),
        row(0.20, 0.12, 0.33, name="approach3"),
    ]
    text = agreement(rows)
    assert (
        "disagree by up to 0.390" in text
        and "overlap on [0.120, 0.330]" in text
        and "agree" not in text.replace("disagree", "")
    )
    apart = agreement([row(0.2, 0.1, 0.3, name="approach1"), row(0.8, 0.7, 0.9)])
    assert "do not all overlap" in apart
    assert verdict(tuple(rows)).endswith(text)


def test_flags_estimate_outside_interval_and_few_resamples():
    out = iv.flags(
        {"a": 0.420, "b": 0.58}, {"a": (0.356, 0.417), "b": (0.5, 0.6)}, used=154, total=200
    )
    assert any("a = 0.42 lies outside its own interval" in f for f in out)
    assert any("154 of 200" in f and "under 80%" in f for f in out)
    assert not any(f.startswith("b") for f in out)
    assert (
        iv.flags({"a": 0.5}, {"a": (0.4, 0.6)}, used=160, total=200) == []
    )  # exactly 80% is enough


def test_bca_matches_percentile_without_bias_or_skew_and_shifts_with_bias():
    rng = np.random.default_rng(0)
    s = rng.normal(0.0, 1.0, 20000)
    jack = rng.normal(0.0, 1.0, 50)
    jack = np.concatenate([jack, -jack])  # symmetric: acceleration 0
    assert iv.acceleration(jack) == pytest.approx(0.0, abs=1e-12)
    lo, hi = iv.bca(s, float(np.median(s)), jack)
    plo, phi = iv.percentile(s)
    assert lo == pytest.approx(plo, abs=0.02) and hi == pytest.approx(phi, abs=0.02)
    blo, bhi = iv.bca(s, 0.5, jack)  # resamples sit low against the estimate: the interval moves up
    assert blo > plo + 0.5 and bhi > phi + 0.5
    assert np.isnan(iv.bca(s, 10.0, jack)[0])  # every resample below: undefined, not a number


def test_study_json_has_flags_log_se_and_bca_intervals():
    df = _frame(noise=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pct = fit_study(df, options=FitOptions(n_boot=30, seed=1))
        bca = fit_study(df, options=FitOptions(n_boot=30, seed=1, ci="bca"))
    j = json.loads(json.dumps(pct.to_json()))
    for law in ("approach1", "approach2", "approach3", "kaplan"):
        assert isinstance(j[law]["flags"], list)
    assert {"ln_E", "ln_A", "ln_B", "alpha"} <= set(j["approach3"]["se"]) and "A" not in j[
        "approach3"
    ]["se"]
    lnA = np.log(pct.samples["approach3"]["A"])
    assert j["approach3"]["se"]["ln_A"] == pytest.approx(np.std(lnA, ddof=1))
    assert j["bootstrap"]["resamples_used"]["approach3"][1] == 30
    assert set(bca.jackknife) == {"approach1", "approach2", "approach3", "kaplan"}
    assert len(bca.jackknife["approach3"]["a"]) == len(df)
    assert bca.ci("approach3", "a") != pct.ci("approach3", "a")  # same resamples, another interval
    lo, hi = bca.ci("approach3", "alpha")
    assert lo < bca.approach3.law.alpha < hi
    assert bca.to_json()["bootstrap"]["ci"] == "bca"


def test_a_resolved_verdict_carries_its_flags():
    weak = AllocationRow(
        "kaplan",
        0.977,
        (0.615, 0.985),
        0.023,
        (0.015, 0.385),
        "converged",
        "intervals from 141 of 200 resamples (70%, under 80%)",
    )
    text = row_verdict(weak)
    assert text.startswith("N grows faster") and "[flagged: intervals from 141 of 200" in text
    assert iv.flags({"a": 0.5}, {"a": (float("nan"), float("nan"))}, used=0, total=200) == [
        "no interval: none of the 200 resample refits converged cleanly"
    ]

"""Bootstrap: the golden SE of alpha on the Epoch data, reproducibility, intervals cover the
truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.laws.approaches import approach3
from scaling.analysis.laws.bootstrap import (
    bootstrap_approach2,
    bootstrap_chinchilla,
    interval,
    resample_counts,
)
from scaling.analysis.laws.forms import ChinchillaLaw
from scaling.analysis.tables import load_points

REF = Path(__file__).resolve().parent / "data" / "reference"  # published tables, see its README


def test_epoch_bootstrap_se_of_alpha():
    """Epoch: SE(alpha) = 0.0154 from 4000 resamples; 300 resamples estimate an SE to ~4%."""
    df = load_points(REF / "epoch_chinchilla_svg_extracted_data.csv", drop_top_loss=5).frame
    fit = approach3(df, "fast")
    theta, ok = bootstrap_chinchilla(df, fit.law.theta, n_boot=300, seed=0)
    assert ok.mean() > 0.95
    se = np.std(theta[ok, 3], ddof=1)
    assert se == pytest.approx(0.0154, rel=0.15)


def test_resamples_are_seeded_and_complete():
    a, b = resample_counts(50, 20, seed=3), resample_counts(50, 20, seed=3)
    np.testing.assert_array_equal(a, b)
    assert (a.sum(1) == 50).all() and not np.array_equal(a, resample_counts(50, 20, seed=4))


def test_intervals_cover_the_true_exponent():
    truth = ChinchillaLaw(E=1.7, A=400.0, B=1500.0, alpha=0.34, beta=0.28)
    rng = np.random.default_rng(5)
    rows = []
    for C in np.logspace(18, 21, 6):
        n_opt, _ = truth.allocation(C)
        for n in n_opt * np.exp(np.linspace(-1.5, 1.5, 7)):
            d = C / (6 * n)
            rows.append(
                dict(
                    N=n,
                    D=d,
                    C=C,
                    loss=float(truth.predict(n, d)) * np.exp(0.01 * rng.standard_normal()),
                )
            )
    df = pd.DataFrame(rows)
    fit = approach3(df, "fast")
    theta, ok = bootstrap_chinchilla(df, fit.law.theta, n_boot=40, seed=0)
    lo, hi = interval(theta[ok, 3])
    assert lo < hi and lo - 0.01 < truth.alpha < hi + 0.01
    ab = bootstrap_approach2(df, n_boot=40, seed=0)
    lo, hi = interval(ab[:, 0])
    assert lo < truth.a < hi

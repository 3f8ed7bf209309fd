"""Approach 3 and Kaplan fitters: Epoch golden values, fast vs grid, known-law recovery,
statuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scaling.analysis.laws.fit import FitStatus, fit_chinchilla, fit_kaplan, hoffmann_grid
from scaling.analysis.laws.forms import ChinchillaLaw, KaplanLaw
from scaling.analysis.tables import load_points
from scaling.errors import FitError, FitWarning

REF = Path(__file__).resolve().parent / "data" / "reference"  # published tables, see its README


def _epoch_logs():
    f = load_points(REF / "epoch_chinchilla_svg_extracted_data.csv", drop_top_loss=5).frame
    return np.log(f["N"].to_numpy()), np.log(f["D"].to_numpy()), np.log(f["loss"].to_numpy())


def _isoflop_sample(law, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    N, D = [], []
    for C in np.logspace(18, 21, 7):
        n_opt, _ = law.allocation(C)
        n = n_opt * np.exp(np.linspace(-1.5, 1.5, 9))
        N += list(n)
        D += list(C / (6 * n))
    N, D = np.array(N), np.array(D)
    return N, D, law.predict(N, D) * np.exp(noise * rng.standard_normal(len(N)))


def test_hoffmann_grid_is_4500_starts():
    g = hoffmann_grid()
    assert g.shape == (4500, 5)
    assert sorted(set(g[:, 3])) == [0.0, 0.5, 1.0, 1.5, 2.0] and sorted(set(g[:, 0])) == [
        0,
        5,
        10,
        15,
        20,
        25,
    ]


def test_epoch_golden_grid_and_fast():
    logs = _epoch_logs()
    grid = fit_chinchilla(*logs, method="grid")
    law = grid.law
    assert grid.status is FitStatus.CONVERGED
    assert law.E == pytest.approx(1.8172, abs=1e-3)
    assert law.A == pytest.approx(477.8, rel=0.01)
    assert law.B == pytest.approx(2143, rel=0.02)
    assert law.alpha == pytest.approx(0.3473, abs=1e-3)
    assert law.beta == pytest.approx(0.3672, abs=1e-3)
    assert grid.objective == pytest.approx(1.0183e-3, rel=1e-4)  # Epoch's published objective
    fast = fit_chinchilla(*logs, method="fast")
    assert fast.objective <= grid.objective * (1 + 1e-9)


def test_known_law_recovered_from_one_percent_noise():
    truth = ChinchillaLaw(E=1.7, A=400.0, B=1500.0, alpha=0.34, beta=0.30)
    N, D, L = _isoflop_sample(truth, noise=0.01, seed=1)
    fit = fit_chinchilla(np.log(N), np.log(D), np.log(L), method="fast")
    assert fit.law.alpha == pytest.approx(truth.alpha, rel=0.05)
    assert fit.law.beta == pytest.approx(truth.beta, rel=0.05)


def test_bound_hit_is_reported_not_hidden():
    # loss that rises with N: the N term can only vanish, so A ends on its lower bound
    rng = np.random.default_rng(0)
    N = np.exp(rng.uniform(np.log(1e6), np.log(1e9), 60))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e11), 60))
    L = 2 + 1e-3 * N**0.2 + 500 / D**0.3
    for method in ("fast", "grid"):
        with pytest.warns(FitWarning, match="bound-hit"):
            fit = fit_chinchilla(np.log(N), np.log(D), np.log(L), method=method)
        assert fit.status is FitStatus.BOUND_HIT and not fit.ok
        assert (
            "log A" in fit.messages[0] or "alpha" in fit.messages[0]
        )  # the N term vanished either way


def test_too_few_points_is_a_fit_error():
    with pytest.raises(FitError, match="at least 6 points"):
        fit_chinchilla(np.log([1e6, 2e6, 3e6]), np.log([1e8] * 3), np.log([3.0, 2.9, 2.8]))


def test_kaplan_recovers_its_own_law():
    truth = KaplanLaw(alpha_N=0.076, alpha_D=0.103, N_c=6.4e13, D_c=1.8e13)
    N = np.repeat(np.logspace(6, 9, 6), 6)
    D = np.tile(np.logspace(8, 11, 6), 6)
    L = truth.predict(N, D) * np.exp(0.002 * np.random.default_rng(0).standard_normal(len(N)))
    fit = fit_kaplan(np.log(N), np.log(D), np.log(L))
    assert fit.status is FitStatus.CONVERGED
    assert fit.law.alpha_N == pytest.approx(0.076, rel=0.05) and fit.law.alpha_D == pytest.approx(
        0.103, rel=0.05
    )
    assert fit.law.a == pytest.approx(truth.a, abs=0.02)

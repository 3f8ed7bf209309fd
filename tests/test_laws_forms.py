"""Typed laws: the closed-form allocation is the true minimum at fixed C, elasticities are
derivatives."""

from __future__ import annotations

import numpy as np
import pytest

from scaling.analysis.laws.forms import ChinchillaLaw, KaplanLaw, PowerLaw

CHIN = ChinchillaLaw(E=1.8172, A=477.8, B=2143.0, alpha=0.3473, beta=0.3672)
KAP = KaplanLaw(alpha_N=0.076, alpha_D=0.103, N_c=6.4e13, D_c=1.8e13)


@pytest.mark.parametrize("law", [CHIN, KAP])
@pytest.mark.parametrize("C", [1e18, 1e21, 1e24])
def test_allocation_minimises_loss_at_fixed_compute(law, C):
    n_opt, d_opt = law.allocation(C)
    np.testing.assert_allclose(6 * n_opt * d_opt, C, rtol=1e-9)
    grid = np.exp(np.linspace(np.log(n_opt) - 3, np.log(n_opt) + 3, 20001))
    best = grid[np.argmin(law.predict(grid, C / (6 * grid)))]
    assert abs(np.log(best / n_opt)) < 1e-3


@pytest.mark.parametrize("law", [CHIN, KAP])
def test_allocation_exponents_match_a_and_b(law):
    n1, d1 = law.allocation(1e20)
    n2, d2 = law.allocation(1e22)
    assert np.log(n2 / n1) / np.log(100) == pytest.approx(law.a, abs=1e-9)
    assert np.log(d2 / d1) / np.log(100) == pytest.approx(law.b, abs=1e-9)


@pytest.mark.parametrize("law", [CHIN, KAP])
def test_elasticities_are_log_derivatives(law):
    N, D, h = 3e8, 6e9, 1e-5
    eN, eD = law.elasticities(N, D)
    num_N = (np.log(law.predict(N * np.exp(h), D)) - np.log(law.predict(N * np.exp(-h), D))) / (
        2 * h
    )
    num_D = (np.log(law.predict(N, D * np.exp(h))) - np.log(law.predict(N, D * np.exp(-h)))) / (
        2 * h
    )
    assert eN == pytest.approx(num_N, rel=1e-5) and eD == pytest.approx(num_D, rel=1e-5)


def test_kaplan_limits_and_frontier_exponent():
    assert KAP.predict(1e9, 1e30) == pytest.approx(KAP.loss_n(1e9), rel=1e-6)
    assert KAP.predict(1e40, 1e10) == pytest.approx(KAP.loss_d(1e10), rel=1e-6)
    slope = np.log(KAP.loss_at_budget(1e22) / KAP.loss_at_budget(1e20)) / np.log(100)
    assert -slope == pytest.approx(KAP.alpha_C, rel=1e-9)


def test_reprs_print_fitted_values():
    assert repr(CHIN).startswith("L(N, D) = 1.817 + 477.8/N^0.347 + 2143/D^0.367")
    assert "(6.4e+13/N)^(0.076/0.103)" in repr(KAP)
    law = PowerLaw.fit([1e18, 1e19, 1e20], [1e8, 10**8.5, 1e9])
    assert law.exponent == pytest.approx(0.5) and "C^0.500" in repr(law)
    with pytest.raises(Exception):
        CHIN.E = 2.0  # immutable

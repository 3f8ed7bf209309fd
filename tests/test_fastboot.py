"""The array-based bootstraps against straightforward per-resample refits on real reference data:
the same draws, the same samples (to rounding, or to a better optimum where the old polish stopped
short), and samples that do not depend on the number of processes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from scaling.analysis.laws.approaches import approach1, approach2, approach3, budget_labels, kaplan
from scaling.analysis.laws.bootstrap import (
    bootstrap_approach1,
    bootstrap_approach2,
    bootstrap_chinchilla,
    bootstrap_kaplan,
    resample_counts,
)
from scaling.analysis.laws.fit import _kaplan_residuals, fit_kaplan, polish_chinchilla
from scaling.analysis.laws.objectives import huber_objective
from scaling.analysis.tables import load_points
from scaling.errors import FitError, FitWarning

REF = Path(__file__).resolve().parent / "data" / "reference"  # copies of ../shared/reference
RUNS = Path(__file__).resolve().parents[1] / "runs" / "reference"


def _epoch():
    return load_points(REF / "epoch_chinchilla_svg_extracted_data.csv", drop_top_loss=5).frame


def _porian(label="Cosine decay"):
    pts = load_points(
        REF / "porian2024_isoflop_points.csv",
        c="flops",
        group="label",
        query="source_file == 'summary_df' and dataset == 'rw'",
    )
    return pts.groups()[label].frame


def _frame_refits_approach2(df, n_boot, seed):
    """The reference: `approach2` on each resampled frame, drawn exactly as the bootstrap draws."""
    rng = np.random.default_rng(seed + 2)
    labels = budget_labels(df["C"].to_numpy())
    groups = [np.flatnonzero(labels == lab) for lab in np.unique(labels)]
    out = np.full((n_boot, 2), np.nan)
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(g, size=len(g)) for g in groups])
        try:
            f = approach2(df.iloc[idx])
            out[i] = f.a, f.b
        except FitError:
            pass
    return out


def _frame_refits_approach1(df, n_boot, seed):
    rng = np.random.default_rng(seed + 3)
    out = np.full((n_boot, 2), np.nan)
    for i in range(n_boot):
        try:
            f = approach1(df.iloc[rng.integers(0, len(df), len(df))])
            out[i] = f.a, f.b
        except FitError:
            pass
    return out


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        yield


@pytest.mark.parametrize("which", ["porian", "isoflop"])
def test_approach2_bootstrap_equals_frame_refits(which):
    df = _porian() if which == "porian" else load_points(RUNS / "isoflop").frame
    new = bootstrap_approach2(df, 40, seed=0)
    ref = _frame_refits_approach2(df, 40, seed=0)
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-9)


def test_approach2_bootstrap_on_epoch_differs_only_at_exact_ties():
    """Epoch's extracted losses repeat exactly; where two sizes of a budget tie for the lowest mean
    loss, the last bit of the per-size mean (pandas' sum order against ours) picks the minimum."""
    df = _epoch()
    new, ref = bootstrap_approach2(df, 60, seed=0), _frame_refits_approach2(df, 60, seed=0)
    same = np.all(np.abs(new - ref) <= 1e-9, axis=1)
    assert same.mean() >= 0.95 and np.isfinite(new).all()


@pytest.mark.parametrize("which", ["epoch", "isoflop"])
def test_approach1_points_bootstrap_equals_frame_refits(which):
    df = _epoch() if which == "epoch" else load_points(RUNS / "isoflop").frame
    new, ref = bootstrap_approach1(df, None, 60, seed=0), _frame_refits_approach1(df, 60, seed=0)
    np.testing.assert_allclose(new, ref, rtol=1e-9, atol=1e-12)


def test_kaplan_bootstrap_reaches_the_scipy_optimum():
    """Every refit is at least as good as scipy's (objective within 1e-12) and a agrees to 1e-6:
    the old finite-difference Jacobian stopped ~1e-7 short in a."""
    df = _epoch()
    fit = kaplan(df)
    samples, ok = bootstrap_kaplan(df, fit.law, 30, seed=0)
    logs = [np.log(df[c].to_numpy(float)) for c in ("N", "D", "loss")]
    law = fit.law
    p0 = np.array([law.alpha_N, law.alpha_D, np.log(law.N_c), np.log(law.D_c)])
    for p, w in zip(samples, resample_counts(len(df), 30, 1)):
        ref = fit_kaplan(*logs, weights=w, starts=p0[None, :]).law
        q = np.array([ref.alpha_N, ref.alpha_D, np.log(ref.N_c), np.log(ref.D_c)])
        cost = lambda x, w=w: np.sum(_kaplan_residuals(x, *logs, np.sqrt(w)) ** 2)  # noqa: E731
        assert cost(p) <= cost(q) * (1 + 1e-12)
        assert p[1] / (p[0] + p[1]) == pytest.approx(q[1] / (q[0] + q[1]), abs=1e-6)
    assert ok.all()


def test_chinchilla_bootstrap_reaches_the_lbfgsb_optimum():
    """Each Newton refit's Huber objective is at most L-BFGS-B's (to rounding); most agree in a to
    1e-6, the rest are where L-BFGS-B stopped short (a strictly lower objective)."""
    df = _epoch()
    fit = approach3(df)
    theta, ok = bootstrap_chinchilla(df, fit.law.theta, 40, seed=0)
    logs = [np.log(df[c].to_numpy(float)) for c in ("N", "D", "loss")]
    close = []
    for th, w in zip(theta, resample_counts(len(df), 40, 0)):
        ref, ref_obj, _ = polish_chinchilla(fit.law.theta, *logs, weights=w)
        obj = huber_objective(th, *logs, w)
        assert obj <= ref_obj * (1 + 1e-12)
        a, a_ref = th[4] / (th[3] + th[4]), ref[4] / (ref[3] + ref[4])
        close.append(abs(a - a_ref) <= 1e-6 or obj < ref_obj * (1 - 1e-10))
    assert ok.all() and all(close)


def test_samples_do_not_depend_on_the_number_of_processes():
    df = _porian()
    fit3, fitk = approach3(df), kaplan(df)
    a = bootstrap_chinchilla(df, fit3.law.theta, 120, seed=1, n_jobs=1)
    b = bootstrap_chinchilla(df, fit3.law.theta, 120, seed=1, n_jobs=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(
        bootstrap_kaplan(df, fitk.law, 120, 1, n_jobs=1)[0],
        bootstrap_kaplan(df, fitk.law, 120, 1, n_jobs=2)[0],
    )
    np.testing.assert_array_equal(
        bootstrap_approach2(df, 120, 1, n_jobs=1), bootstrap_approach2(df, 120, 1, n_jobs=2)
    )

"""Approach 3 with the irreducible loss E held fixed (`--fix-E floor|VALUE`, `FitOptions.fix_E`):
recovery of a known law, the case a free fit cannot handle, bootstrap, the CLI's one-line errors,
the JSON and the report."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from test_plots import TRUE as SWEEP_LAW
from test_plots import write_sweep

from scaling.analysis import plots as P
from scaling.analysis.laws import FitOptions, FitStatus, fit_chinchilla, fit_study
from scaling.analysis.laws.bootstrap import bootstrap_chinchilla
from scaling.analysis.laws.forms import ChinchillaLaw
from scaling.analysis.report import write_report
from scaling.analysis.tables import load_points
from scaling.cli import main
from scaling.errors import DataError, FitError


def grid_points(
    law: ChinchillaLaw, k: int, noise: float, seed: int, floor: float | None = None
) -> pd.DataFrame:
    """A k x k grid of N in [1e4, 1e6] and D in [2.5e5, 3e7] (our CPU sweeps' range), losses from
    `law` with lognormal noise; an entropy_floor column when `floor` is given."""
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e4, 1e6, k), np.geomspace(2.5e5, 3e7, k)))
    loss = law.predict(N, D) * np.exp(noise * np.random.default_rng(seed).standard_normal(N.size))
    df = pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": loss})
    if floor is not None:
        df["entropy_floor"] = floor
    return df


def logs(df: pd.DataFrame):
    return np.log(df["N"].to_numpy()), np.log(df["D"].to_numpy()), np.log(df["loss"].to_numpy())


LAW = ChinchillaLaw(
    E=0.6995, A=6.0, B=40.0, alpha=0.15, beta=0.25
)  # losses 2.0 to 4.0, floor ~ ours


@pytest.mark.parametrize("method", ["fast", "grid"])
def test_fixed_E_recovers_the_law(method):
    df = grid_points(LAW, 6, noise=0.001, seed=3)
    fit = fit_chinchilla(*logs(df), method=method, fix_E=LAW.E)
    assert fit.status is FitStatus.CONVERGED and fit.fixed_E == LAW.E
    assert fit.law.E == LAW.E  # exactly the value given, not exp(log E)
    for name in ("A", "B"):
        assert getattr(fit.law, name) == pytest.approx(getattr(LAW, name), rel=0.03), name
    for name in ("alpha", "beta"):
        assert getattr(fit.law, name) == pytest.approx(getattr(LAW, name), rel=0.01), name


@pytest.mark.parametrize("seed", [22, 21])
def test_free_fit_stops_at_E_bound_where_fixed_E_finds_the_exponents(seed):
    # Small exponents and 0.5% noise: E trades off against A/N^alpha and the free fit drives it to
    # ~0 with alpha far too low. Seed 22 stops exactly on the lower bound e^-23 ~ 1e-10; seed 21 at
    # E ~ 7e-10, short of it, which counts as the bound too (E < 1e-6 of the lowest loss).
    law = ChinchillaLaw(E=0.7, A=4.0, B=30.0, alpha=0.1, beta=0.2)
    df = grid_points(law, 6, noise=0.005, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        free = fit_chinchilla(*logs(df))
    assert free.status is FitStatus.BOUND_HIT and free.law.E < 1e-6 and "log E" in free.messages[0]
    assert abs(free.law.alpha / law.alpha - 1) > 0.2
    fixed = fit_chinchilla(*logs(df), fix_E=law.E)
    assert fixed.status is FitStatus.CONVERGED and not fixed.messages
    assert fixed.law.alpha == pytest.approx(law.alpha, rel=0.03)
    assert fixed.law.beta == pytest.approx(law.beta, rel=0.03)
    assert fixed.law.a == pytest.approx(law.a, abs=0.01)


def test_fixed_E_must_be_below_every_loss():
    df = grid_points(LAW, 4, noise=0.0, seed=0)
    low = df["loss"].min()
    for bad in (low, low + 1, 0.0, -1.0):
        with pytest.raises(FitError):
            fit_chinchilla(*logs(df), fix_E=bad)


def test_bootstrap_keeps_E_fixed_and_study_reports_no_E_interval():
    df = grid_points(LAW, 5, noise=0.003, seed=1, floor=LAW.E)
    theta, ok = bootstrap_chinchilla(df, [0.0, 0.0, 0.0, 0.2, 0.2], n_boot=30, seed=0, fix_E=LAW.E)
    assert ok.mean() > 0.9 and np.all(theta[:, 2] == np.log(LAW.E))
    assert np.ptp(theta[ok, 3]) > 0  # alpha does vary across resamples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = fit_study(df, options=FitOptions(n_boot=30, fix_E="floor", extrapolate=False))
    assert study.fixed_E == (LAW.E, "entropy_floor") and study.approach3.law.E == LAW.E
    assert "E" not in study.samples["approach3"]  # a fixed E has no bootstrap distribution
    assert all(np.isnan(study.ci("approach3", "E")))
    for name in ("alpha", "beta", "a", "b"):
        lo, hi = study.ci("approach3", name)
        assert lo < getattr(study.approach3.law, name) < hi, name
    assert all(np.isfinite(study.comparison.elasticities["approach3"]["N_ci"]))
    assert P.bootstrap(study).data["E"] is None  # no E panel in the bootstrap figure
    j = study.to_json()["approach3"]
    assert (
        j["E"] == LAW.E
        and j["E_fixed"]["value"] == LAW.E
        and j["E_fixed"]["source"] == "entropy_floor"
    )
    assert "E" not in j["ci"] and "alpha" in j["ci"] and j["se"]["ln_E"] is None


def test_free_E_unchanged_by_the_option():
    df = grid_points(LAW, 5, noise=0.003, seed=1, floor=LAW.E)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = fit_study(df, options=FitOptions(n_boot=0, extrapolate=False))
    assert study.fixed_E is None and study.approach3.fixed_E is None
    assert study.to_json()["approach3"]["E_fixed"] is None


def _csv(tmp_path, df: pd.DataFrame, name: str = "t.csv") -> str:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return str(path)


def test_fit_json_holds_the_fixed_E(tmp_path, capsys):
    df = grid_points(LAW, 4, noise=0.002, seed=2, floor=LAW.E)
    out = tmp_path / "fits.json"
    assert (
        main(
            ["fit", _csv(tmp_path, df), "--fix-E", "floor", "--bootstrap", "0", "--json", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "Approach 3 (E fixed at 0.6995 = entropy_floor)" in text
    a3 = json.loads(out.read_text())["approach3"]
    assert a3["E"] == LAW.E and a3["E_fixed"] == {
        "value": LAW.E,
        "source": "entropy_floor",
        "note": "E held fixed, not fitted: it has no interval or SE",
    }
    assert a3["status"] == "converged" and a3["alpha"] == pytest.approx(LAW.alpha, rel=0.05)
    assert (
        main(["fit", _csv(tmp_path, df), "--fix-E", "0.5", "--bootstrap", "0", "--json", str(out)])
        == 0
    )
    a3 = json.loads(out.read_text())["approach3"]
    assert a3["E"] == 0.5 and a3["E_fixed"]["source"] == "value"


BASE = grid_points(LAW, 4, noise=0.002, seed=2, floor=LAW.E)


@pytest.mark.parametrize(
    "table, args, needles",
    [
        (BASE.drop(columns="entropy_floor"), ["--fix-E", "floor"], ["no entropy_floor column"]),
        (
            BASE.assign(entropy_floor=[np.nan] + [LAW.E] * 15),
            ["--fix-E", "floor"],
            ["empty/NaN in 1 of 16 rows"],
        ),
        (
            BASE.assign(entropy_floor=[0.9] + [LAW.E] * 15),
            ["--fix-E", "floor"],
            ["differs between rows", "0.6995 to 0.9"],
        ),
        (
            BASE.assign(entropy_floor=5.0),
            ["--fix-E", "floor"],
            ["E = 5 is not strictly below", f"{BASE['loss'].min():.6g}"],
        ),
        (
            BASE,
            ["--fix-E", repr(float(BASE["loss"].min()))],
            ["not strictly below the lowest loss"],
        ),
        (BASE, ["--fix-E", "nope"], ["'nope'", "positive number"]),
        (BASE, ["--fix-E", "-0.5"], ["positive number"]),
        (
            BASE.assign(g=["x"] * 8 + ["y"] * 8, entropy_floor=[0.6] * 8 + [0.6] * 7 + [0.65]),
            ["--fix-E", "floor", "--group", "g"],
            ["in group 'y'", "differs between rows"],
        ),
    ],
)
def test_bad_fix_E_is_one_line_exit_2(tmp_path, capsys, table, args, needles):
    assert main(["fit", _csv(tmp_path, table), "--bootstrap", "0", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_floor_per_group(tmp_path, capsys):
    low = ChinchillaLaw(E=0.5, A=6.0, B=40.0, alpha=0.15, beta=0.25)
    df = pd.concat(
        [
            grid_points(LAW, 4, 0.002, 2, floor=LAW.E).assign(g="a"),
            grid_points(low, 4, 0.002, 2, floor=0.5).assign(g="b"),
        ]
    )
    out = tmp_path / "g.json"
    assert (
        main(
            [
                "fit",
                _csv(tmp_path, df),
                "--fix-E",
                "floor",
                "--group",
                "g",
                "--bootstrap",
                "0",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    groups = json.loads(out.read_text())["groups"]
    assert groups["a"]["approach3"]["E"] == LAW.E and groups["b"]["approach3"]["E"] == 0.5


def test_floor_survives_curve_points_and_reaches_the_report(tmp_path):
    sweep = write_sweep(tmp_path / "runs" / "toy", seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pts = load_points(sweep, curves_as_points=True)
    assert len(pts.frame) == 49 * 8 and (pts.frame["entropy_floor"] == SWEEP_LAW.E).all()
    with pytest.raises(DataError, match="no entropy_floor column"):
        fit_study(
            pts.frame.drop(columns="entropy_floor"), options=FitOptions(n_boot=0, fix_E="floor")
        )
    out = write_report(sweep, tmp_path / "analysis", FitOptions(n_boot=8, fix_E="floor"))
    md = (out / "report.md").read_text()
    assert "**Approach 3 (E fixed at 1.9000 = entropy_floor)**" in md
    assert "| E | 1.9 | fixed, not fitted |" in md and "E was held fixed at **1.9000**" in md
    fits = json.loads((out / "fits.json").read_text())
    assert (
        fits["approach3"]["E_fixed"]["value"] == SWEEP_LAW.E
        and fits["provenance"]["options"]["fix_E"] == "floor"
    )
    assert fits["approach3"]["alpha"] == pytest.approx(SWEEP_LAW.alpha, rel=0.1)

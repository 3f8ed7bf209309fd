"""Figures: each one's plotted points and curves come from the data and the fit (reference data and
a sweep folder drawn from a known Chinchilla law), not only that a file exists."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from scaling.analysis import plots as P
from scaling.analysis.laws import ChinchillaLaw, FitOptions, fit_study
from scaling.analysis.tables import load_points
from scaling.figure import DPI

REF = Path(__file__).resolve().parent / "data" / "reference"  # published tables, see its README

TRUE = ChinchillaLaw(
    E=1.9, A=406.4, B=410.7, alpha=0.34, beta=0.28
)  # Hoffmann's exponents, a known floor
N_SIZES = 3e7 * 2.0 ** np.arange(7)  # loss 2.6 to 4.5 nats; optimum inside most IsoFLOP diagonals
D_SIZES = 6e8 * 2.0 ** np.arange(7)


def write_sweep(folder: Path, seed: int = 0, noise: float = 0.004) -> Path:
    """A sweep folder per the run-store contract (runs.csv + <run_id>/metrics.jsonl), losses from
    TRUE with lognormal noise: a 7 x 7 grid of N and D (IsoFLOP diagonals), 8 evaluations a run."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = []
    for i, n in enumerate(N_SIZES):
        for j, d in enumerate(D_SIZES):
            run_id = f"n{i}_d{j}"
            tokens = d * np.arange(1, 9) / 8
            loss = TRUE.predict(n, tokens) * np.exp(noise * rng.standard_normal(tokens.size))
            (folder / run_id).mkdir()
            with open(folder / run_id / "metrics.jsonl", "w") as fh:
                for k, (t, lv) in enumerate(zip(tokens, loss)):
                    fh.write(
                        json.dumps(
                            {
                                "step": k + 1,
                                "tokens": t,
                                "flops": 6 * n * t,
                                "loss_train": lv * 1.01,
                                "loss_val": lv,
                                "lr": 1e-3,
                                "wall_s": k,
                            }
                        )
                        + "\n"
                    )
            rows.append(
                dict(
                    run_id=run_id,
                    sweep=folder.name,
                    arch="decoder",
                    data="synthetic",
                    size=f"s{i}",
                    N=n,
                    N_nonembed=0.8 * n,
                    D=d,
                    C=6 * n * d,
                    C_6ND=6 * n * d,
                    C_kaplan=6 * 0.8 * n * d,
                    C_chinchilla=6.2 * n * d,
                    loss=loss[-1],
                    loss_train=loss[-1] * 1.01,
                    entropy_floor=TRUE.E,
                    seed=0,
                    status="ok",
                    wall_s=1.0,
                    tokens_per_s=1e6,
                    d_model=64,
                    n_layers=2,
                    n_heads=2,
                    ctx=64,
                )
            )
    rows.append(
        dict(rows[0], run_id="diverged_run", status="diverged", loss=9.9)
    )  # must be left out
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    return folder


def _fit(points, n_boot=20):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_study(points, options=FitOptions(n_boot=n_boot, seed=1))


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("runs") / "toy")


@pytest.fixture(scope="module")
def sweep(sweep_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = load_points(sweep_dir)
    return points, _fit(points)


@pytest.fixture(scope="module")
def epoch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = load_points(REF / "epoch_chinchilla_svg_extracted_data.csv", drop_top_loss=5)
    return points, _fit(points)


@pytest.fixture(params=["sweep", "epoch"])
def source(request):
    return request.param, request.getfixturevalue(request.param)


def _offsets(ax) -> np.ndarray:
    """Every scatter point drawn on ax, as (x, y) rows."""
    parts = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    return np.concatenate([np.asarray(p, float) for p in parts]) if parts else np.empty((0, 2))


def _has_row(table: np.ndarray, row, rtol=1e-9) -> bool:
    return bool(np.any(np.all(np.isclose(table, row, rtol=rtol), axis=1)))


def _same(a, b) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and np.allclose(a, b)


def _hlines(ax) -> list[float]:
    return [
        float(line.get_ydata()[0])
        for line in ax.lines
        if len(set(np.asarray(line.get_ydata(), float))) == 1
    ]


@pytest.mark.parametrize("which", ["loss_vs_n", "loss_vs_d"])
def test_loss_figures_draw_the_points_and_the_fitted_laws(source, which):
    name, (points, study) = source
    plot = getattr(P, which)(study)
    assert isinstance(plot.figure, Figure) and plot.name == which
    ax = plot.figure.axes[0]
    x, by = ("N", "D") if which == "loss_vs_n" else ("D", "N")
    drawn = _offsets(ax)
    assert len(drawn) == len(points.frame)
    for xv, lv in zip(points.frame[x], points.frame["loss"]):
        assert _has_row(drawn, (xv, lv))
    for s in plot.data["series"]:
        args = (s["x"], s["value"]) if x == "N" else (s["value"], s["x"])
        np.testing.assert_allclose(s["approach3"], study.approach3.law.predict(*args))
        np.testing.assert_allclose(s["kaplan"], study.kaplan.law.predict(*args))
        assert any(_same(line.get_ydata(), s["approach3"]) for line in ax.lines)
    assert ax.get_xscale() == "log" and "loss" in ax.get_ylabel() and ax.get_legend() is not None
    assert "L(N, D) = " in ax.get_title()
    if (
        name == "sweep"
    ):  # a grid: one exact series per value, and the known floor beside the fitted E
        assert not plot.data["binned"] and len(plot.data["series"]) == 7
        np.testing.assert_allclose(
            sorted(s["value"] for s in plot.data["series"]), D_SIZES if by == "D" else N_SIZES
        )
        assert plot.data["floor"] == pytest.approx(TRUE.E)
        assert plot.data["E"] == study.approach3.law.E == pytest.approx(TRUE.E, abs=0.1)
        lines, (lo, hi) = _hlines(ax), ax.get_ylim()
        labels = ax.get_legend_handles_labels()[1]
        for v in (
            TRUE.E,
            study.approach3.law.E,
        ):  # drawn inside the losses' axis, else named in the legend
            drawn = any(np.isclose(h, v) for h in lines)
            assert drawn == (lo <= v <= hi)
            assert drawn or any(f"{v:.3f}" in t and "below the axis" in t for t in labels)
    else:  # continuous D: log bins, no floor known
        assert plot.data["binned"] and plot.data["floor"] is None


def test_isoflop_profiles_minima_and_fit(source):
    name, (points, study) = source
    plot = P.isoflop(study)
    fit = study.approach2
    assert len(plot.data["budgets"]) == len(fit.budgets)
    ax = plot.figure.axes[0]
    bx = [a for a in plot.figure.axes if "N*" in a.get_ylabel()][0]
    drawn = _offsets(ax)
    for b, d in zip(fit.budgets, plot.data["budgets"]):
        np.testing.assert_allclose(d["N"], b.N)
        assert _has_row(drawn, (b.n_star, b.loss_star))  # the minimum marker
        assert any(
            _same(line.get_xdata(), b.curve_n) and _same(line.get_ydata(), b.curve_loss)
            for line in ax.lines
        )
    used = [b for b in fit.budgets if b.used]
    right = _offsets(bx)
    for b in used:
        assert _has_row(right, (b.C, b.n_star))
    np.testing.assert_allclose(plot.data["fit_N"], fit.allocation.n_opt(plot.data["fit_C"]))
    assert f"{fit.a:.3f}" in bx.get_legend().get_texts()[-1].get_text()
    if name == "sweep":  # minima of a known law: N* within a factor 1.6 of the true optimum
        n_true, _ = TRUE.allocation(np.array([b.C for b in used]))
        assert np.all(np.abs(np.log(np.array([b.n_star for b in used]) / n_true)) < np.log(1.6))


def test_approach1_curves_and_envelope(source, request):
    name, (points, study) = source
    plot = P.approach1_envelope(study, points)
    ax = plot.figure.axes[0]
    env = study.approach1.envelope
    assert any(
        _same(line.get_xdata(), env["C"]) and _same(line.get_ydata(), env["loss"])
        for line in ax.lines
    )
    np.testing.assert_allclose(
        plot.data["fit_N"], study.approach1.allocation.n_opt(plot.data["fit_C"])
    )
    if name == "sweep":
        assert study.approach1.source == "curves"
        curves = plot.data["curves"]
        assert len(curves) == 49  # every ok run, not the diverged one
        one = next(c for c in curves if c["run_id"] == "n3_d4")
        rows = [
            json.loads(row)
            for row in (request.getfixturevalue("sweep_dir") / "n3_d4" / "metrics.jsonl")
            .read_text()
            .splitlines()
        ]
        np.testing.assert_allclose(one["loss"], [r["loss_val"] for r in rows])
        np.testing.assert_allclose(one["flops"], [r["flops"] for r in rows])
        # the envelope lies on or under every curve
        for c in curves:
            inside = (env["C"] >= c["flops"][0]) & (env["C"] <= c["flops"][-1])
            interp = np.exp(
                np.interp(np.log(env["C"][inside]), np.log(c["flops"]), np.log(c["loss"]))
            )
            assert np.all(env["loss"][inside].to_numpy() <= interp * (1 + 1e-9))
    else:
        assert plot.data["curves"] is None
        drawn = _offsets(ax)
        assert len(drawn) == len(points.frame) and _has_row(
            drawn, (points.frame["C"][0], points.frame["loss"][0])
        )


def test_approach3_contours_surface_frontier_and_budgets(source):
    name, (points, study) = source
    plot = P.approach3_contours(study)
    law = study.approach3.law
    d = plot.data
    NN, DD = np.meshgrid(d["N"], d["D"])
    np.testing.assert_allclose(d["loss"], law.predict(NN, DD))
    f = d["frontier"]
    np.testing.assert_allclose(6 * f["N"] * f["D"], f["C"], rtol=1e-9)
    np.testing.assert_allclose(f["N"], law.allocation(f["C"])[0])
    slope = np.polyfit(np.log(f["N"]), np.log(f["D"]), 1)[0]
    assert slope == pytest.approx(law.b / law.a, rel=1e-6)
    ax = plot.figure.axes[0]
    for C in d["iso_C"]:  # dotted lines of constant C = 6ND
        assert any(
            np.allclose(np.asarray(line.get_xdata()) * np.asarray(line.get_ydata()) * 6, C)
            for line in ax.lines
        )
    assert _offsets(ax).shape[0] == len(points.frame)


def test_comparison_lines_bands_and_exponents(source):
    name, (points, study) = source
    plot = P.comparison(study)
    C = plot.data["C"]
    for law, res in plot.data["lines"].items():
        fit = getattr(study, law)
        alloc = fit.allocation if law in ("approach1", "approach2") else fit.law
        n, dd = alloc.allocation(C)
        np.testing.assert_allclose(res["N"], n)
        np.testing.assert_allclose(res["D"], dd)
        lo, hi = res["N_band"]
        assert np.all(lo <= hi)
        centre = len(C) // 4  # inside the data: the fitted line lies in its own band
        assert lo[centre] <= n[centre] * 1.0001 and hi[centre] >= n[centre] * 0.9999
    rows = {r.approach: r for r in study.comparison.table}
    assert set(plot.data["a"]) == set(rows)
    for law, (a, lo, hi) in plot.data["a"].items():
        assert a == pytest.approx(rows[law].a) and (lo, hi) == pytest.approx(rows[law].a_ci)
    forest = plot.figure.axes[2]
    assert [t.get_text() for t in forest.get_yticklabels()] == [P.SHORT[k] for k in plot.data["a"]]
    if (
        name == "sweep"
    ):  # every Chinchilla approach finds the true a = beta/(alpha+beta) within 0.08
        for law in ("approach1", "approach2", "approach3"):
            assert plot.data["a"][law][0] == pytest.approx(TRUE.a, abs=0.08)


def test_comparison_legend_flags_a_fit_that_is_not_a_clean_optimum(sweep):
    """A law whose fit stopped at a bound says so where it is drawn, not only in the report."""
    from scaling.analysis.laws.fit import FitStatus

    points, study = sweep
    clean = [t.get_text() for t in P.comparison(study).figure.axes[0].get_legend().get_texts()]
    assert not any("bound-hit" in t for t in clean)
    bound = dataclasses.replace(study.approach3, status=FitStatus.BOUND_HIT)
    hit = dataclasses.replace(study, fits={**study.fits, "approach3": bound})
    texts = [t.get_text() for t in P.comparison(hit).figure.axes[0].get_legend().get_texts()]
    assert [t for t in texts if "bound-hit" in t] == [
        next(t for t in texts if t.startswith(P.LABEL["approach3"]))
    ]


def test_bootstrap_figure_skips_a_law_whose_resamples_all_failed(sweep):
    """A fit stopped at a bound leaves NaN resamples: nothing is drawn for it and nothing warns."""
    points, study = sweep
    failed = {
        **study.samples,
        "approach3": {k: np.full_like(v, np.nan) for k, v in study.samples["approach3"].items()},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot = P.bootstrap(dataclasses.replace(study, samples=failed))
    assert "approach3" not in plot.data["a"] and plot.data["E"].size == 0
    np.testing.assert_array_equal(
        plot.data["a"]["kaplan"],
        study.samples["kaplan"]["a"][np.isfinite(study.samples["kaplan"]["a"])],
    )


def test_bootstrap_histograms_are_the_samples(source):
    name, (points, study) = source
    plot = P.bootstrap(study)
    for key in ("a", "b"):
        for law, v in plot.data[key].items():
            s = study.samples[law][key]
            np.testing.assert_array_equal(v, s[np.isfinite(s)])
    ax = plot.figure.axes[0]
    assert len(ax.patches) == len(plot.data["a"])  # one step histogram per approach
    assert len(plot.figure.axes) == 3 and plot.data["E"] is not None
    if name == "sweep":
        assert any(np.isclose(line.get_xdata()[0], TRUE.E) for line in plot.figure.axes[2].lines)
        lo, hi = np.percentile(plot.data["E"], [0, 100])
        assert lo - 0.05 < TRUE.E < hi + 0.05


def test_residuals_and_extrapolation(source):
    name, (points, study) = source
    plot = P.residuals(study)
    axes = plot.figure.axes
    for ax, key in zip(axes[:3], ("N", "D", "C")):
        drawn = _offsets(ax)
        for _law, r in study.residuals.items():
            assert _has_row(drawn, (points.frame[key].iloc[5], r[5]))
    np.testing.assert_allclose(
        study.residuals["approach3"],
        np.log(
            study.approach3.law.predict(points.frame["N"], points.frame["D"]) / points.frame["loss"]
        ),
    )
    ex = study.comparison.extrapolation
    assert ex is not None
    pred = plot.data["extrapolation"]
    drawn = _offsets(axes[3])
    for _, row in pred.iterrows():
        assert _has_row(drawn, (row["loss"], row["approach3"]))
    assert np.mean(np.abs(pred["approach3"] / pred["loss"] - 1)) == pytest.approx(
        ex.errors["approach3"]
    )


def test_group_comparison_one_colour_per_group():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pts = load_points(
            REF / "porian2024_isoflop_points.csv",
            c="flops",
            group="label",
            query="source_file == 'summary_df' and dataset == 'rw' and "
            "label in ['Reproducing Kaplan et al.', 'Optimizer tuning (no decay)']",
        )
        studies = {k: fit_study(p, options=FitOptions(n_boot=8)) for k, p in pts.groups().items()}
    plot = P.group_comparison(studies)
    assert list(plot.data["lines"]) == list(studies)
    for name, res in plot.data["lines"].items():
        np.testing.assert_allclose(res["N"], studies[name].approach2.allocation.n_opt(res["C"]))
        assert plot.data["a"][name]["approach2"][0] == pytest.approx(studies[name].approach2.a)
    nx = plot.figure.axes[0]
    colours = {
        tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
        for line in nx.lines
    }
    assert len(colours) == 2
    a = {k: v["approach2"][0] for k, v in plot.data["a"].items()}
    assert a["Reproducing Kaplan et al."] == pytest.approx(0.834, abs=0.03)
    assert a["Optimizer tuning (no decay)"] == pytest.approx(0.497, abs=0.03)


def test_missing_law_is_skipped_with_reason(tmp_path):
    # one budget only: no Approach 2 (needs 2), yet the other figures are drawn
    n = np.array([1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7])
    d = 1e15 / (6 * n)
    frame = pd.DataFrame({"N": n, "D": d, "C": 6 * n * d, "loss": TRUE.predict(n, d)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = fit_study(frame, options=FitOptions(n_boot=0))
    plots, skipped = P.all_figures(study)
    assert "isoflop" in skipped and "Approach 2" in skipped["isoflop"]
    assert "bootstrap" in skipped and "--bootstrap" in skipped["bootstrap"]
    assert {p.name for p in plots} >= {"comparison", "loss_vs_n", "residuals"}


def test_save_png_and_pdf(tmp_path, sweep):
    plot = P.comparison(sweep[1])
    paths = plot.save(tmp_path, pdf=True)
    assert [p.name for p in paths] == ["comparison.png", "comparison.pdf"]
    from PIL import Image

    w, h = Image.open(paths[0]).size
    assert (w, h) == (
        round(plot.figure.get_figwidth() * DPI),
        round(plot.figure.get_figheight() * DPI),
    )
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_plotting_never_imports_torch():
    code = (
        "import sys, scaling.analysis.plots, scaling.analysis.report, scaling.analysis.plotcli; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"

"""Every figure's axes follow its data: the plotted points, curves and intervals cover at least half
of each axis (in log space on log axes), reference lines and interval bands that lie far off do not
stretch it, and contour labels are never cut at an edge or hidden behind the legend."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.patches import Polygon
from test_plots import REF, write_sweep

from scaling.analysis import plots as P
from scaling.analysis.archplots import loss_vs_compute
from scaling.analysis.laws import FitOptions, fit_study
from scaling.analysis.tables import load_points


def _extent(ax) -> tuple[list, list]:
    """x and y values of the data artists: lines in data coordinates (not axhline/axvline), scatter
    offsets, error bars and histogram outlines."""
    xs, ys = [], []
    for ln in ax.get_lines():
        if ln.get_transform() == ax.transData and len(ln.get_xdata()):
            xs.append(np.asarray(ln.get_xdata(), float))
            ys.append(np.asarray(ln.get_ydata(), float))
    for col in ax.collections:
        if isinstance(col, PathCollection) and col.get_offset_transform() == ax.transData:
            off = np.asarray(col.get_offsets(), float)
            if off.size:
                xs.append(off[:, 0])
                ys.append(off[:, 1])
        elif isinstance(col, LineCollection) and col.get_transform() == ax.transData:
            for seg in col.get_segments():
                if len(seg):
                    xs.append(seg[:, 0])
                    ys.append(seg[:, 1])
    for patch in ax.patches:
        if isinstance(patch, Polygon) and patch.get_transform() == ax.transData:
            xs.append(patch.get_xy()[:, 0])
            ys.append(patch.get_xy()[:, 1])
    return xs, ys


def _cover(values, lim, scale) -> float | None:
    """Share of the axis [lim] that the data span (clipped to it); None without data."""
    if not values:
        return None
    v = np.concatenate(values)
    lo, hi = sorted(lim)
    if scale == "log":
        v, lo, hi = np.log10(v[v > 0]), np.log10(lo), np.log10(hi)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    v = np.clip(v, lo, hi)
    return float((v.max() - v.min()) / (hi - lo))


def assert_axes_follow_data(plot) -> None:
    FigureCanvasAgg(plot.figure).draw()
    for i, ax in enumerate(plot.figure.axes):
        if not ax.axison or ax.get_label() == "<colorbar>":
            continue
        xs, ys = _extent(ax)
        for name, vals, lim, scale in (
            ("x", xs, ax.get_xlim(), ax.get_xscale()),
            ("y", ys, ax.get_ylim(), ax.get_yscale()),
        ):
            c = _cover(vals, lim, scale)
            assert c is None or c >= 0.5, (
                f"{plot.name}, axes {i}, {name}: the data cover {c:.0%} of the axis"
            )


def _fit(points, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_study(points, options=FitOptions(n_boot=10, seed=1, **kw))


@pytest.fixture(scope="module")
def low_floor(tmp_path_factory):
    """The toy sweep with a known floor far below its losses (0.3 against 2.6-4.5), as on our
    synthetic language, and E held there: the floor line and E's band must not stretch the axis."""
    folder = write_sweep(tmp_path_factory.mktemp("runs") / "lowfloor")
    runs = pd.read_csv(folder / "runs.csv")
    runs["entropy_floor"] = 0.3
    runs.to_csv(folder / "runs.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = load_points(folder)
    return points, _fit(points), _fit(points, fix_E="floor")


def test_every_figure_of_a_sweep_with_a_far_floor(low_floor):
    points, free, fixed = low_floor
    for study in (free, fixed):
        plots, _ = P.all_figures(study, points)
        assert {p.name for p in plots} >= {
            "loss_vs_n",
            "loss_vs_d",
            "comparison",
            "approach3_contours",
        }
        for plot in plots:
            assert_axes_follow_data(plot)
    lvd = P.loss_vs_d(fixed)
    labels = lvd.figure.axes[0].get_legend_handles_labels()[1]
    assert any("entropy floor 0.300" in t and "below the axis" in t for t in labels)


def test_every_figure_of_published_tables():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epoch = load_points(REF / "epoch_chinchilla_svg_extracted_data.csv", drop_top_loss=5)
        porian = load_points(
            REF / "porian2024_isoflop_points.csv",
            c="flops",
            group="label",
            query="source_file == 'summary_df' and dataset == 'rw'",
        )
    study = _fit(epoch)
    for plot in P.all_figures(study, epoch)[0]:
        assert_axes_follow_data(plot)
    groups = {k: _fit(p) for k, p in list(porian.groups().items())[:2]}
    for plot in (P.group_comparison(groups), loss_vs_compute(groups)):
        assert_axes_follow_data(plot)


def test_clipped_E_band_is_marked(low_floor):
    points, free, _ = low_floor
    lo, hi = free.ci("approach3", "E")
    plot = P.loss_vs_n(free)
    ylim = plot.figure.axes[0].get_ylim()
    if plot.data["E_band_clipped"]:
        labels = plot.figure.axes[0].get_legend_handles_labels()[1]
        assert any("band clipped at the axis" in t for t in labels)
    assert plot.data["E_band_clipped"] == (lo < ylim[0] or hi > ylim[1])


def test_contour_labels_inside_the_axes_and_clear_of_the_legend(low_floor):
    _, study, _ = low_floor
    plot = P.approach3_contours(study)
    FigureCanvasAgg(plot.figure).draw()
    ax = plot.figure.axes[0]
    box = ax.get_window_extent()
    legend = ax.get_legend().get_window_extent()
    assert not box.overlaps(legend)
    texts = [t for t in ax.texts if t.get_visible()]
    assert texts and len(plot.data["labels"]) == len(texts)
    for t in texts:
        e = t.get_window_extent()
        assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1, t.get_text()

"""Figures and words that compare the three architectures (docs/architectures.md).

- `loss_vs_compute(studies)`: every group's runs and its Approach 3 compute frontier on one figure.

The attention masks each architecture applies are a figure of the models:
scaling/experiment/models/patterns.py.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from scaling.analysis.laws.groups import ordered
from scaling.analysis.plots import Plot

# ----------------------------------------------------------------------- loss against compute


def loss_vs_compute(studies: dict) -> Plot:
    """Every run's final loss against C, one colour per group, with that group's Approach 3
    compute frontier L(N_opt(C), D_opt(C)) and its known floor (dotted) where there is one."""
    from scaling.analysis.plots import data_limits, ref_line

    fig = Figure(figsize=(7.2, 5.0), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["tab10"]
    drawn = {
        name: _draw_group(ax, studies[name], name, cmap(gi % 10))
        for gi, name in enumerate(ordered(studies))
    }
    lim = data_limits(
        [v for e in drawn.values() for k, v in e.items() if k in ("loss", "frontier")], log=True
    )
    for gi, name in enumerate(ordered(studies)):  # a floor far below the losses is named, not drawn
        if "floor" in drawn[name]:
            ref_line(
                ax,
                "h",
                drawn[name]["floor"],
                lim,
                color=cmap(gi % 10),
                ls=":",
                lw=1.2,
                label=f"{name}: known floor E* = {drawn[name]['floor']:.3f}",
            )
    ax.set_ylim(*lim)
    _loss_compute_axes(ax, studies)
    return Plot(
        "loss_vs_compute",
        "Loss against compute, every group on one figure, with its Approach 3 frontier",
        fig,
        dict(groups=drawn),
    )


def _draw_group(ax, s, name: str, color) -> dict:
    """One group's runs and its Approach 3 frontier; the arrays drawn and its known floor."""
    from scaling.analysis.plots import entropy_floor

    df = s.points
    ax.scatter(df["C"], df["loss"], s=16, color=color, alpha=0.8, label=f"{name}: runs")
    entry = {"C": df["C"].to_numpy(float), "loss": df["loss"].to_numpy(float)}
    if s.approach3 is not None:
        C = np.logspace(np.log10(df["C"].min()), np.log10(df["C"].max()), 100)
        frontier = s.approach3.law.loss_at_budget(C)
        ax.plot(
            C,
            frontier,
            color=color,
            lw=1.6,
            label=f"{name}: Approach 3 frontier (a={s.approach3.law.a:.2f})",
        )
        entry.update(frontier_C=C, frontier=frontier)
    floor = entropy_floor(s)
    if floor is not None:
        entry["floor"] = floor
    return entry


def _loss_compute_axes(ax, studies: dict) -> None:
    """Log axes with plain-number loss ticks, labels (units: nats for our runs), legend, title."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (
        ax.yaxis.set_major_formatter,
        ax.yaxis.set_minor_formatter,
    ):  # a loss spans < a decade
        axis(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("C (training FLOPs, the table's C column)")
    ours = all("run_id" in s.points for s in studies.values())
    ax.set_ylabel(
        "final validation loss (" + ("nats per predicted token" if ours else "units as given") + ")"
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(
        "Loss against compute per group (each objective in its own units: compare slopes, not "
        "levels)",
        fontsize=9,
    )


# ------------------------------------------------------------------------------ command line

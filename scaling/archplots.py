"""Figures and words that compare the three architectures (docs/architectures.md).

- `attention_patterns()`: the boolean attention masks that the modules of each architecture apply
  (asked from the models via `Transformer.masks()`, not drawn by hand).
- `loss_vs_compute(studies)`: every group's runs and its Approach 3 compute frontier on one figure.

Only `attention_patterns` imports torch (lazily): the fitting side can call the rest.
`python -m scaling.archplots --out analysis/architectures` writes attention_patterns.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from scaling.laws.groups import ARCH_ORDER, ordered
from scaling.plots import Plot

# ------------------------------------------------------------------------------ attention patterns

def pattern_masks(ctx: int = 32, **knobs) -> dict[str, dict[str, np.ndarray]]:
    """{arch: {role: (queries, keys) bool}} from a one-layer model of each arch at context `ctx`
    (knobs: mask_fraction, noise_density, mean_span); the masks come from `Transformer.masks()`."""
    from scaling.models import ModelShape, Transformer

    out = {}
    for arch in ARCH_ORDER:
        shape = ModelShape(d_model=16, n_layers=1, n_heads=1, ctx=ctx, arch=arch, attention="matmul", **knobs)
        out[arch] = {role: m.numpy() for role, m in Transformer(shape).masks().items()}
    return out


def combined_encoder_decoder(masks: dict[str, np.ndarray]) -> np.ndarray:
    """The encoder-decoder's three masks as one (S + T) x (S + T) matrix over [encoder; decoder]
    positions (Raffel et al. 2020, Fig. 4): encoder self top left, cross bottom left, decoder self
    bottom right; top right stays False (the encoder runs before, and never sees, the decoder)."""
    enc, dec, cross = masks["encoder self"], masks["decoder self"], masks["cross"]
    S, T = enc.shape[0], dec.shape[0]
    out = np.zeros((S + T, S + T), dtype=bool)
    out[:S, :S], out[S:, :S], out[S:, S:] = enc, cross, dec
    return out


def attention_patterns(ctx: int = 32, **knobs) -> Plot:
    """Three panels: which key each query may attend to (dark = allowed) in the decoder, the
    encoder and the encoder-decoder (its encoder self, cross and decoder self blocks outlined)."""
    from matplotlib.patches import Rectangle

    masks = pattern_masks(ctx, **knobs)
    ed = masks["encoder_decoder"]
    S = ed["encoder self"].shape[0]
    panels = [("decoder: causal self-attention", masks["decoder"]["self"]),
              ("encoder: full (bidirectional) self-attention", masks["encoder"]["self"]),
              ("encoder-decoder: [encoder; decoder] positions", combined_encoder_decoder(ed))]
    fig = Figure(figsize=(15.5, 5.6), layout="constrained")
    axes = fig.subplots(1, 3)
    cmap = ListedColormap(["#f2f2f2", "#1f4e79"])
    for ax, (title, m) in zip(axes, panels):
        ax.imshow(m, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="equal")
        ax.set_title(f"{title}\n{m.shape[0]} queries x {m.shape[1]} keys", fontsize=9)
        ax.set_xlabel("key position", fontsize=8)
        ax.set_ylabel("query position", fontsize=8)
        ax.tick_params(labelsize=7)
    ax, n = axes[2], ed["decoder self"].shape[0]
    for (x0, y0, w, h, label, color) in ((0, 0, S, S, "encoder self\n(full)", "white"),
                                         (0, S, S, n, "cross: decoder -> encoder (full)", "white"),
                                         (S, S, n, n, "decoder\nself\n(causal)", "tab:orange"),
                                         (S, 0, n, S, "none: the\nencoder never\nsees the\ndecoder", "black")):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, ec="tab:orange", lw=1.5))
        ax.text(x0 + w / 2 - 0.5, y0 + h / 2 - 0.5, label, ha="center", va="center", fontsize=7, color=color)
    fig.suptitle(f"Attention masks the models' modules apply (Transformer.masks(), ctx={ctx}, one layer; dark: the "
                 f"query may attend to the key; encoder-decoder: {S} corrupted-text positions, {n} decoder positions)",
                 fontsize=9.5)
    return Plot("attention_patterns", "The attention masks each architecture's modules apply", fig, dict(masks=masks))


# ------------------------------------------------------------------------------ loss against compute

def loss_vs_compute(studies: dict) -> Plot:
    """Every run's final loss against C, one colour per group, with that group's Approach 3
    compute frontier L(N_opt(C), D_opt(C)) and its known floor (dotted) where there is one."""
    from scaling.plots import data_limits, entropy_floor, ref_line

    fig = Figure(figsize=(7.2, 5.0), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["tab10"]
    drawn: dict[str, dict] = {}
    floors = []
    for gi, name in enumerate(ordered(studies)):
        s, color = studies[name], cmap(gi % 10)
        df = s.points
        ax.scatter(df["C"], df["loss"], s=16, color=color, alpha=0.8, label=f"{name}: runs")
        entry = {"C": df["C"].to_numpy(float), "loss": df["loss"].to_numpy(float)}
        if s.approach3 is not None:
            C = np.logspace(np.log10(df["C"].min()), np.log10(df["C"].max()), 100)
            frontier = s.approach3.law.loss_at_budget(C)
            ax.plot(C, frontier, color=color, lw=1.6, label=f"{name}: Approach 3 frontier (a={s.approach3.law.a:.2f})")
            entry.update(frontier_C=C, frontier=frontier)
        floor = entropy_floor(s)
        if floor is not None:
            floors.append((floor, color, name))
            entry["floor"] = floor
        drawn[name] = entry
    lim = data_limits([v for e in drawn.values() for k, v in e.items() if k in ("loss", "frontier")],
                      log=True)
    for floor, color, name in floors:  # a floor far below the losses is named, not drawn
        ref_line(ax, "h", floor, lim, color=color, ls=":", lw=1.2,
                 label=f"{name}: known floor E* = {floor:.3f}")
    ax.set_ylim(*lim)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):  # a loss spans < a decade
        axis(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("C (training FLOPs, the table's C column)")
    ours = all("run_id" in s.points for s in studies.values())
    ax.set_ylabel("final validation loss ("
                  + ("nats per predicted token" if ours else "units as given") + ")")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Loss against compute per group (each objective in its own units: compare slopes, not levels)",
                 fontsize=9)
    return Plot("loss_vs_compute", "Loss against compute, every group on one figure, with its Approach 3 frontier",
                fig, dict(groups=drawn))


# ------------------------------------------------------------------------------ command line

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scaling.archplots",
                                description="Write attention_patterns.png: the masks each architecture applies.")
    p.add_argument("--out", default="analysis/architectures", help="folder (created if missing)")
    p.add_argument("--ctx", type=int, default=32, help="context length of the drawn models (default 32)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in attention_patterns(args.ctx).save(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

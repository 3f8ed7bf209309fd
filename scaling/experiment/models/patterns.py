"""The attention masks each architecture's modules apply, drawn from the models themselves
(`Transformer.masks()`, not by hand): `python -m scaling.experiment.models.patterns --out
analysis/architectures` writes attention_patterns.png (docs/architectures.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from scaling.experiment.models.shape import ARCHS, ModelShape
from scaling.experiment.models.transformer import Transformer
from scaling.figure import Plot


def pattern_masks(ctx: int = 32, **knobs) -> dict[str, dict[str, np.ndarray]]:
    """{arch: {role: (queries, keys) bool}} from a one-layer model of each arch at context `ctx`
    (knobs: mask_fraction, noise_density, mean_span); the masks come from `Transformer.masks()`."""
    out = {}
    for arch in ARCHS:
        shape = ModelShape(
            d_model=16, n_layers=1, n_heads=1, ctx=ctx, arch=arch, attention="matmul", **knobs
        )
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
    panels = [
        ("decoder: causal self-attention", masks["decoder"]["self"]),
        ("encoder: full (bidirectional) self-attention", masks["encoder"]["self"]),
        ("encoder-decoder: [encoder; decoder] positions", combined_encoder_decoder(ed)),
    ]
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
    for x0, y0, w, h, label, color in (
        (0, 0, S, S, "encoder self\n(full)", "white"),
        (0, S, S, n, "cross: decoder -> encoder (full)", "white"),
        (S, S, n, n, "decoder\nself\n(causal)", "tab:orange"),
        (S, 0, n, S, "none: the\nencoder never\nsees the\ndecoder", "black"),
    ):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, ec="tab:orange", lw=1.5))
        ax.text(
            x0 + w / 2 - 0.5,
            y0 + h / 2 - 0.5,
            label,
            ha="center",
            va="center",
            fontsize=7,
            color=color,
        )
    fig.suptitle(
        f"Attention masks the models' modules apply (Transformer.masks(), ctx={ctx}, one layer; "
        "dark: the query may attend to the key; "
        f"encoder-decoder: {S} corrupted-text positions, {n} decoder positions)",
        fontsize=9.5,
    )
    return Plot(
        "attention_patterns",
        "The attention masks each architecture's modules apply",
        fig,
        dict(masks=masks),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scaling.experiment.models.patterns",
        description="Write attention_patterns.png: the masks each architecture applies.",
    )
    p.add_argument("--out", default="analysis/architectures", help="folder (created if missing)")
    p.add_argument(
        "--ctx", type=int, default=32, help="context length of the drawn models (default 32)"
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in attention_patterns(args.ctx).save(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

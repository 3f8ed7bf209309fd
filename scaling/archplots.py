"""Figures and words that compare the three architectures (docs/architectures.md).

- `attention_patterns()`: the boolean attention masks that the modules of each architecture apply
  (asked from the models via `Transformer.masks()`, not drawn by hand).
- `loss_vs_compute(studies)`: every group's runs and its Approach 3 compute frontier on one figure.
- `comparison_markdown(studies)` / `comparison_text(studies)`: alpha, beta, a, b per group with
  intervals, and whether they differ beyond those intervals, in plain words.

Only `attention_patterns` imports torch (lazily): the fitting side can call the rest.
`python -m scaling.archplots --out analysis/architectures` writes attention_patterns.png.
"""

from __future__ import annotations

import argparse
import math
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from scaling.plots import Plot

ARCH_ORDER = ("decoder", "encoder", "encoder_decoder")
EXPONENTS = ("alpha", "beta", "a", "b")  # of Approach 3's L(N, D) = E + A/N^alpha + B/D^beta
MEANING = {"alpha": "alpha (L ~ N^-alpha)", "beta": "beta (L ~ D^-beta)", "a": "a (N_opt ~ C^a)",
           "b": "b (D_opt ~ C^b)"}


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

def _ordered(studies: dict) -> list[str]:
    """Group names, the three architectures first in their usual order."""
    return sorted(studies, key=lambda g: (ARCH_ORDER.index(g) if g in ARCH_ORDER else len(ARCH_ORDER), g))


def loss_vs_compute(studies: dict) -> Plot:
    """Every run's final loss against C, one colour per group, with that group's Approach 3
    compute frontier L(N_opt(C), D_opt(C)) and its known floor (dotted) where there is one."""
    from scaling.plots import entropy_floor

    fig = Figure(figsize=(7.2, 5.0), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["tab10"]
    drawn: dict[str, dict] = {}
    for gi, name in enumerate(_ordered(studies)):
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
            ax.axhline(floor, color=color, ls=":", lw=1.2, label=f"{name}: known floor E* = {floor:.3f}")
            entry["floor"] = floor
        drawn[name] = entry
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):  # a loss spans < a decade
        axis(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("C (training FLOPs, the table's C column)")
    ax.set_ylabel("final validation loss (nats per predicted token)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Loss against compute per group (each objective in its own units: compare slopes, not levels)",
                 fontsize=9)
    return Plot("loss_vs_compute", "Loss against compute, every group on one figure, with its Approach 3 frontier",
                fig, dict(groups=drawn))


# ------------------------------------------------------------------------------ the comparison in words

def _value(study, name: str) -> tuple[float, float, float]:
    """(value, lo, hi) of an Approach 3 quantity; nan where not fitted or without bootstrap."""
    if study.approach3 is None:
        return math.nan, math.nan, math.nan
    lo, hi = study.ci("approach3", name)
    return float(getattr(study.approach3.law, name)), float(lo), float(hi)


def _fmt(v: float, lo: float, hi: float) -> str:
    if not math.isfinite(v):
        return "not fitted"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if math.isfinite(lo) and math.isfinite(hi) else f"{v:.3f} [no interval]"


def comparison_statements(studies: dict) -> list[str]:
    """One plain-words sentence per exponent: which groups differ beyond their intervals."""
    names = _ordered(studies)
    pct = int(round(100 * next(iter(studies.values())).options.level)) if studies else 95
    out = []
    for q in EXPONENTS:
        vals = {n: _value(studies[n], q) for n in names}
        missing = [n for n, (v, lo, hi) in vals.items() if not (math.isfinite(lo) and math.isfinite(hi))]
        have = [n for n in names if n not in missing]
        lead = (f"{MEANING[q]}: no {pct}% interval for {', '.join(missing)} (its Approach 3 fit has none: not "
                "fitted, stopped at a bound, or no bootstrap)") if missing else f"{MEANING[q]}:"
        if len(have) < 2:
            out.append(f"{lead}; nothing left to compare.")
            continue
        among = " among the others" if missing else ""
        apart = [(x, y) for x, y in combinations(have, 2) if vals[x][2] < vals[y][1] or vals[y][2] < vals[x][1]]
        if not apart:
            out.append(f"{lead}{';' if missing else ''}{among} the {pct}% intervals of {', '.join(have)} overlap, so "
                       "these runs show no difference beyond the intervals.")
            continue
        pairs = "; ".join(f"{x} is {'higher' if vals[x][0] > vals[y][0] else 'lower'} than {y}" for x, y in apart)
        same = [f"{x} and {y}" for x, y in combinations(have, 2) if (x, y) not in apart]
        tail = f" ({', '.join(same)} overlap)" if same else ""
        out.append(f"{lead}{';' if missing else ''}{among} differs beyond the {pct}% intervals: {pairs}{tail}.")
    return out


def comparison_markdown(studies: dict) -> list[str]:
    """Markdown lines: a table of alpha, beta, a, b per group (Approach 3, with intervals) and the
    plain-words statements. For report.md's grouped branch."""
    names = _ordered(studies)
    pct = int(round(100 * next(iter(studies.values())).options.level))
    lines = [f"## Exponents per group (Approach 3, {pct}% bootstrap intervals)", "",
             "| group | points | " + " | ".join(MEANING[q] for q in EXPONENTS) + " |",
             "|" + "|".join(" --- " for _ in range(len(EXPONENTS) + 2)) + "|"]
    for n in names:
        lines.append(f"| {n} | {studies[n].n_points} | " + " | ".join(_fmt(*_value(studies[n], q)) for q in EXPONENTS)
                     + " |")
    lines += ["", "Do they differ? (two groups differ when their intervals do not overlap; losses of different "
              "objectives are in different units, so compare exponents, not E, A, B.)", ""]
    lines += [f"- {s}" for s in comparison_statements(studies)]
    return lines + ["", "![Loss against compute per group](loss_vs_compute.png)", ""]


def comparison_text(studies: dict) -> str:
    """The same for a terminal (`scaling fit --group arch`)."""
    names = _ordered(studies)
    width = max(8, *(len(n) for n in names))
    head = f"{'group':<{width}}  " + "  ".join(f"{q:>22}" for q in EXPONENTS)
    rows = [f"{n:<{width}}  " + "  ".join(f"{_fmt(*_value(studies[n], q)):>22}" for q in EXPONENTS) for n in names]
    return "\n".join(["Approach 3 exponents per group:", head, *rows, *comparison_statements(studies)])


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

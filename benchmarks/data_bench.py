"""Measure the token sources: generation speed, start-up time, and how much each scale of the
synthetic language's structure is worth (ablated exact predictors and byte n-grams vs tokens).

    python benchmarks/data_bench.py            # everything (~1-2 min on 2 cores)
    python benchmarks/data_bench.py --quick    # speed figures only
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from scaling.experiment.data import DataConfig, build_source
from scaling.experiment.data.ngram import NGram
from scaling.experiment.data.synthetic import Corpus, SyntheticConfig


def _rate(source, batch: int, ctx: int, seconds: float = 2.0) -> float:
    """Training tokens per second of `train_batch(step, batch, seed)` (predicted tokens = batch *
    ctx)."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        source.train_batch(n, batch, 0)
        n += 1
    return n * batch * ctx / (time.perf_counter() - start)


def speed(ctx: int) -> None:
    print(f"## speed (ctx={ctx})")
    for name in ("synthetic", "stdlib"):
        start = time.perf_counter()
        src = build_source(DataConfig(name=name), ctx)
        built = time.perf_counter() - start
        floor = (
            f", entropy_floor={src.entropy_floor:.4f} nats/token"
            if src.entropy_floor is not None
            else ""
        )
        print(f"{name:9s} build_source: {built:.2f} s (val {tuple(src.val_batch().shape)}{floor})")
        for batch in (32, 256):
            print(
                f"{name:9s} train_batch {batch:3d} x {ctx}: {_rate(src, batch, ctx) / 1e6:6.1f} M "
                "tokens/s"
            )
    src = build_source(DataConfig(), ctx)
    rows = src.val_batch()
    start = time.perf_counter()
    src.true_log_probs(rows)
    print(
        f"synthetic true_log_probs: {rows.numel() / (time.perf_counter() - start) / 1e6:.2f} M "
        "tokens/s"
    )


def ladder(ctx: int, val_tokens: int) -> None:
    """Cross-entropy on the validation rows of predictors that know more and more of the language
    (all of them know the probe documents' rules, which are scored exactly alike)."""
    spec = SyntheticConfig()
    val = build_source(DataConfig(val_tokens=val_tokens), ctx).val_batch().numpy()
    full = np.array([spec.w_unigram, spec.w_topic, spec.w_bigram, spec.w_cache])
    labels = [
        "lexicon + Zipf unigram",
        "+ topic inference",
        "+ word bigram",
        "+ cache (the true model)",
    ]
    floor = -Corpus(spec).walk(val).mean()
    print("\n## exact predictors that know part of the structure (nats/token on val)")
    print("| predictor knows | loss | gap to E* |\n| --- | --- | --- |")
    for k, label in enumerate(labels, start=1):
        w = np.where(np.arange(4) < k, full, 0.0)  # the same lexicon, the first k components only
        w /= w.sum()
        names = ("w_unigram", "w_topic", "w_bigram", "w_cache")
        loss = (
            -Corpus(dataclasses.replace(spec, **dict(zip(names, map(float, w))))).walk(val).mean()
        )
        print(f"| {label} | {loss:.4f} | {loss - floor:.4f} |")


def ngrams(ctx: int, val_tokens: int, token_counts: list[float], orders: list[int]) -> None:
    """Witten-Bell byte n-grams: loss falls with both order (capacity) and tokens (data)."""
    start = time.perf_counter()
    src = build_source(DataConfig(val_tokens=val_tokens), ctx)
    val = src.val_batch().numpy()
    print(f"\n## byte n-grams on synthetic (val loss, nats/token; E* = {src.entropy_floor:.4f})")
    print("| tokens | " + " | ".join(f"order {o}" for o in orders) + " |")
    print("| --- " * (len(orders) + 1) + "|")
    for tokens in token_counts:
        rows = int(tokens // ctx)
        train = np.concatenate(
            [src.train_batch(i, 1024, 0).numpy() for i in range(-(-rows // 1024))]
        )[:rows]
        model = NGram(train, max(orders))
        losses = [-model.log_probs(val, o).mean() for o in orders]
        print(f"| {tokens / 1e6:g}M | " + " | ".join(f"{x:.3f}" for x in losses) + " |", flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctx", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="speed figures only")
    args = parser.parse_args()
    speed(args.ctx)
    if not args.quick:
        ladder(args.ctx, 65536)
        ngrams(args.ctx, 65536, [2e5, 2e6, 2e7], [1, 2, 3, 4, 6, 8, 10, 12])


if __name__ == "__main__":
    main()

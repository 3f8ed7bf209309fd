"""K models of one shape trained together (scaling/experiment/ensemble.py) against K separate runs.

In one process: (1) the fp32 and bf16 matmul peak on the threads used; (2) per ladder size, one
run's engine (`scaling.experiment.train.build_engine`, what a separate run uses) and ensembles of
K = 1, 2, 4, 8, 16 members (`scaling.experiment.ensemble.build_ensemble`), timed in interleaved
blocks (single, K=1, K=2, ..., single, ...) on the same threads; K separate runs on those threads
take K times one run's time, so "vs K separate" is the ensemble's aggregate tokens/s over one run's
tokens/s; (3) the equivalence check: per-step training losses of an ensemble's members against their
separate runs, in fp32 and under bf16 autocast, beside the bf16-vs-fp32 gap of a separate run.

    python benchmarks/ensemble_bench.py                         # ~5-10 min on 2 shared cores
    python benchmarks/ensemble_bench.py --sizes s1 s2 --ks 1 8 --blocks 3
    python benchmarks/ensemble_bench.py --override train.precision=fp32

tokens/s is the median over blocks (all members' tokens); MFU = 6 N tokens/s over the measured
matmul peak of the same threads (bf16 and fp32); peak MiB is weights + gradients + AdamW moments +
the tensors autograd saves for one step (CPU; the allocator's peak on CUDA).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import matmul_peak  # noqa: E402

from scaling.experiment.config import compose, resolve_run, token_source  # noqa: E402
from scaling.experiment.ensemble import StackedBatches, build_ensemble, member_losses  # noqa: E402
from scaling.experiment.schedule import lr_at  # noqa: E402
from scaling.experiment.train import build_engine  # noqa: E402


class Single:
    """One separate run's engine, driven step by step."""

    def __init__(self, spec, source):
        self.spec, self.engine = spec, build_engine(spec)
        self.batches = self.engine.batches(source, start=0)
        self.K = 1

    def step(self, step: int) -> torch.Tensor:
        lr = lr_at(step, self.spec.steps, self.spec.train)
        return self.engine.step(self.batches.get(step), lr, step)

    def state_bytes(self) -> int:
        opt = self.engine.optimizer
        return sum(
            v.numel() * v.element_size()
            for s in opt.state.values()
            for v in s.values()
            if torch.is_tensor(v)
        )


class Together:
    """An ensemble of the given runs, driven step by step."""

    def __init__(self, specs, source, compile_: str | None = None):
        if compile_ is not None:  # the ensembles' own train.compile (--ensemble-compile)
            specs = [
                dataclasses.replace(s, train=dataclasses.replace(s.train, compile=compile_))
                for s in specs
            ]
        self.specs, self.engine, self.K = specs, build_ensemble(specs), len(specs)
        seeds = [s.train.seed for s in specs]
        self.batches = StackedBatches(
            source, specs[0].train.batch_size, seeds, self.engine.device, 0, specs[0].steps
        )
        self.active = torch.ones(self.K, dtype=torch.bool, device=self.engine.device)

    def step(self, step: int) -> torch.Tensor:
        lr = [lr_at(step, s.steps, s.train) for s in self.specs]
        lr = torch.tensor(lr, device=self.engine.device)
        return self.engine.step(self.batches.get(step), lr, self.active)

    def state_bytes(self) -> int:
        opt = self.engine.optimizer
        return sum(t.numel() * t.element_size() for t in opt.exp_avg + opt.exp_avg_sq)


def memory_mib(loop, step: int) -> float:
    """Peak training memory of one step (see the module docstring)."""
    model = loop.engine.model
    if next(model.parameters()).is_cuda:
        torch.cuda.reset_peak_memory_stats()
        loop.step(step)
        return torch.cuda.max_memory_allocated() / 2**20
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    losses = getattr(loop.engine, "losses", None)
    if losses is not None:
        loop.engine.losses = member_losses  # hooks see eager autograd only
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loop.step(step)
    finally:
        if losses is not None:
            loop.engine.losses = losses
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    activations = sum(n for ptr, n in saved.items() if ptr not in param_ptrs)
    return (2 * params + loop.state_bytes() + activations) / 2**20


def timed(loop, step: int, n: int) -> tuple[float, int]:
    start = time.perf_counter()
    for i in range(n):
        loop.step(step + i).sum().item()
    return time.perf_counter() - start, step + n


def specs_for(size: str, k: int, root: str, overrides: list[str]):
    base = [f"runs_dir={root}", "sweep=single", f"model.size={size}", *overrides]
    return [resolve_run(compose([*base, f"train.seed={seed}"])) for seed in range(k)]


def measure(size: str, args, root: str) -> list[dict]:
    specs = specs_for(size, max(args.ks), root, args.override)
    source = token_source(specs[0].data, specs[0].shape.ctx)
    loops = {0: Single(specs[0], source)}
    loops |= {k: Together(specs[:k], source, args.ensemble_compile) for k in args.ks}
    tokens_per_step = specs[0].tokens_per_step
    pos = {k: 0 for k in loops}
    rows = []
    for k, loop in loops.items():
        rows.append({"size": size, "K": k, "N": specs[0].counts.N, "mib": memory_mib(loop, 0)})
        pos[k] = timed(loop, 1, args.warmup)[1]
    times: dict[int, list[float]] = {k: [] for k in loops}
    for _ in range(args.blocks):  # interleaved: load from other processes hits every loop alike
        for k, loop in loops.items():
            n = max(1, args.steps // max(1, k)) if k > 4 else args.steps
            dt, pos[k] = timed(loop, pos[k], n)
            times[k].append(loop.K * n * tokens_per_step / dt)
    for row in rows:
        row["tok_s"] = statistics.median(times[row["K"]])
        row["range"] = (min(times[row["K"]]), max(times[row["K"]]))
    single = rows[0]["tok_s"]
    for row in rows:
        row["vs_separate"] = row["tok_s"] / single
    return rows


def equivalence(args, root: str, precision: str, steps: int = 20) -> dict[str, float]:
    """Largest relative gap, over `steps` training losses of 3 s2 members, between each member
    and its separate run (both at `precision`), and between the separate runs at `precision`
    and in fp32 (the precision's own noise band)."""
    over = [o for o in args.override if not o.startswith("train.precision")]
    specs = specs_for("s2", 3, root, [*over, f"train.precision={precision}"])
    fp32 = specs_for("s2", 3, root, [*over, "train.precision=fp32"])
    source = token_source(specs[0].data, specs[0].shape.ctx)
    ens = Together(specs, source)
    together = torch.stack([ens.step(i) for i in range(steps)], dim=1)  # (K, steps)
    gap, band = 0.0, 0.0
    for k in range(3):
        a, b = Single(specs[k], source), Single(fp32[k], source)
        alone = torch.stack([a.step(i) for i in range(steps)])
        ref = torch.stack([b.step(i) for i in range(steps)])
        gap = max(gap, ((together[k] - alone).abs() / alone.abs()).max().item())
        band = max(band, ((alone - ref).abs() / ref.abs()).max().item())
    return {"gap": gap, "band": band}


def vmap_check(size: str, k: int, args, root: str, blocks: int = 5) -> tuple[float, float]:
    """Forward + backward tokens/s of k members: our stacked model against torch.func's
    vmap(functional_call) over stack_module_state (the same weights, rows and autocast)."""
    from torch.func import functional_call, stack_module_state, vmap

    from scaling.experiment.hardware import autocast
    from scaling.experiment.models import Transformer
    from scaling.experiment.models.stacked import StackedTransformer

    specs = specs_for(size, k, root, args.override)
    engine = build_ensemble(specs)
    shape, dtype = engine.model.shape, engine.dtype
    stacked = StackedTransformer(shape, [s.train.seed for s in specs])
    params, buffers = stack_module_state([Transformer(shape, seed=s.train.seed) for s in specs])
    base = Transformer(shape).to("meta")

    def one(p, b, idx, tgt):
        logits = functional_call(base, (p, b), (idx,)).float()
        return F.cross_entropy(logits.flatten(0, 1), tgt.flatten())

    rows = torch.randint(0, shape.vocab_size, (k, specs[0].train.batch_size, shape.ctx + 1))
    loops = {
        "stacked": (lambda: member_losses(stacked, rows), list(stacked.parameters())),
        "vmap": (
            lambda: vmap(one)(params, buffers, rows[..., :-1], rows[..., 1:]),
            list(params.values()),
        ),
    }
    speed: dict[str, list[float]] = {name: [] for name in loops}
    for block in range(blocks + 1):  # the first block warms up
        for name, (losses, weights) in loops.items():
            start = time.perf_counter()
            for _ in range(3):
                with autocast(engine.device, dtype):
                    loss = losses()
                loss.sum().backward()
                for w in weights:
                    w.grad = None
            if block:
                speed[name].append(3 * k * specs[0].tokens_per_step / (time.perf_counter() - start))
    return statistics.median(speed["stacked"]), statistics.median(speed["vmap"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["s1", "s2", "s3", "s4", "s6"])
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument(
        "--steps", type=int, default=8, help="timed steps per block (K > 4: steps // K, >= 1)"
    )
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--override", nargs="*", default=[], help="trainer overrides, e.g. train.precision=fp32"
    )
    parser.add_argument(
        "--ensemble-compile",
        choices=["auto", "true", "false"],
        help="train.compile of the ensembles only (separate runs: the trainer's)",
    )
    parser.add_argument("--no-equivalence", action="store_true")
    parser.add_argument(
        "--vmap",
        action="store_true",
        help="only compare the stacked model with torch.func's vmap (K = 4)",
    )
    args = parser.parse_args()
    args.override = [
        "train.batch_size=16",
        "model.ctx=128",
        "train.compile=false",
        "train.tokens=2e6",
        f"train.threads={args.threads}",
        *args.override,
    ]
    peaks = {d: matmul_peak(d, args.threads) for d in (torch.float32, torch.bfloat16)}
    print(
        f"matmul peak on {args.threads} thread(s): fp32 {peaks[torch.float32]:.0f} GFLOP/s, "
        f"bf16 {peaks[torch.bfloat16]:.0f} GFLOP/s"
    )
    with tempfile.TemporaryDirectory() as root:
        if args.vmap:
            for size in args.sizes:
                ours, theirs = vmap_check(size, 4, args, root)
                print(
                    f"{size}, K=4, forward+backward: stacked {ours:,.0f} tokens/s, vmap "
                    f"{theirs:,.0f} tokens/s ({ours / theirs:.2f}x)",
                    flush=True,
                )
            return
        if not args.no_equivalence:
            for precision in ("fp32", "bf16"):
                eq = equivalence(args, root, precision)
                print(
                    f"equivalence ({precision}, s2, 3 members, 20 steps): members vs separate "
                    f"runs max rel gap {eq['gap']:.2e}; separate {precision} vs fp32 "
                    f"{eq['band']:.2e}",
                    flush=True,
                )
        print(
            "\n| size | N | K | tokens/s (min-max) | vs K separate | MFU bf16 | MFU fp32 "
            "| peak MiB |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for size in args.sizes:
            for row in measure(size, args, root):
                flops = 6 * row["N"] * row["tok_s"] / 1e9
                k = "separate" if row["K"] == 0 else row["K"]
                lo, hi = row["range"]
                print(
                    f"| {size} | {row['N']:,} | {k} | {row['tok_s']:,.0f} "
                    f"({lo:,.0f}-{hi:,.0f}) | "
                    f"{row['vs_separate']:.2f}x | "
                    f"{flops / peaks[torch.bfloat16]:.0%} | {flops / peaks[torch.float32]:.0%} | "
                    f"{row['mib']:,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

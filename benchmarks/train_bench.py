"""How much of the machine's arithmetic becomes training: our trainer against a plain PyTorch loop.

In one process: (1) the fp32 and bf16 matmul peak (square matmuls, best of several); (2) three
GPT shapes trained twice on the same batches from the same init, by a minimal fp32 reference
loop written below (nanoGPT style: eager, torch's fused SDPA, stock AdamW, torch's default
threads) and by our trainer's engine at its defaults (`scaling.experiment.train.build_engine`), in
interleaved blocks (ref, ours, ref, ours, ...) so that load from other processes hits both alike;
(3) a full short run of `scaling train` in fp32 and in bf16, to check that precision does not move
the final loss (the issue asks for < 1 %).

    python benchmarks/train_bench.py                      # ~3-5 min on 2 shared cores
    python benchmarks/train_bench.py --steps 30 --blocks 6
    python benchmarks/train_bench.py --threads 1          # both loops on one thread (per-core view)
    python benchmarks/train_bench.py --override train.compile=true   # any trainer override
    python benchmarks/train_bench.py --no-loss-check

tokens/s is the median over blocks of wall-clock training tokens per second (after warm-up steps);
tok/cpu-s divides by process CPU time instead (robust to other tenants, blind to threading);
MFU = tokens/s x training matmul FLOPs per token (3 x forward, attention included,
scaling.experiment.models.forward_flops_per_token) / the measured peak of the loop's precision and
threads.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from scaling.experiment.config import compose, resolve_run, token_source
from scaling.experiment.hardware import pick_device
from scaling.experiment.losses import evaluate
from scaling.experiment.models import Transformer, forward_flops_per_token
from scaling.experiment.schedule import lr_at
from scaling.experiment.train import build_engine, train_run

SHAPES = (
    (2, 64),
    (4, 128),
    (6, 192),
)  # (n_layers, d_model) from the issue; head dim 32 (n_heads = n_layers)
CTX, BATCH = 128, 32


# ---------------------------------------------------------------- the machine's matmul peak


def matmul_peak(dtype: torch.dtype, threads: int, n: int = 1024, reps: int = 8) -> float:
    """Best GFLOP/s of an n x n x n matmul in `dtype` on `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# ---------------------------------------------------------------- the reference loop


class Reference:
    """A minimal plain-PyTorch fp32 GPT training loop (nanoGPT style) on our model and data:
    the same init, batches, schedule, weight-decay groups and clipping as the trainer."""

    def __init__(self, spec, source):
        self.spec, self.source, t = spec, source, spec.train
        self.device = pick_device(t.device)
        self.model = Transformer(dataclasses.replace(spec.shape, attention="sdpa"), seed=t.seed).to(
            self.device
        )
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": t.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=t.lr,
            betas=(t.beta1, t.beta2),
        )
        self.threads = DEFAULT_THREADS

    def step(self, step: int) -> float:
        t = self.spec.train
        batch = self.source.train_batch(step, t.batch_size, t.seed).to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, self.spec.steps, t)
        logits = self.model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        return loss.item()


class Ours:
    """Our trainer's engine (precision, attention, optimizer, compile, threads, data path as
    `scaling train` picks them) driven step by step."""

    def __init__(self, spec, source):
        self.spec, self.source = spec, source
        self.engine = build_engine(spec)
        self.model, self.optimizer, self.threads = (
            self.engine.model,
            self.engine.optimizer,
            self.engine.threads,
        )
        self.batches = self.engine.batches(source, start=0)

    def step(self, step: int) -> float:
        return self.engine.step(
            self.batches.get(step), lr_at(step, self.spec.steps, self.spec.train), step
        ).item()


# ---------------------------------------------------------------- measuring


def memory_mib(loop, step: int) -> float:
    """Peak training memory of one step. CUDA: the allocator's peak. CPU: parameters + gradients +
    optimiser state + every tensor autograd saves for the backward pass (deduplicated by storage),
    the terms that dominate a training step's footprint."""
    if torch.cuda.is_available() and next(loop.model.parameters()).is_cuda:
        torch.cuda.reset_peak_memory_stats()
        loop.step(step)
        return torch.cuda.max_memory_allocated() / 2**20
    if isinstance(loop, Ours) and loop.engine.forward is not loop.engine.model:
        compiled, loop.engine.forward = (
            loop.engine.forward,
            loop.engine.model,
        )  # hooks see eager autograd only
        try:
            return memory_mib(loop, step)
        finally:
            loop.engine.forward = compiled
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if t.device.type != "meta":
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loop.step(step)
    params = sum(p.numel() * p.element_size() for p in loop.model.parameters())
    state = sum(
        v.numel() * v.element_size()
        for s in loop.optimizer.state.values()
        for v in s.values()
        if torch.is_tensor(v)
    )
    param_ptrs = {p.untyped_storage().data_ptr() for p in loop.model.parameters()}
    activations = sum(n for ptr, n in saved.items() if ptr not in param_ptrs)
    return (2 * params + state + activations) / 2**20  # 2 x params: weights and their gradients


def measure(shape_lw: tuple[int, int], args, overrides: list[str]) -> dict:
    n_layers, d_model = shape_lw
    warmup = 2
    total = warmup + 1 + args.steps  # warm-up, one memory-measuring step, the timed steps
    base = [
        f"runs_dir={tempfile.gettempdir()}",
        "sweep=single",
        "model.size=null",
        f"model.n_layers={n_layers}",
        f"model.d_model={d_model}",
        f"model.n_heads={n_layers}",
        f"model.ctx={CTX}",
        f"train.batch_size={BATCH}",
    ]
    spec = resolve_run(compose([*base, f"train.tokens={total * BATCH * CTX}", *overrides]))
    # the run our trainer is told it is in (its compile choice depends on the run's length); both
    # loops follow that run's schedule, and only its first `total` steps are trained here
    run_tokens = float(args.run_tokens) if args.run_tokens != "20N" else 20 * spec.counts.N
    spec = resolve_run(
        compose([*base, f"train.tokens={max(run_tokens, total * BATCH * CTX)}", *overrides])
    )
    source = token_source(spec.data, spec.shape.ctx)
    loops = {"ref": Reference(spec, source)}
    if args.threads:
        loops["ref"].threads = args.threads
    start = time.perf_counter()
    loops["ours"] = Ours(spec, source)
    setup_s = time.perf_counter() - start
    losses, mem = {}, {}
    for name, loop in loops.items():
        torch.set_num_threads(loop.threads)
        start = time.perf_counter()
        for step in range(warmup):
            loop.step(step)
        if name == "ours":
            setup_s += time.perf_counter() - start  # includes compiling, when the engine compiles
        mem[name] = memory_mib(loop, warmup)
    per_block = max(1, args.steps // args.blocks)
    rates: dict[str, list[float]] = {k: [] for k in loops}
    cpu_rates: dict[str, list[float]] = {k: [] for k in loops}
    step = warmup + 1
    while step < total:
        n = min(per_block, total - step)
        for name, loop in loops.items():  # interleaved: ref block, ours block, ref block, ...
            torch.set_num_threads(loop.threads)
            wall, cpu = time.perf_counter(), time.process_time()
            for s in range(step, step + n):
                losses[name] = loop.step(s)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rates[name].append(n * spec.tokens_per_step / wall)
            cpu_rates[name].append(n * spec.tokens_per_step / cpu)
        step += n
    val_rows = source.val_batch().to(loops["ours"].engine.device)
    out = {
        "shape": f"({n_layers}, {d_model})",
        "flops_per_token": 3 * forward_flops_per_token(spec.shape),
        "setup_s": setup_s,
        "steps": total,
    }
    for name, loop in loops.items():
        torch.set_num_threads(loop.threads)
        amp = loop.engine.amp if name == "ours" else contextlib.nullcontext
        out[name] = {
            "tok_s": statistics.median(rates[name]),
            "tok_cpu_s": statistics.median(cpu_rates[name]),
            "spread": (min(rates[name]), max(rates[name])),
            "mem_mib": mem[name],
            "threads": loop.threads,
            "loss_train": losses[name],
            "loss_val": evaluate(loop.model, spec.shape, val_rows, 4 * BATCH, amp),
        }
    eng = loops["ours"].engine
    out["ours"]["what"] = (
        f"{'bf16' if eng.dtype == torch.bfloat16 else 'fp32'}+{eng.attention}"
        f"{'+compile' if eng.compiled else ''}, {eng.optimizer_kind} AdamW"
    )
    return out


def loss_check(args, overrides: list[str]) -> dict[str, float]:
    """Final validation loss of one full short run of `scaling train` per precision."""
    out = {}
    with tempfile.TemporaryDirectory() as root:
        for precision in ("fp32", "bf16"):
            cfg = compose(
                [
                    f"runs_dir={root}",
                    f"sweep.name=check-{precision}",
                    f"model.size={args.loss_size}",
                    f"train.tokens={args.loss_tokens}",
                    *overrides,
                    f"train.precision={precision}",
                ]
            )
            start = time.perf_counter()
            result = train_run(cfg)
            out[precision] = result["loss"]
            out[f"{precision}_s"] = time.perf_counter() - start
    return out


DEFAULT_THREADS = torch.get_num_threads()  # what a plain script gets: torch's default


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=15, help="timed training steps per loop and shape")
    ap.add_argument(
        "--blocks", type=int, default=5, help="interleaved blocks the timed steps are split into"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="run both loops on this many threads (0: each its default)",
    )
    ap.add_argument(
        "--run-tokens",
        default="20N",
        help="D of the run our trainer is configured for (20N: 20 tokens per parameter); it picks "
        "compile from it",
    )
    ap.add_argument(
        "--override",
        action="append",
        default=[],
        help="a Hydra override for our trainer, repeatable",
    )
    ap.add_argument(
        "--shapes", default="2x64,4x128,6x192", help="n_layers x d_model, comma separated"
    )
    ap.add_argument(
        "--loss-size", default="s4", help="model.size of the precision check's full run"
    )
    ap.add_argument(
        "--loss-tokens", default="819200", help="train.tokens of the precision check's full run"
    )
    ap.add_argument("--no-loss-check", action="store_true")
    args = ap.parse_args()
    overrides = list(args.override) + ([f"train.threads={args.threads}"] if args.threads else [])
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    began = time.perf_counter()

    print(
        f"torch {torch.__version__}, {DEFAULT_THREADS} default threads, bf16 native: "
        f"{torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()}, "
        f"load average {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}"
    )
    peaks = {}
    for threads in sorted({DEFAULT_THREADS, 1, args.threads or DEFAULT_THREADS}):
        for dtype in (torch.float32, torch.bfloat16):
            peaks[(dtype, threads)] = matmul_peak(dtype, threads)
        print(
            f"matmul peak on {threads} thread(s): fp32 {peaks[(torch.float32, threads)]:.0f} "
            f"GFLOP/s, bf16 {peaks[(torch.bfloat16, threads)]:.0f} GFLOP/s"
        )

    rows = []
    for shape in shapes:
        r = measure(shape, args, overrides)
        rows.append(r)
        print(
            f"{r['shape']}: ref {r['ref']['tok_s']:,.0f} tok/s, ours {r['ours']['tok_s']:,.0f} "
            f"tok/s ({r['ours']['what']}, setup {r['setup_s']:.1f} s)",
            flush=True,
        )

    print(
        f"\n{BATCH} x {CTX} tokens per step, {args.steps} timed steps per loop in {args.blocks} "
        "interleaved blocks; tokens/s medians (min-max)\n"
    )
    print(
        "| n_layers, d_model | loop | threads | tokens/s (min-max) | tok/cpu-s | MFU | peak MiB | "
        "train loss | val loss | ours/ref |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for name in ("ref", "ours"):
            x = r[name]
            dtype = (
                torch.bfloat16 if name == "ours" and "bf16" in x.get("what", "") else torch.float32
            )
            peak = peaks.get((dtype, x["threads"])) or matmul_peak(dtype, x["threads"])
            mfu = x["tok_s"] * r["flops_per_token"] / (peak * 1e9)
            label = "reference fp32+sdpa" if name == "ref" else f"ours ({x['what']})"
            ratio = (
                f"**{r['ours']['tok_s'] / r['ref']['tok_s']:.2f}x** (cpu "
                f"{r['ours']['tok_cpu_s'] / r['ref']['tok_cpu_s']:.2f}x)"
                if name == "ours"
                else ""
            )
            print(
                f"| {r['shape']} | {label} | {x['threads']} | {x['tok_s']:,.0f} "
                f"({x['spread'][0]:,.0f}-{x['spread'][1]:,.0f}) | {x['tok_cpu_s']:,.0f} | "
                f"{mfu:.0%} | {x['mem_mib']:.0f} | {x['loss_train']:.4f} | {x['loss_val']:.4f} | "
                f"{ratio} |"
            )

    if not args.no_loss_check:
        c = loss_check(args, overrides)
        rel = abs(c["bf16"] - c["fp32"]) / c["fp32"]
        print(
            f"\nprecision check, full run model.size={args.loss_size} "
            f"train.tokens={args.loss_tokens}: final val loss fp32 {c['fp32']:.4f} "
            f"({c['fp32_s']:.0f} s), bf16 {c['bf16']:.4f} ({c['bf16_s']:.0f} s): {rel:.2%} apart "
            f"({'within' if rel < 0.01 else 'NOT within'} 1%)"
        )
    print(f"\nbenchmark wall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

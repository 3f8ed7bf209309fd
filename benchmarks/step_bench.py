"""Where one training step's time goes at the sizes sweeps use, and what the allocator and
torch.compile change about it (issue 17, item 5).

Every figure comes from a fresh child process (this script with --child), one run's engine
(`scaling.experiment.train.build_engine`, the trainer's defaults: precision, attention, fused AdamW)
on one thread, batch 16, ctx 128:
(1) the step's self CPU time by kind of operation (torch profiler, 10 steps): matmuls, the loss's
    log-softmax, attention's softmax, dtype casts and copies, GELU, LayerNorm, zero fills, the
    optimizer step, the rest;
(2) ms per step with the engine as it is (freed memory kept, `hardware.keep_freed_memory`) against
    glibc's default allocator, in interleaved child processes (A B A B ...);
(3) torch.compile: the first step's time with an empty inductor cache (cold) and with the cache
    the cold child left (warm), and the compiled step's ms against eager.

    python benchmarks/step_bench.py                      # ~5 min on 2 cores
    python benchmarks/step_bench.py --sizes s1 s3 --pairs 5 --no-compile
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

KINDS = {  # aten op -> kind of work (ops not named here count as "other")
    "aten::mm": "matmul",
    "aten::bmm": "matmul",
    "aten::baddbmm": "matmul",
    "aten::addmm": "matmul",
    "aten::_log_softmax": "loss log-softmax",
    "aten::_log_softmax_backward_data": "loss log-softmax",
    "aten::nll_loss_forward": "loss log-softmax",
    "aten::nll_loss_backward": "loss log-softmax",
    "aten::_softmax": "attention softmax",
    "aten::_softmax_backward_data": "attention softmax",
    "aten::copy_": "casts, copies",
    "aten::_to_copy": "casts, copies",
    "aten::gelu": "GELU",
    "aten::gelu_backward": "GELU",
    "aten::native_layer_norm": "LayerNorm",
    "aten::native_layer_norm_backward": "LayerNorm",
    "aten::fill_": "zero fills",
    "aten::zero_": "zero fills",
    "Optimizer.step#AdamW.step": "optimizer",
    "aten::_fused_adamw_": "optimizer",
}
ORDER = (
    "matmul",
    "loss log-softmax",
    "attention softmax",
    "casts, copies",
    "GELU",
    "LayerNorm",
    "zero fills",
    "optimizer",
    "other",
)


def child(size: str, mode: str, steps: int) -> dict:
    """One engine in this process; `mode`: "profile", "kept" / "default" (allocator), "eager" /
    "compiled" (torch.compile, cache as the environment sets it)."""
    from scaling.experiment import hardware, train
    from scaling.experiment.config import compose, resolve_run, token_source
    from scaling.experiment.schedule import lr_at

    if mode == "default":  # glibc's own allocator behaviour: the engine must not change it
        hardware.keep_freed_memory = lambda: False
    compile_ = "true" if mode == "compiled" else "false"
    with tempfile.TemporaryDirectory() as tmp:
        spec = resolve_run(
            compose(
                [
                    f"model.size={size}",
                    "train.threads=1",
                    "train.tokens=10240000",
                    f"train.compile={compile_}",
                    f"runs_dir={tmp}",
                ]
            )
        )
    source = token_source(spec.data, spec.shape.ctx)
    engine = train.build_engine(spec)
    batches = engine.batches(source, 0)

    def run(first: int, n: int) -> float:
        start = time.perf_counter()
        for s in range(first, first + n):
            engine.step(batches.get(s), lr_at(s, spec.steps, spec.train), s)
        return time.perf_counter() - start

    out = {"dtype": str(engine.dtype).removeprefix("torch."), "first_s": run(0, 1)}
    run(1, 4)  # warm-up
    if mode == "profile":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(5, 10)
        shares = dict.fromkeys(ORDER, 0.0)
        for e in prof.key_averages():
            shares[KINDS.get(e.key, "other")] += e.self_cpu_time_total
        total = sum(shares.values())
        out["shares"] = {k: v / total for k, v in shares.items()}
    else:
        out["step_ms"] = 1e3 * run(5, steps) / steps
    batches.close()
    return out


def spawn(size: str, mode: str, steps: int, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", size, mode, "--steps", str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode:
        sys.exit(f"child {size} {mode} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["s1", "s2", "s3", "s4"])
    ap.add_argument("--pairs", type=int, default=3, help="interleaved A/B child pairs per figure")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per child")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile part")
    ap.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.steps)))
        return

    print("self CPU time of 10 training steps by kind (1 thread, batch 16, ctx 128)")
    print("| size | dtype | " + " | ".join(ORDER) + " |")
    print("|---" * (len(ORDER) + 2) + "|")
    for size in args.sizes:
        p = spawn(size, "profile", args.steps)
        cells = " | ".join(f"{100 * p['shares'][k]:.0f}%" for k in ORDER)
        print(f"| {size} | {p['dtype']} | {cells} |", flush=True)

    print("\nms per step: freed memory kept (the engine) against glibc's default allocator")
    print("| size | kept (min-max) | default (min-max) | speed-up |")
    print("|---|---|---|---|")
    for size in args.sizes:
        kept, default = [], []
        for _ in range(args.pairs):
            kept.append(spawn(size, "kept", args.steps)["step_ms"])
            default.append(spawn(size, "default", args.steps)["step_ms"])
        k, d = statistics.median(kept), statistics.median(default)
        print(
            f"| {size} | {k:.2f} ({min(kept):.2f}-{max(kept):.2f}) | {d:.2f} "
            f"({min(default):.2f}-{max(default):.2f}) | {d / k:.2f}x |",
            flush=True,
        )

    if args.no_compile:
        return
    print(
        "\ntorch.compile: first step with an empty / a warm inductor cache; step ms against eager"
    )
    print("| size | first step cold s | first step warm s | eager ms | compiled ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as cache:
            env = {"TORCHINDUCTOR_CACHE_DIR": cache}
            cold = spawn(size, "compiled", args.steps, env)
            warm = [spawn(size, "compiled", args.steps, env) for _ in range(args.pairs)]
            eager = [spawn(size, "eager", args.steps) for _ in range(args.pairs)]
        e = statistics.median(x["step_ms"] for x in eager)
        c = statistics.median(x["step_ms"] for x in warm)
        print(
            f"| {size} | {cold['first_s']:.1f} | "
            f"{statistics.median(x['first_s'] for x in warm):.1f} | {e:.2f} | {c:.2f} | "
            f"{e / c:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()

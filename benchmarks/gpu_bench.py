"""Training throughput of our trainer on a GPU at larger shapes: tokens/s and MFU.

    python benchmarks/gpu_bench.py                          # (12, 768), ctx 1024, batch 8, bf16
    python benchmarks/gpu_bench.py --shapes 12x768,24x1024 --batch 16 --compile true
    python benchmarks/gpu_bench.py --device cpu --shapes 1x64 --ctx 64 --steps 3   # a smoke check

Each shape is built by `scaling.experiment.train.build_engine` (the run's engine: autocast, SDPA,
fused AdamW, compile) and trained on the synthetic language; after warm-up steps (and compiling),
the timed steps are synchronised with the device. MFU = tokens/s x training matmul FLOPs per token
(3 x forward, attention included: scaling.experiment.models.forward_flops_per_token) / peak, against
both the bf16 matmul peak measured here and, for GPUs it knows, the datasheet's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch

from scaling.experiment.config import compose, resolve_run, token_source
from scaling.experiment.models import forward_flops_per_token
from scaling.experiment.schedule import lr_at
from scaling.experiment.train import build_engine

# dense bf16 FLOP/s from the datasheets, matched in order against the device name
DATASHEET_BF16 = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12))


def datasheet_peak(device: torch.device) -> tuple[str, float | None]:
    """The device's name and its datasheet dense bf16 FLOP/s (None where this table lacks it)."""
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    return name, next((peak for key, peak in DATASHEET_BF16 if key in name), None)


def measured_peak(device: torch.device, n: int, reps: int = 10) -> float:
    """Best bf16 FLOP/s of an n x n x n matmul on `device`."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    best = math.inf
    for i in range(reps + 2):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        if i >= 2:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(shape: tuple[int, int], args: argparse.Namespace, root: str) -> dict:
    n_layers, d_model = shape
    steps = args.warmup + args.steps
    cfg = compose(
        [
            f"runs_dir={root}",
            "sweep.name=gpu-bench",
            "model.size=null",
            f"model.n_layers={n_layers}",
            f"model.d_model={d_model}",
            f"model.n_heads={max(1, d_model // 64)}",
            f"model.ctx={args.ctx}",
            f"train.batch_size={args.batch}",
            f"train.tokens={steps * args.batch * args.ctx}",
            f"train.device={args.device}",
            f"train.precision={args.precision}",
            f"train.compile={args.compile}",
            f"data.val_tokens={args.ctx * 8}",
        ]
    )
    spec = resolve_run(cfg)
    engine = build_engine(spec)
    batches = engine.batches(token_source(spec.data, spec.shape.ctx), 0)
    try:
        for step in range(args.warmup):
            engine.step(batches.get(step), lr_at(step, steps, spec.train), step)
        sync(engine.device)
        start = time.perf_counter()
        for step in range(args.warmup, steps):
            loss = engine.step(batches.get(step), lr_at(step, steps, spec.train), step)
        loss = float(loss)  # waits for the last step
        elapsed = time.perf_counter() - start
    finally:
        batches.close()
    tok_s = args.steps * args.batch * args.ctx / elapsed
    return {
        "shape": f"({n_layers}, {d_model})",
        "N": spec.counts.N,
        "tok_s": tok_s,
        "loss": loss,
        "flops_per_token": 3 * forward_flops_per_token(spec.shape),
        "engine": engine,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--shapes", default="12x768", help="n_layers x d_model, comma separated (head dim 64)"
    )
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per shape")
    ap.add_argument(
        "--warmup", type=int, default=5, help="untimed steps first (compiling happens here)"
    )
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--compile", default="true")
    ap.add_argument(
        "--peak-n", type=int, default=8192, help="matmul size of the measured bf16 peak"
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    name, sheet = datasheet_peak(device)
    peak = measured_peak(device, args.peak_n if device.type == "cuda" else 1024)
    sheet_text = "no datasheet figure"
    if sheet:
        sheet_text = f"datasheet dense bf16 {sheet / 1e12:.0f} TFLOP/s"
    print(
        f"torch {torch.__version__} on {name}: measured bf16 matmul peak "
        f"{peak / 1e12:.1f} TFLOP/s, {sheet_text}"
    )
    print(
        f"\nbatch {args.batch} x ctx {args.ctx}, {args.steps} timed steps after "
        f"{args.warmup} warm-up steps\n"
    )
    print(
        "| n_layers, d_model | N | engine | tokens/s | MFU (measured peak) | MFU (datasheet) "
        "| loss |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for text in args.shapes.split(","):
            r = measure(tuple(int(v) for v in text.split("x")), args, root)
            e = r["engine"]
            flops = r["tok_s"] * r["flops_per_token"]
            what = f"{str(e.dtype).replace('torch.', '')} {e.attention}"
            what += " compiled" if e.compiled else ""
            mfu_sheet = f"{flops / sheet:.1%}" if sheet else "-"
            print(
                f"| {r['shape']} | {r['N'] / 1e6:.1f}M | {what} | {r['tok_s']:,.0f} | "
                f"{flops / peak:.1%} | {mfu_sheet} | {r['loss']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

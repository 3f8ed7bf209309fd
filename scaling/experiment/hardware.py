"""How a run uses the machine: device, autocast precision, attention kernel, intra-op threads (from
the cores idle now, read in /proc/stat) and whether to torch.compile; docs/performance.md has the
measurements behind every default."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import math
import time

import torch

from scaling.experiment.config import RunSpec, TrainConfig
from scaling.experiment.models import ModelShape, forward_flops_per_token


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)  # resolve_run has checked that CUDA exists when asked for


# glibc mallopt parameters (malloc.h) and the values the CPU trainer sets: allocations below 32 MiB
# (glibc's largest mmap threshold) come from the heap, and the heap's top is handed back to the OS
# only once 1 GiB of it is free
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_MMAP_THRESHOLD = 32 << 20
HEAP_TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Keep the pages of freed tensors in the process instead of handing them back to the OS.

    A CPU training step frees and re-allocates the same MiB-sized activations every step; glibc's
    default maps each afresh (or trims the heap under it), so every step page-faults the memory in
    again: 1.10-1.28x slower steps at s1-s4 until a run's first evaluation raises glibc's own
    threshold (docs/performance.md). Results do not change (the same
    losses to the bit). glibc only; returns whether the setting took."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        return False
    if mallopt is None:  # not glibc (macOS, musl without mallopt): nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD)
    )


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX tiles: the CPU computes bf16 matmuls natively."""
    cpu = torch.cpu
    return any(
        bool(getattr(cpu, probe, lambda: False)())
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


# bf16 autocast on a CPU pays from this width on: below it the casts cost more than the bf16
# matmuls save (1 thread, batch 16, ctx 128: fp32 1.27x faster at d_model 16, 1.07x at 32; bf16
# 1.08x faster at 48, 1.32x at 64; docs/performance.md)
CPU_BF16_MIN_D_MODEL = 48


def cpu_bf16_pays(d_model: int | None) -> bool:
    """Whether "auto" precision takes bf16 on a CPU: native bf16 and a model wide enough (any
    width when unknown)."""
    return cpu_has_native_bf16() and (d_model is None or d_model >= CPU_BF16_MIN_D_MODEL)


def pick_attention(
    attention: str, precision: str, device: torch.device, d_model: int | None = None
) -> str:
    """The attention kernel: "auto" is explicit matmuls where bf16 autocast runs on a CPU (the
    fused SDPA kernel is slower in bf16 there than in fp32), else torch's fused SDPA."""
    if attention != "auto":
        return attention
    bf16 = str(precision).lower() == "bf16" or (
        str(precision).lower() == "auto" and cpu_bf16_pays(d_model)
    )
    return "matmul" if device.type == "cpu" and bf16 else "sdpa"


def pick_dtype(
    precision: str, device: torch.device, attention: str = "matmul", d_model: int | None = None
) -> torch.dtype:
    """Autocast dtype: bf16 or fp32 (master weights and optimiser state stay fp32 either way).
    "auto" is bf16 on CUDA GPUs that support it, and on CPUs with native bf16 for models of
    d_model >= CPU_BF16_MIN_D_MODEL unless attention runs through SDPA, whose CPU kernel is
    slower in bf16 than in fp32."""
    precision = precision.lower()
    if precision == "auto":
        if device.type == "cuda":
            native = torch.cuda.is_bf16_supported()
        else:
            native = cpu_bf16_pays(d_model) and attention != "sdpa"
        precision = "bf16" if native else "fp32"
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# torch's default at import: the launcher's share of the cores (OMP_NUM_THREADS)
TORCH_THREADS = torch.get_num_threads()


def idle_cores(window_s: float = 0.1) -> float:
    """Cores left idle by every process over the next `window_s` seconds (Linux /proc/stat);
    infinity where that cannot be read."""

    def sample() -> tuple[int, int, int]:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
        # user nice system idle iowait irq softirq steal
        ticks = [int(v) for v in lines[0].split()[1:9]]
        n_cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        return sum(ticks), ticks[3] + ticks[4], n_cpus

    try:
        total0, idle0, n_cpus = sample()
        time.sleep(window_s)
        total1, idle1, _ = sample()
    except (OSError, ValueError, IndexError):
        return math.inf
    return n_cpus * (idle1 - idle0) / max(1, total1 - total0)


def pick_threads(threads: int) -> int:
    """Intra-op threads: `threads` if set; 0 (auto) is torch's default, which already fits the
    launcher (joblib/loky, SLURM and users set OMP_NUM_THREADS), capped by the cores that are idle
    now: an OpenMP thread that shares its core with another process stalls all the others
    (docs/performance.md). A core counts as idle when it is >= 80% idle."""
    if threads:
        return threads
    return max(1, min(TORCH_THREADS, int(idle_cores() + 0.2)))


def place(t: TrainConfig, shape: ModelShape) -> tuple[int, torch.device, ModelShape, torch.dtype]:
    """Where and how a run (or an ensemble) of `shape` computes: its threads (set in torch), its
    device, its shape with the attention kernel resolved and its autocast dtype; on a CPU it also
    keeps freed memory (`keep_freed_memory`)."""
    threads = pick_threads(t.threads)
    torch.set_num_threads(threads)
    device = pick_device(t.device)
    if device.type == "cpu":
        keep_freed_memory()  # no page faults on every step's activations
    attention = pick_attention(shape.attention, t.precision, device, shape.d_model)
    dtype = pick_dtype(t.precision, device, attention, shape.d_model)
    if attention != shape.attention:
        shape = dataclasses.replace(shape, attention=attention)
    return threads, device, shape, dtype


COMPILE_MIN_STEPS = 1000  # CUDA: "auto" compiles runs of at least this many steps
# CPU: "auto" compiles runs whose eager estimate exceeds this (a cold compile takes 20-90 s and
# gains 1.02-1.14x: docs/performance.md)
COMPILE_AFTER_S = 300
CPU_FLOPS_PER_THREAD = 1.0e11  # training matmul FLOP/s of one CPU thread in eager bf16


def pick_compile(choice: str, device: torch.device, spec: RunSpec, threads: int) -> bool:
    """torch.compile or not. "auto": on CUDA for runs of >= COMPILE_MIN_STEPS steps; on a CPU
    when the run's estimated eager time (training matmul FLOPs / CPU_FLOPS_PER_THREAD per thread)
    exceeds COMPILE_AFTER_S, so that the faster steps repay the compile. Pure function of the
    config, so a rerun makes the same choice."""
    choice = str(choice).lower()
    if choice != "auto":
        return choice == "true"
    if device.type == "cuda":
        return spec.steps >= COMPILE_MIN_STEPS
    flops = 3 * forward_flops_per_token(spec.shape) * spec.D
    return flops / (CPU_FLOPS_PER_THREAD * threads) >= COMPILE_AFTER_S

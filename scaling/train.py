"""One training run: AdamW, linear warmup then cosine decay over exactly D tokens, gradient
clipping, ~10 log-spaced validation points, checkpoint/resume, and the run's folder. The loss is
the architecture's objective (scaling/objectives.py): next-token for the decoder.

`train_run(cfg)` is the plain-Python entry (a composed config in, a result dict out);
`main(argv)` is `scaling train`, which composes the config from Hydra overrides first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from scaling import objectives, progress, runs, trackers
from scaling.config import (RunSpec, TrainConfig, compose, config_dir_override, help_text, resolve_run,
                            split_help, token_source)
from scaling.flops import FLOPS_PER_PARAM_TOKEN
from scaling.models import Transformer, forward_flops_per_token, training_flops


# ---------------------------------------------------------------- schedule and evaluation points

def lr_at(step: int, steps: int, t: TrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based) of a schedule `steps` long: linear warmup
    to t.lr, then a cosine from t.lr down to t.lr * t.min_lr_ratio that ends exactly at `steps`:
    the run's own D under protocol=chinchilla, Kaplan's fixed horizon otherwise (`schedule_steps`)."""
    warmup = int(round(t.warmup_frac * steps))
    if step < warmup:
        return t.lr * (step + 1) / warmup
    progress_ = (step - warmup) / max(1, steps - warmup)
    floor = t.lr * t.min_lr_ratio
    return floor + 0.5 * (t.lr - floor) * (1.0 + math.cos(math.pi * progress_))


def protocol_name(spec: RunSpec) -> str:
    """The run's protocol (conf/protocol/): "chinchilla" (the default) or "kaplan"."""
    return str((spec.config.get("protocol") or {}).get("name") or "chinchilla")


def schedule_steps(spec: RunSpec) -> int:
    """Length of the run's lr schedule in steps: its own steps (chinchilla: the cosine ends at D),
    or protocol.horizon_tokens (kaplan: one horizon for every run, at or past its D, so the lr at a
    given step does not depend on the run's D)."""
    if protocol_name(spec) != "kaplan":
        return spec.steps
    return max(spec.steps, int(round(spec.config["protocol"]["horizon_tokens"] / spec.tokens_per_step)))


def eval_steps(steps: int, n_evals: int, exact: bool = False) -> list[int]:
    """About `n_evals` step counts, log-spaced from ~1% of the run to its end (always included).
    exact: exactly min(n_evals, steps) distinct steps (Kaplan's curve points): where rounding makes
    two early points collide, the later ones move up by a step, staying as log-spaced as whole steps allow."""
    first = max(1, round(steps / 100))
    if n_evals == 1 or first >= steps:
        return [steps]
    n = min(n_evals, steps) if exact else n_evals
    ratio = (steps / first) ** (1.0 / (n - 1))
    if not exact:
        return sorted({min(steps, round(first * ratio**i)) for i in range(n)} | {steps})
    points = [max(1, round(first * ratio**i)) for i in range(n)]
    for i in range(1, n):  # strictly increasing ...
        points[i] = max(points[i], points[i - 1] + 1)
    points[-1] = steps
    for i in range(n - 2, -1, -1):  # ... and ending at the run's last step
        points[i] = min(points[i], points[i + 1] - 1)
    return points


# ---------------------------------------------------------------- the engine: how a run computes
# (docs/performance.md has the measurements behind every default below)

def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)  # resolve_run has checked that CUDA exists when asked for


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX tiles: the CPU computes bf16 matmuls natively."""
    cpu = torch.cpu
    return any(bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def pick_attention(attention: str, precision: str, device: torch.device) -> str:
    """The attention kernel: "auto" is explicit matmuls where bf16 autocast runs on a CPU (the
    fused SDPA kernel is slower in bf16 there than in fp32), else torch's fused SDPA."""
    if attention != "auto":
        return attention
    bf16 = str(precision).lower() == "bf16" or (str(precision).lower() == "auto" and cpu_has_native_bf16())
    return "matmul" if device.type == "cpu" and bf16 else "sdpa"


def pick_dtype(precision: str, device: torch.device, attention: str = "matmul") -> torch.dtype:
    """Autocast dtype: bf16 or fp32 (master weights and optimiser state stay fp32 either way).
    "auto" is bf16 on CUDA GPUs that support it, and on CPUs with native bf16 unless attention
    runs through SDPA, whose CPU kernel is slower in bf16 than in fp32."""
    precision = precision.lower()
    if precision == "auto":
        if device.type == "cuda":
            native = torch.cuda.is_bf16_supported()
        else:
            native = cpu_has_native_bf16() and attention != "sdpa"
        precision = "bf16" if native else "fp32"
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


TORCH_THREADS = torch.get_num_threads()  # torch's default at import: the launcher's share (OMP_NUM_THREADS)


def idle_cores(window_s: float = 0.1) -> float:
    """Cores left idle by every process over the next `window_s` seconds (Linux /proc/stat);
    infinity where that cannot be read."""
    def sample() -> tuple[int, int, int]:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
        ticks = [int(v) for v in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
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
    now: an OpenMP thread that shares its core with another process stalls all the others (here a
    2-thread step on a busy 2-core machine ran 3-4x slower than a 1-thread one)."""
    if threads:
        return threads
    return max(1, min(TORCH_THREADS, int(idle_cores() + 0.2)))  # a core counts as idle when >= 80% idle


COMPILE_MIN_STEPS = 1000  # CUDA: "auto" compiles runs of at least this many steps (not measured here: no GPU)
COMPILE_AFTER_S = 300  # CPU: "auto" compiles runs whose eager estimate exceeds this (cold compile: 20-90 s, gain 1.02-1.14x)
CPU_FLOPS_PER_THREAD = 1.0e11  # training matmul FLOP/s of one thread in eager bf16, about what this machine reaches


CHECK_EVERY = 16  # on a GPU, steps between reads of the summed loss (divergence checks)


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


def make_optimizer(model: torch.nn.Module, t: TrainConfig) -> tuple[torch.optim.AdamW, str]:
    """AdamW with weight decay on matrices (and the embeddings), none on LayerNorm weights; the
    fused kernel (one pass over all parameters; CPU and CUDA) where torch has it, else foreach."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    for kind in ("fused", "foreach"):
        try:
            return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), **{kind: True}), kind
        except (RuntimeError, TypeError, ValueError):  # an older torch without it for this device
            continue
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2)), "for-loop"


class Batches:
    """`source.train_batch(step, ...)` for consecutive steps, each made one step ahead on a
    background thread (and copied to the device there, through pinned memory on CUDA), so the
    model never waits for data. `get(step)` returns exactly the batch of that step."""

    def __init__(self, source: Any, batch_size: int, seed: int, device: torch.device, start: int, end: int):
        self.source, self.batch_size, self.seed, self.device, self.end = source, batch_size, seed, device, end
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="scaling-batches")
        self._ahead = (start, self._pool.submit(self._make, start))

    def _make(self, step: int) -> torch.Tensor:
        rows = self.source.train_batch(step, self.batch_size, self.seed)
        if self.device.type == "cuda":
            rows = rows.pin_memory().to(self.device, non_blocking=True)
        return rows.to(self.device)

    def get(self, step: int) -> torch.Tensor:
        ahead, future = self._ahead
        rows = future.result() if ahead == step else self._make(step)
        if step + 1 < self.end:
            self._ahead = (step + 1, self._pool.submit(self._make, step + 1))
        return rows

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Engine:
    """How one run computes, chosen once from its config and the machine: device, autocast dtype,
    attention kernel, optimizer implementation, compiled or eager forward, threads."""

    spec: RunSpec
    model: torch.nn.Module  # fp32 master weights
    forward: Callable[..., torch.Tensor]  # the model, or its torch.compile'd version
    optimizer: torch.optim.AdamW
    optimizer_kind: str  # "fused" | "foreach" | "for-loop"
    device: torch.device
    dtype: torch.dtype  # autocast dtype
    attention: str  # "sdpa" | "matmul"
    compiled: bool
    threads: int

    def amp(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.dtype)

    def batches(self, source: Any, start: int) -> Batches:
        t = self.spec.train
        return Batches(source, t.batch_size, t.seed, self.device, start, self.spec.steps)

    def step(self, rows: torch.Tensor, lr: float, step: int) -> torch.Tensor:
        """One optimiser step of training step `step` on `rows` at learning rate `lr`; returns the
        loss as a detached 0-d tensor (reading it is left to the caller: no sync per step)."""
        t = self.spec.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = objectives.train_loss(self.forward, self.spec.shape, rows, t.seed, step, self.amp)  # the arch's objective
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        return loss.detach()


def build_engine(spec: RunSpec) -> Engine:
    """The engine of run `spec` (sets torch's thread count as a side effect)."""
    t = spec.train
    threads = pick_threads(t.threads)
    torch.set_num_threads(threads)
    device = pick_device(t.device)
    attention = pick_attention(spec.shape.attention, t.precision, device)
    dtype = pick_dtype(t.precision, device, attention)
    shape = spec.shape if attention == spec.shape.attention else dataclasses.replace(spec.shape, attention=attention)
    model = Transformer(shape, seed=t.seed).to(device)
    optimizer, kind = make_optimizer(model, t)
    compiled = pick_compile(t.compile, device, spec, threads)
    forward = torch.compile(model) if compiled else model
    return Engine(spec, model, forward, optimizer, kind, device, dtype, attention, compiled, threads)


@torch.no_grad()
def probe_metrics(model: torch.nn.Module, source: Any, device: torch.device, amp: Any) -> dict[str, float]:
    """The emergent-ability probe scores (scaling/probes.py, docs/emergence.md) of the model now."""
    from scaling.probes import probe_scores

    model.eval()
    with amp():
        scores = probe_scores(model, source, device=device)
    model.train()
    return scores


# ---------------------------------------------------------------- one run

METRIC_KEYS = ("step", "tokens", "flops", "loss_train", "loss_val", "lr", "wall_s")  # + probe scores


def _result(spec: RunSpec, status: str, loss: float, loss_train: float, wall_s: float,
            entropy_floor: float | None, device: torch.device, dtype: torch.dtype, resumed_from: int) -> dict:
    flops = training_flops(spec.shape, spec.D)
    return {
        "run_id": spec.run_id, "sweep": spec.sweep, "arch": spec.shape.arch, "data": spec.data_name,
        "size": spec.size, "N": spec.counts.N, "N_nonembed": spec.counts.N_nonembed, "D": spec.D,
        "C": flops.C_6ND, "C_6ND": flops.C_6ND, "C_kaplan": flops.C_kaplan, "C_chinchilla": flops.C_chinchilla,
        "loss": loss, "loss_train": loss_train, "entropy_floor": entropy_floor, "seed": spec.train.seed,
        "status": status, "wall_s": wall_s, "tokens_per_s": spec.D / wall_s if wall_s > 0 else None,
        "d_model": spec.shape.d_model, "n_layers": spec.shape.n_layers, "n_heads": spec.shape.n_heads,
        "ctx": spec.shape.ctx, "d_ff": spec.shape.d_ff, "vocab_size": spec.shape.vocab_size,
        "steps": spec.steps, "batch_size": spec.train.batch_size, "lr": spec.train.lr,
        "device": device.type, "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
        "resumed_from_step": resumed_from,
    }


def train_run(cfg: DictConfig, *, stop_after_steps: int | None = None) -> dict:
    """Train the run `cfg` describes unless it is finished or being trained elsewhere.

    Returns the result dict with `status`: "ok" or "diverged" (finished now), "skipped" (it had
    a result.json already), "busy" (another process holds its claim) or "stopped" (only for
    tests: `stop_after_steps` halts after that many steps, as an interruption would, leaving
    the checkpoint behind). A finished run's checkpoint is deleted.
    """
    spec = resolve_run(cfg)
    if runs.is_finished(spec.run_dir):
        return {**runs.read_result(spec.run_dir), "status": "skipped"}
    lock = runs.claim(spec.run_dir)
    if lock is None:
        return {"run_id": spec.run_id, "sweep": spec.sweep, "status": "busy"}
    try:
        if runs.is_finished(spec.run_dir):  # finished by another process between the check and the claim
            return {**runs.read_result(spec.run_dir), "status": "skipped"}
        return _train(spec, stop_after_steps)
    finally:
        lock.release(unlink=True)
        if spec.run_dir.is_dir() and not any(spec.run_dir.iterdir()):
            spec.run_dir.rmdir()  # nothing was written: leave no empty folder behind


def _train(spec: RunSpec, stop_after_steps: int | None) -> dict:
    t = spec.train
    tracker = trackers.start(spec.config.get("logger"), spec.run_dir, spec.config["runs_dir"],
                             spec.sweep, spec.run_id, spec.config)  # logger=...: mirrors the run
    engine = build_engine(spec)  # precision, attention, optimizer, compile, threads
    model, forward, optimizer, device, dtype = engine.model, engine.forward, engine.optimizer, engine.device, engine.dtype
    amp = engine.amp
    source = token_source(spec.config["data"], spec.shape.ctx)
    val_rows = source.val_batch().to(device)
    runs.atomic_write_text(spec.run_dir / runs.CONFIG, OmegaConf.to_yaml(OmegaConf.create(spec.config)))

    step, metrics, elapsed, loss_sum, loss_count, resumed_from = 0, [], 0.0, 0.0, 0, 0
    ckpt_path = spec.run_dir / runs.CHECKPOINT
    if ckpt_path.is_file():  # resume: the data is a pure function of (seed, step), so continue the counter
        step, metrics, elapsed, loss_sum, loss_count = load_checkpoint(spec, model, optimizer, device)
        resumed_from = step

    evals = set(eval_steps(spec.steps, t.n_evals, exact=protocol_name(spec) == "kaplan"))
    horizon = schedule_steps(spec)  # where the lr schedule ends: D, or protocol=kaplan's fixed horizon
    status, loss_val, loss_train = "ok", float("nan"), float("nan")
    bar = progress.run_bar(spec.D, step * spec.tokens_per_step, spec.run_id)
    start = time.perf_counter() - elapsed
    model.train()
    batches = engine.batches(source, step)
    loss_acc = torch.tensor(loss_sum, dtype=torch.float64, device=device)  # summed where it is computed
    check_every = 1 if device.type == "cpu" else CHECK_EVERY  # reading the loss waits for a GPU
    stop = StopSignals().install()  # SIGTERM/SIGINT/SIGUSR2: checkpoint after this step, then exit
    try:
        while step < spec.steps:
            lr = lr_at(step, horizon, t)
            loss = engine.step(batches.get(step), lr, step)
            step += 1
            loss_acc += loss
            loss_count += 1
            bar.update(spec.tokens_per_step)
            if step % check_every == 0 or step in evals:
                loss_sum = loss_acc.item()
                if not math.isfinite(loss_sum):  # NaN or inf since the last evaluation: stop
                    status, loss_train = "diverged", loss_sum
                    break
            if step in evals:
                loss_train = loss_sum / loss_count  # mean train loss since the previous evaluation
                loss_val = objectives.evaluate(forward, spec.shape, val_rows, t.batch_size * 4, amp)
                # the probes read next-token predictions: decoder only (docs/architectures.md)
                scores = probe_metrics(forward, source, device, amp) if spec.shape.arch == "decoder" else {}
                loss_acc.zero_()
                loss_sum, loss_count = 0.0, 0
                metrics.append(metrics_row(spec, step, loss_train, loss_val, lr, time.perf_counter() - start, scores))
                runs.atomic_write_jsonl(spec.run_dir / runs.METRICS, metrics)
                tracker.log(metrics[-1])
                bar.set_postfix(loss=f"{loss_val:.3f}", refresh=False)
                if not math.isfinite(loss_val):
                    status = "diverged"
                    break
            stopping = stop.signum is not None
            if step < spec.steps and (stopping or (t.checkpoint_every and step % t.checkpoint_every == 0)):
                _save_checkpoint(ckpt_path, model, optimizer, step, metrics, time.perf_counter() - start,
                                 loss_acc.item(), loss_count)
                if stopping:
                    stop.deliver(f"{spec.run_id}: checkpoint saved at step {step}/{spec.steps}")
            if TEST_STEP_S:
                time.sleep(TEST_STEP_S)
            if stop_after_steps is not None and step >= stop_after_steps and step < spec.steps:
                return {"run_id": spec.run_id, "sweep": spec.sweep, "status": "stopped", "step": step}
    finally:
        stop.restore()
        batches.close()
        bar.close()

    wall_s = time.perf_counter() - start
    result = finish_run(spec, status, loss_val, loss_train, wall_s, metrics, source, device, dtype, resumed_from,
                        lambda: _save_checkpoint(ckpt_path, model, optimizer, step, metrics, wall_s,
                                                 loss_acc.item(), loss_count))
    tracker.finish(result)
    if stop.signum is not None:  # the signal came during the last step: the run is done, now obey it
        stop.deliver(f"{spec.run_id}: finished")
    return result


def metrics_row(spec: RunSpec, step: int, loss_train: float, loss_val: float, lr: float, wall_s: float,
                scores: dict) -> dict:
    """One line of metrics.jsonl: the evaluation after `step` optimiser steps."""
    tokens = step * spec.tokens_per_step
    return {"step": step, "tokens": tokens, "flops": float(FLOPS_PER_PARAM_TOKEN * spec.counts.N * tokens), "loss_train": loss_train,
            "loss_val": loss_val, "lr": lr, "wall_s": wall_s, **scores}


def finish_run(spec: RunSpec, status: str, loss_val: float, loss_train: float, wall_s: float, metrics: list,
               source: Any, device: torch.device, dtype: torch.dtype, resumed_from: int,
               save_final: Callable[[], None]) -> dict:
    """Write the finished run's result.json (last, atomically), keep (`save_final`, when
    train.keep_checkpoint) or delete its checkpoint, rebuild runs.csv; returns the result."""
    if status == "diverged":
        loss_val = float("nan")
    floor, floor_note = objectives.objective_floor(spec.shape, source)
    result = _result(spec, status, loss_val, loss_train, wall_s, floor, device, dtype, resumed_from)
    if floor_note:
        result["entropy_floor_note"] = floor_note  # why E* is unknown for this objective or data
    if status == "ok" and metrics:
        result.update({k: v for k, v in metrics[-1].items() if k not in METRIC_KEYS})  # final probe scores
    ckpt_path, keep = spec.run_dir / runs.CHECKPOINT, spec.train.keep_checkpoint
    if keep:  # asked to keep it: the final state, e.g. to continue training or to probe the model
        save_final()
    runs.atomic_write_json(spec.run_dir / runs.RESULT, result)  # written last: the run is finished
    if ckpt_path.exists() and not keep:
        ckpt_path.unlink()
    runs.rebuild_runs_csv(spec.run_dir.parent)
    return result


# ---------------------------------------------------------------- checkpoints and signals

TEST_STEP_S = float(os.environ.get("SCALING_TEST_STEP_S", "0") or 0)  # tests only: seconds slept per step


def _save_checkpoint(path, model, optimizer, step, metrics, wall_s, loss_sum, loss_count) -> None:
    """Model, optimizer (AdamW moments and step counts), the data position and schedule (`step`:
    batch k and lr are pure functions of it), the curve so far, the running train-loss sum and
    the RNG states; written to a temp file and renamed, so a kill mid-save keeps the last one."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "metrics": metrics, "wall_s": wall_s, "loss_sum": loss_sum, "loss_count": loss_count,
             "rng": _rng_states()}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(spec: RunSpec, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device) -> tuple[int, list, float, float, int]:
    """Restore model, optimizer and RNG states from the run's checkpoint and rewrite its metrics
    to the checkpoint's curve; returns (step, metrics, wall_s, loss_sum, loss_count)."""
    state = torch.load(spec.run_dir / runs.CHECKPOINT, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    _set_rng_states(state.get("rng"))
    runs.atomic_write_jsonl(spec.run_dir / runs.METRICS, state["metrics"])
    return state["step"], state["metrics"], state["wall_s"], state["loss_sum"], state["loss_count"]


def _rng_states() -> dict:
    """Torch's global RNG states (CPU, and every CUDA device); nothing in a run draws from them
    today (init and data use explicit seeds), saved so a future dropout would still resume exactly."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict | None) -> None:
    if not states:
        return
    torch.set_rng_state(states["cpu"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


class StopSignals:
    """SIGTERM, SIGINT and SIGUSR2 (SLURM's pre-timeout signal) become a flag the training loop
    reads after each step: it saves a checkpoint, then `deliver` hands the signal to the handler
    that was there before (Python's SIGINT handler raises KeyboardInterrupt, submitit's requeues
    the job; the default SIGTERM action becomes SystemExit(143), so locks are released). Only in
    the main thread (signals cannot be caught elsewhere); ignored signals stay ignored."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR2") if hasattr(signal, name))

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def install(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                old = signal.getsignal(sig)
                if old is not signal.SIG_IGN and old is not None:
                    self._old[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def restore(self) -> None:
        while self._old:
            sig, old = self._old.popitem()
            signal.signal(sig, old)

    def deliver(self, what: str) -> None:
        """Restore the previous handlers and act on the signal that arrived (see the class)."""
        signum, old = self.signum, signal.getsignal(self.signum) if not self._old else self._old[self.signum]
        self.restore()
        progress.say(f"{what}; stopped by {signal.Signals(signum).name} (rerun the same command to resume)")
        if callable(old):
            old(signum, None)
        raise SystemExit(128 + signum)


def summary_line(result: dict) -> str:
    """One line per run for the terminal and logs."""
    status = result.get("status")
    if status in ("busy", "stopped"):
        return f"{result['run_id']}: {status}"
    loss = result.get("loss")
    loss_txt = "nan" if loss is None or not math.isfinite(loss) else f"{loss:.4f}"
    return (f"{result['run_id']}: {status}  N={result['N']:,}  D={result['D']:,}  loss={loss_txt}  "
            f"wall={result['wall_s']:.1f}s")


# ---------------------------------------------------------------- scaling train

USAGE = """usage: scaling train [OVERRIDE ...]

Train one run and write runs/<sweep.name>/<run_id>/ (config.yaml, metrics.jsonl, result.json).
Runs of `scaling train` go to runs/single/ unless you pass sweep.name=<folder>. A finished run
is skipped; an interrupted one resumes from its last checkpoint.

examples:
  scaling train model.size=s2 train.tokens=2e6
  scaling train data=stdlib model.size=s4 train.seed=1 train.device=cpu
"""


def main(argv: list[str]) -> int:
    argv, want_help = split_help(argv)
    if want_help:
        print(USAGE + help_text())
        return 0
    argv = config_dir_override(argv)  # --config-dir DIR: the user's own presets
    if not any(a.split("=", 1)[0].lstrip("+~") in ("sweep", "sweep.name") for a in argv):
        argv = ["sweep=single", *argv]
    cfg = compose(argv)
    result = train_run(cfg)
    if result["status"] == "skipped":
        progress.say(f"{result['run_id']}: already finished, skipped (delete its folder to train it again)")
    else:
        progress.say(summary_line(result))
    if result["status"] == "busy":
        return 1
    runs_csv = runs.sweep_dir(cfg.runs_dir, cfg.sweep.name) / runs.RUNS_CSV
    progress.say(f"result: {runs.run_dir(cfg.runs_dir, cfg.sweep.name, result['run_id']) / runs.RESULT}  table: {runs_csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

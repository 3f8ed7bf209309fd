"""One training run: the engine (model, optimizer, autocast, prefetched batches), the loop with
its ~10 log-spaced evaluations, and the run's folder. The loss is the architecture's objective
(scaling/experiment/losses.py): next-token for the decoder. The schedule is
scaling/experiment/schedule.py, the hardware choices scaling/experiment/hardware.py, checkpoints and
stop signals scaling/experiment/checkpoint.py.

`train_run(cfg)` is the plain-Python entry (a composed config in, a result dict out);
`scaling train` (scaling/experiment/traincli.py) composes the config from Hydra overrides first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from scaling import progress, runs
from scaling.experiment import checkpoint, losses, trackers
from scaling.experiment.config import RunSpec, TrainConfig, resolve_run, token_source
from scaling.experiment.hardware import autocast, pick_compile, place
from scaling.experiment.models import Transformer, training_flops
from scaling.experiment.schedule import eval_steps, lr_at, schedule_steps
from scaling.flops import FLOPS_PER_PARAM_TOKEN

CHECK_EVERY = 16  # on a GPU, steps between reads of the summed loss (divergence checks)


# ---------------------------------------------------------------- the engine: how a run computes


def make_optimizer(model: torch.nn.Module, t: TrainConfig) -> tuple[torch.optim.AdamW, str]:
    """AdamW with weight decay on matrices (and the embeddings), none on LayerNorm weights; the
    fused kernel (one pass over all parameters; CPU and CUDA) where torch has it, else foreach."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": t.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    for kind in ("fused", "foreach"):
        try:
            return torch.optim.AdamW(
                groups, lr=t.lr, betas=(t.beta1, t.beta2), **{kind: True}
            ), kind
        except (RuntimeError, TypeError, ValueError):  # an older torch without it for this device
            continue
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2)), "for-loop"


class Batches:
    """`source.train_batch(step, ...)` for consecutive steps, each made one step ahead on a
    background thread (and copied to the device there, through pinned memory on CUDA), so the
    model never waits for data. `get(step)` returns exactly the batch of that step."""

    def __init__(
        self, source: Any, batch_size: int, seed: int, device: torch.device, start: int, end: int
    ):
        self.source, self.batch_size, self.seed, self.device, self.end = (
            source,
            batch_size,
            seed,
            device,
            end,
        )
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
        loss = losses.train_loss(
            self.forward, self.spec.shape, rows, t.seed, step, self.amp
        )  # the arch's objective
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        return loss.detach()


def build_engine(spec: RunSpec) -> Engine:
    """The engine of run `spec` (sets torch's thread count as a side effect)."""
    t = spec.train
    threads, device, shape, dtype = place(t, spec.shape)
    model = Transformer(shape, seed=t.seed).to(device)
    optimizer, kind = make_optimizer(model, t)
    compiled = pick_compile(t.compile, device, spec, threads)
    forward = torch.compile(model) if compiled else model
    return Engine(
        spec, model, forward, optimizer, kind, device, dtype, shape.attention, compiled, threads
    )


@torch.no_grad()
def probe_metrics(
    model: Callable[..., torch.Tensor], source: Any, device: torch.device, amp: Any
) -> dict[str, float]:
    """The emergent-ability probe scores (scaling/experiment/probe_scores.py, docs/emergence.md) of
    the model now (a module, or its torch.compile'd wrapper: also a module)."""
    from scaling.experiment.probe_scores import probe_scores

    assert isinstance(model, torch.nn.Module)

    model.eval()
    with amp():
        scores = probe_scores(model, source, device=device)
    model.train()
    return scores


# ---------------------------------------------------------------- one run


def run_result(
    spec: RunSpec,
    status: str,
    loss: float,
    loss_train: float,
    wall_s: float,
    source: Any,
    device: torch.device,
    dtype: torch.dtype,
    resumed_from: int,
) -> runs.RunResult:
    """The typed result of run `spec` as it ends now (without its probe scores)."""
    flops, shape = training_flops(spec.shape, spec.D), spec.shape
    floor, floor_note = losses.objective_floor(shape, source)
    unique = getattr(source, "train_tokens", None)  # finite sources repeat their tokens
    return runs.RunResult(
        run_id=spec.run_id,
        sweep=spec.sweep,
        arch=shape.arch,
        data=spec.data_name,
        size=spec.size,
        N=spec.counts.N,
        N_nonembed=spec.counts.N_nonembed,
        D=spec.D,
        C=flops.C_6ND,
        **dataclasses.asdict(flops),  # C_6ND, C_kaplan, C_chinchilla
        loss=loss,
        loss_train=loss_train,
        entropy_floor=floor,
        seed=spec.train.seed,
        status=status,
        wall_s=wall_s,
        tokens_per_s=spec.D / wall_s if wall_s > 0 else None,
        **{k: getattr(shape, k) for k in SHAPE_COLUMNS},
        steps=spec.steps,
        batch_size=spec.train.batch_size,
        lr=spec.train.lr,
        device=device.type,
        precision="bf16" if dtype == torch.bfloat16 else "fp32",
        resumed_from_step=resumed_from,
        entropy_floor_note=floor_note or None,
        unique_tokens=unique,
        epochs=None if unique is None else spec.D / unique,
    )


def train_run(cfg: DictConfig) -> dict:
    """Train the run `cfg` describes unless it is finished or being trained elsewhere.

    Returns the result dict with `status`: "ok" or "diverged" (finished now), "skipped" (it had
    a result.json already) or "busy" (another process holds its claim). A finished run's
    checkpoint is deleted.
    """
    spec = resolve_run(cfg)
    if runs.is_finished(spec.run_dir):
        return {**runs.read_result(spec.run_dir), "status": "skipped"}
    lock = runs.claim(spec.run_dir)
    if lock is None:
        return {"run_id": spec.run_id, "sweep": spec.sweep, "status": "busy"}
    try:
        if runs.is_finished(
            spec.run_dir
        ):  # finished by another process between the check and the claim
            return {**runs.read_result(spec.run_dir), "status": "skipped"}
        return _train(spec)
    finally:
        lock.release(unlink=True)
        if spec.run_dir.is_dir() and not any(spec.run_dir.iterdir()):
            spec.run_dir.rmdir()  # nothing was written: leave no empty folder behind


def _train(spec: RunSpec) -> dict:
    """Train the claimed run `spec` from its checkpoint (or step 0) to its end and finish it."""
    tracker = trackers.start(
        spec.logger, spec.run_dir, spec.runs_dir, spec.sweep, spec.run_id, spec.config
    )  # logger=...: mirrors the run
    engine = build_engine(spec)  # precision, attention, optimizer, compile, threads
    source = token_source(spec.data, spec.shape.ctx)
    loop = RunLoop(spec, engine, source, tracker)
    runs.atomic_write_text(
        spec.run_dir / runs.CONFIG, OmegaConf.to_yaml(OmegaConf.create(spec.config))
    )
    stop = checkpoint.StopSignals().install()  # SIGTERM/SIGINT/SIGUSR2: checkpoint, then exit
    try:
        loop.run(stop)
    finally:
        stop.restore()
    result = loop.finish()
    tracker.finish(result)
    if (
        stop.signum is not None
    ):  # the signal came during the last step: the run is done, now obey it
        stop.deliver(f"{spec.run_id}: finished")
    return result


class RunLoop:
    """The training loop of one run and its state: the step reached, the curve so far and the
    train loss summed since the last evaluation (what a checkpoint saves and a resume restores)."""

    def __init__(self, spec: RunSpec, engine: Engine, source: Any, tracker: Any):
        self.spec, self.engine, self.source, self.tracker = spec, engine, source, tracker
        self.val_rows = source.val_batch().to(engine.device)
        self.ckpt_path = spec.run_dir / runs.CHECKPOINT
        self.metrics: list[dict] = []
        self.step, elapsed, loss_sum, self.loss_count = 0, 0.0, 0.0, 0
        if self.ckpt_path.is_file():  # resume: the data is a pure function of (seed, step)
            self.step, self.metrics, elapsed, loss_sum, self.loss_count = (
                checkpoint.load_checkpoint(spec, engine.model, engine.optimizer, engine.device)
            )
        self.resumed_from = self.step
        self.status, self.loss_val, self.loss_train = "ok", math.nan, math.nan
        # summed where it is computed (reading it waits for a GPU)
        self.loss_acc = torch.tensor(loss_sum, dtype=torch.float64, device=engine.device)
        self.start = time.perf_counter() - elapsed

    def run(self, stop: checkpoint.StopSignals) -> None:
        """Train up to the run's last step, or until its loss is no longer finite."""
        spec, t = self.spec, self.spec.train
        evals = set(eval_steps(spec.steps, t.n_evals, exact=spec.protocol.name == "kaplan"))
        horizon = schedule_steps(
            spec
        )  # where the lr schedule ends: D, or protocol=kaplan's horizon
        check_every = 1 if self.engine.device.type == "cpu" else CHECK_EVERY
        bar = progress.run_bar(spec.D, self.step * spec.tokens_per_step, spec.run_id)
        self.engine.model.train()
        batches = self.engine.batches(self.source, self.step)
        loss_sum = 0.0
        try:
            while self.step < spec.steps:
                lr = lr_at(self.step, horizon, t)
                loss = self.engine.step(batches.get(self.step), lr, self.step)
                self.step += 1
                self.loss_acc += loss
                self.loss_count += 1
                bar.update(spec.tokens_per_step)
                if self.step % check_every == 0 or self.step in evals:
                    loss_sum = self.loss_acc.item()
                    if not math.isfinite(loss_sum):  # NaN or inf since the last evaluation: stop
                        self.status, self.loss_train = "diverged", loss_sum
                        return
                if self.step in evals and not self.evaluate(loss_sum, lr, bar):
                    return
                self.checkpoint_if_due(stop)
        finally:
            batches.close()
            bar.close()

    def evaluate(self, loss_sum: float, lr: float, bar: Any) -> bool:
        """Log the evaluation after this step (metrics.jsonl, the tracker); False if it diverged."""
        spec, engine = self.spec, self.engine
        self.loss_train = (
            loss_sum / self.loss_count
        )  # mean train loss since the previous evaluation
        self.loss_val = losses.evaluate(
            engine.forward, spec.shape, self.val_rows, spec.train.batch_size * 4, engine.amp
        )
        # the probes read next-token predictions: decoder only (docs/architectures.md)
        scores = (
            probe_metrics(engine.forward, self.source, engine.device, engine.amp)
            if spec.shape.arch == "decoder"
            else {}
        )
        self.loss_acc.zero_()
        self.loss_count = 0
        wall_s = time.perf_counter() - self.start
        self.metrics.append(
            metrics_row(spec, self.step, self.loss_train, self.loss_val, lr, wall_s, scores)
        )
        runs.atomic_write_jsonl(spec.run_dir / runs.METRICS, self.metrics)
        self.tracker.log(self.metrics[-1])
        bar.set_postfix(loss=f"{self.loss_val:.3f}", refresh=False)
        if not math.isfinite(self.loss_val):
            self.status = "diverged"
            return False
        return True

    def checkpoint_if_due(self, stop: checkpoint.StopSignals) -> None:
        """Save a checkpoint every train.checkpoint_every steps, and when a stop signal came
        (then hand the signal on)."""
        spec, every = self.spec, self.spec.train.checkpoint_every
        stopping = stop.signum is not None
        if self.step < spec.steps and (stopping or (every and self.step % every == 0)):
            self.save(time.perf_counter() - self.start)
            if stopping:
                stop.deliver(f"{spec.run_id}: checkpoint saved at step {self.step}/{spec.steps}")

    def save(self, wall_s: float) -> None:
        checkpoint.save_checkpoint(
            self.ckpt_path,
            self.engine.model,
            self.engine.optimizer,
            self.step,
            self.metrics,
            wall_s,
            self.loss_acc.item(),
            self.loss_count,
        )

    def finish(self) -> dict:
        """Write the run's result (finish_run) and return it."""
        wall_s = time.perf_counter() - self.start
        return finish_run(
            self.spec,
            self.status,
            self.loss_val,
            self.loss_train,
            wall_s,
            self.metrics,
            self.source,
            self.engine.device,
            self.engine.dtype,
            self.resumed_from,
            lambda: self.save(wall_s),
        )


def metrics_row(
    spec: RunSpec,
    step: int,
    loss_train: float,
    loss_val: float,
    lr: float,
    wall_s: float,
    scores: dict,
) -> dict:
    """One line of metrics.jsonl: the evaluation after `step` optimiser steps."""
    tokens = step * spec.tokens_per_step
    row = runs.MetricsRow(
        step=step,
        tokens=tokens,
        flops=float(FLOPS_PER_PARAM_TOKEN * spec.counts.N * tokens),
        loss_train=loss_train,
        loss_val=loss_val,
        lr=lr,
        wall_s=wall_s,
    )
    return row.to_dict(scores)


SHAPE_COLUMNS = ("d_model", "n_layers", "n_heads", "ctx", "d_ff", "vocab_size")  # in runs.csv


def finish_run(
    spec: RunSpec,
    status: str,
    loss_val: float,
    loss_train: float,
    wall_s: float,
    metrics: list,
    source: Any,
    device: torch.device,
    dtype: torch.dtype,
    resumed_from: int,
    save_final: Callable[[], None],
) -> dict:
    """Write the finished run's result.json (last, atomically), keep (`save_final`, when
    train.keep_checkpoint) or delete its checkpoint, rebuild runs.csv; returns the result."""
    if status == "diverged":
        loss_val = float("nan")
    result = run_result(
        spec, status, loss_val, loss_train, wall_s, source, device, dtype, resumed_from
    )
    if status == "ok" and metrics:  # the final probe scores
        result.scores = {k: v for k, v in metrics[-1].items() if k not in runs.METRIC_KEYS}
    ckpt_path, keep = spec.run_dir / runs.CHECKPOINT, spec.train.keep_checkpoint
    if keep:  # asked to keep it: the final state, e.g. to continue training or to probe the model
        save_final()
    out = result.to_dict()
    runs.atomic_write_json(spec.run_dir / runs.RESULT, out)  # written last: the run is finished
    if ckpt_path.exists() and not keep:
        ckpt_path.unlink()
    runs.rebuild_runs_csv(spec.run_dir.parent)
    return out


def summary_line(result: dict) -> str:
    """One line per run for the terminal and logs."""
    status = result.get("status")
    if status == "busy":
        return f"{result['run_id']}: {status}"
    loss = result.get("loss")
    loss_txt = "nan" if loss is None or not math.isfinite(loss) else f"{loss:.4f}"
    return (
        f"{result['run_id']}: {status}  N={result['N']:,}  D={result['D']:,}  loss={loss_txt}  "
        f"wall={result['wall_s']:.1f}s"
    )

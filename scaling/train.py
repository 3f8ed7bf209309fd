"""One training run: AdamW, linear warmup then cosine decay over exactly D tokens, gradient
clipping, ~10 log-spaced validation points, checkpoint/resume, and the run's folder. The loss is
the architecture's objective (scaling/objectives.py): next-token for the decoder.

`train_run(cfg)` is the plain-Python entry (a composed config in, a result dict out);
`main(argv)` is `scaling train`, which composes the config from Hydra overrides first.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from scaling import objectives, progress, runs
from scaling.config import RunSpec, TrainConfig, compose, help_text, resolve_run, split_help, token_source
from scaling.models import Transformer, training_flops


# ---------------------------------------------------------------- schedule and evaluation points

def lr_at(step: int, steps: int, t: TrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based) of `steps`: linear warmup to t.lr, then
    a cosine from t.lr down to t.lr * t.min_lr_ratio that ends exactly at the last token of D."""
    warmup = int(round(t.warmup_frac * steps))
    if step < warmup:
        return t.lr * (step + 1) / warmup
    progress_ = (step - warmup) / max(1, steps - warmup)
    floor = t.lr * t.min_lr_ratio
    return floor + 0.5 * (t.lr - floor) * (1.0 + math.cos(math.pi * progress_))


def eval_steps(steps: int, n_evals: int) -> list[int]:
    """About `n_evals` step counts, log-spaced from ~1% of the run to its end (always included)."""
    first = max(1, round(steps / 100))
    if n_evals == 1 or first >= steps:
        return [steps]
    ratio = (steps / first) ** (1.0 / (n_evals - 1))
    return sorted({min(steps, round(first * ratio**i)) for i in range(n_evals)} | {steps})


# ---------------------------------------------------------------- devices and precision

def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)  # resolve_run has checked that CUDA exists when asked for


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX tiles: the CPU computes bf16 matmuls natively."""
    cpu = torch.cpu
    return any(bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Autocast dtype: bf16 or fp32 (master weights and optimiser state stay fp32 either way)."""
    precision = precision.lower()
    if precision == "auto":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
        precision = "bf16" if native else "fp32"
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


COMPILE_MIN_STEPS = 1000  # compiling costs tens of seconds: "auto" compiles only runs long enough to repay it


def pick_compile(choice: str, device: torch.device, steps: int) -> bool:
    """torch.compile or not: "auto" means on CUDA, for runs of at least COMPILE_MIN_STEPS steps."""
    choice = str(choice).lower()
    if choice == "auto":
        return device.type == "cuda" and steps >= COMPILE_MIN_STEPS
    return choice == "true"


def make_optimizer(model: torch.nn.Module, t: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (and the embeddings), none on LayerNorm weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2))


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
    if t.threads:
        torch.set_num_threads(t.threads)
    device = pick_device(t.device)
    dtype = pick_dtype(t.precision, device)
    amp = lambda: autocast(device, dtype)  # noqa: E731 - a fresh context manager per use
    source = token_source(spec.config["data"], spec.shape.ctx)
    val_rows = source.val_batch().to(device)

    model = Transformer(spec.shape, seed=t.seed).to(device)
    optimizer = make_optimizer(model, t)
    forward = torch.compile(model) if pick_compile(t.compile, device, spec.steps) else model
    runs.atomic_write_text(spec.run_dir / runs.CONFIG, OmegaConf.to_yaml(OmegaConf.create(spec.config)))

    step, metrics, elapsed, loss_sum, loss_count, resumed_from = 0, [], 0.0, 0.0, 0, 0
    ckpt_path = spec.run_dir / runs.CHECKPOINT
    if ckpt_path.is_file():  # resume: the data is a pure function of (seed, step), so continue the counter
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, metrics, elapsed = state["step"], state["metrics"], state["wall_s"]
        loss_sum, loss_count = state["loss_sum"], state["loss_count"]
        resumed_from = step
        runs.atomic_write_jsonl(spec.run_dir / runs.METRICS, metrics)

    evals = set(eval_steps(spec.steps, t.n_evals))
    status, loss_val, loss_train = "ok", float("nan"), float("nan")
    bar = progress.run_bar(spec.D, step * spec.tokens_per_step, spec.run_id)
    start = time.perf_counter() - elapsed
    model.train()
    try:
        while step < spec.steps:
            lr = lr_at(step, spec.steps, t)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = source.train_batch(step, t.batch_size, t.seed).to(device, non_blocking=True)
            loss = objectives.train_loss(forward, spec.shape, rows, t.seed, step, amp)  # the arch's objective
            value = loss.item()
            if not math.isfinite(value):
                status, loss_train = "diverged", value
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            step += 1
            loss_sum, loss_count = loss_sum + value, loss_count + 1
            bar.update(spec.tokens_per_step)
            if step in evals:
                loss_train = loss_sum / loss_count  # mean train loss since the previous evaluation
                loss_val = objectives.evaluate(forward, spec.shape, val_rows, t.batch_size * 4, amp)
                # the probes read next-token predictions: decoder only (docs/architectures.md)
                scores = probe_metrics(forward, source, device, amp) if spec.shape.arch == "decoder" else {}
                loss_sum, loss_count = 0.0, 0
                metrics.append({
                    "step": step, "tokens": step * spec.tokens_per_step,
                    "flops": 6.0 * spec.counts.N * step * spec.tokens_per_step,
                    "loss_train": loss_train, "loss_val": loss_val, "lr": lr,
                    "wall_s": time.perf_counter() - start, **scores,
                })
                runs.atomic_write_jsonl(spec.run_dir / runs.METRICS, metrics)
                bar.set_postfix(loss=f"{loss_val:.3f}", refresh=False)
                if not math.isfinite(loss_val):
                    status = "diverged"
                    break
            if t.checkpoint_every and step % t.checkpoint_every == 0 and step < spec.steps:
                _save_checkpoint(ckpt_path, model, optimizer, step, metrics, time.perf_counter() - start,
                                 loss_sum, loss_count)
            if stop_after_steps is not None and step >= stop_after_steps and step < spec.steps:
                return {"run_id": spec.run_id, "sweep": spec.sweep, "status": "stopped", "step": step}
    finally:
        bar.close()

    wall_s = time.perf_counter() - start
    if status == "diverged":
        loss_val = float("nan")
    floor, floor_note = objectives.objective_floor(spec.shape, source)
    result = _result(spec, status, loss_val, loss_train, wall_s, floor, device, dtype, resumed_from)
    if floor_note:
        result["entropy_floor_note"] = floor_note  # why E* is unknown for this objective or data
    if status == "ok" and metrics:
        result.update({k: v for k, v in metrics[-1].items() if k not in METRIC_KEYS})  # final probe scores
    runs.atomic_write_json(spec.run_dir / runs.RESULT, result)  # written last: the run is finished
    if ckpt_path.exists():
        ckpt_path.unlink()
    runs.rebuild_runs_csv(spec.run_dir.parent)
    return result


def _save_checkpoint(path, model, optimizer, step, metrics, wall_s, loss_sum, loss_count) -> None:
    """Everything a resume needs except the data, which is a pure function of (seed, step)."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "metrics": metrics, "wall_s": wall_s, "loss_sum": loss_sum, "loss_count": loss_count}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


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

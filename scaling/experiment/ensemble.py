"""Ensembles: K runs of one shape that differ only in seed and/or peak lr, trained in one process
as one computation (docs/performance.md, "Ensembles").

The K models are one `StackedTransformer` (weights stacked on a leading model axis, batched
matmuls); one AdamW step updates all of them, with each member's own learning rate and its own
gradient-norm clipping. Each member is still a run of its own: it is claimed, resumed,
evaluated, checkpointed and finished by scaling/experiment/train.py's code through a plain
`Transformer` that holds one member's weights at a time, so its folder, metrics.jsonl,
checkpoint.pt, result.json and runs.csv row are what its separate run writes. A member that diverges
is finished as `diverged` and the others go on.

`train_ensemble(cfgs)` trains a group; `plan_ensembles(specs, ...)` groups a sweep's runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from scaling import progress, runs
from scaling.experiment import checkpoint, hardware, losses, trackers, train
from scaling.experiment.config import RunSpec, resolve_run, token_source
from scaling.experiment.models import Transformer
from scaling.experiment.models.stacked import StackedTransformer
from scaling.experiment.schedule import eval_steps, lr_at, schedule_steps

MEMBER_KEYS = ("seed", "lr")  # the train keys in which the members of one ensemble may differ


# ---------------------------------------------------------------- grouping a sweep's runs


def ensemble_key(spec: RunSpec) -> str | None:
    """What members of one ensemble share: the whole resolved config but train.seed and train.lr
    (so shape, data, D, schedule shape, sweep folder and execution settings); None for runs that
    train alone (non-decoder objectives draw per-row masks the stacked model does not batch)."""
    if spec.shape.arch != "decoder":
        return None
    config = json.loads(json.dumps(spec.config))
    for key in MEMBER_KEYS:
        config["train"].pop(key, None)
    return json.dumps(config, sort_keys=True)


# auto: the largest N grouped (s2h; on a quiet 2-core CPU ensembles at s3 gained 0.89-1.15x over
# the passes, at s4 0.80-1.03x: docs/performance.md)
AUTO_MAX_PARAMS = 60_000
MEMORY_SHARE = 0.5  # an ensemble may use this share of the memory available to its job


def member_bytes(spec: RunSpec) -> int:
    """Rough peak memory of one member: fp32 weights, gradients and both AdamW moments, and the
    activations autograd keeps (per token and layer ~24 d floats and the H x T attention scores
    twice, plus the logits)."""
    s, tokens = spec.shape, spec.tokens_per_step
    activations = tokens * (s.n_layers * (24 * s.d_model + 2 * s.n_heads * s.ctx) + 3 * s.n_vocab)
    return 4 * (4 * spec.counts.N + activations)


def available_memory() -> float:
    """Bytes of memory available now (Linux MemAvailable); infinity where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


def plan_ensembles(specs: list[RunSpec], parallel_jobs: int = 1) -> list[list[RunSpec]]:
    """The sweep's jobs: runs that differ only in seed and/or lr grouped into ensembles, in grid
    order (each group where its first run was). A run trains alone where its train.ensemble is
    "off", where auto finds it too large to gain (N > AUTO_MAX_PARAMS) and for other
    architectures; a group holds at most train.ensemble_max runs and as many as fit in
    MEMORY_SHARE of the available memory split over `parallel_jobs`."""
    budget = MEMORY_SHARE * available_memory() / max(1, parallel_jobs)
    groups: dict[str, list[list[RunSpec]]] = {}
    jobs: list[list[RunSpec]] = []
    for spec in specs:
        t = spec.train
        key = ensemble_key(spec)
        if str(t.ensemble).lower() == "off" or key is None or spec.counts.N > AUTO_MAX_PARAMS:
            jobs.append([spec])
            continue
        fits = int(budget // member_bytes(spec)) if math.isfinite(budget) else t.ensemble_max
        cap = max(1, min(t.ensemble_max, fits))
        open_groups = groups.setdefault(key, [])
        if open_groups and len(open_groups[-1]) < cap:
            open_groups[-1].append(spec)
        else:
            open_groups.append([spec])
            jobs.append(open_groups[-1])
    return jobs


def member_overrides(spec: RunSpec) -> list[str]:
    """The overrides that turn the first member's config into this member's."""
    return [f"train.{key}={getattr(spec.train, key)!r}" for key in MEMBER_KEYS]


# ---------------------------------------------------------------- the optimiser


class StackedAdamW:
    """torch's AdamW (decoupled weight decay on matrices and embeddings, none on LayerNorm
    weights) over stacked parameters, each member at its own learning rate (a (K,) tensor), and
    torch's clip_grad_norm_ applied to each member's gradients separately."""

    def __init__(self, params: list[torch.Tensor], t: Any):
        self.params, self.t, self.step_count = params, t, 0
        self.decay = [p.dim() >= 3 for p in params]  # a matrix per member (LayerNorm: (K, d))
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]

    @staticmethod
    def _per_member(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *[1] * (like.dim() - 1))

    @staticmethod
    def _grad(p: torch.Tensor) -> torch.Tensor:
        assert p.grad is not None, "clip_ and step need the gradients of a backward pass"
        return p.grad

    @torch.no_grad()
    def clip_(self, max_norm: float) -> None:
        """Scale each member's gradients so their global 2-norm is at most `max_norm`."""
        grads = [self._grad(p) for p in self.params]
        total = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (K,)
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(self._per_member(coef, g))

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        t = self.t
        self.step_count += 1
        bc1 = 1 - t.beta1**self.step_count
        bc2_sqrt = math.sqrt(1 - t.beta2**self.step_count)
        for p, m, v, decay in zip(self.params, self.exp_avg, self.exp_avg_sq, self.decay):
            g, lr_k = self._grad(p), self._per_member(lr, p)
            if decay and t.weight_decay:
                p.mul_(1 - lr_k * t.weight_decay)
            m.lerp_(g, 1 - t.beta1)
            v.mul_(t.beta2).addcmul_(g, g, value=1 - t.beta2)
            denom = (v.sqrt() / bc2_sqrt).add_(1e-8)
            p.sub_(m / denom * (lr_k / bc1))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    # one member's moments to and from a torch AdamW over a plain Transformer (checkpoints)
    @torch.no_grad()
    def member_into(
        self, k: int, optimizer: torch.optim.AdamW, model: Transformer, lr: float
    ) -> None:
        for p, m, v in zip(model.parameters(), self.exp_avg, self.exp_avg_sq):
            step = torch.tensor(float(self.step_count), dtype=torch.float32)
            optimizer.state[p] = {"step": step, "exp_avg": m[k].clone(), "exp_avg_sq": v[k].clone()}
        for group in optimizer.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def load_member(self, k: int, optimizer: torch.optim.AdamW, model: Transformer) -> None:
        for p, m, v in zip(model.parameters(), self.exp_avg, self.exp_avg_sq):
            state = optimizer.state[p]
            m[k].copy_(state["exp_avg"])
            v[k].copy_(state["exp_avg_sq"])
            self.step_count = int(state["step"])


def member_losses(model: StackedTransformer, rows: torch.Tensor) -> torch.Tensor:
    """(K,) mean next-token losses (nats per token) of each member on its rows (K, B, ctx + 1)."""
    logits = model(rows[..., :-1]).float()
    losses = F.cross_entropy(logits.flatten(0, 2), rows[..., 1:].flatten(), reduction="none")
    return losses.view(rows.size(0), -1).mean(dim=1)


class StackedBatches(train.Batches):
    """Each member's batch of a step (its own seed), stacked (K, batch_size, ctx + 1)."""

    def __init__(
        self,
        source: Any,
        batch_size: int,
        seeds: list[int],
        device: torch.device,
        start: int,
        end: int,
    ):
        self.seeds = seeds  # set first: the base class makes the first batch right away
        super().__init__(source, batch_size, seeds[0], device, start, end)

    def _make(self, step: int) -> torch.Tensor:
        rows = torch.stack([self.source.train_batch(step, self.batch_size, s) for s in self.seeds])
        if self.device.type == "cuda":
            rows = rows.pin_memory().to(self.device, non_blocking=True)
        return rows.to(self.device)


# ---------------------------------------------------------------- the engine


@dataclass
class EnsembleEngine:
    """How an ensemble computes: the stacked model and optimiser, and one plain Transformer (with
    its torch AdamW) that holds one member at a time for evaluation, probes and checkpoints."""

    specs: list[RunSpec]
    model: StackedTransformer
    optimizer: StackedAdamW
    member: Transformer
    member_optimizer: torch.optim.AdamW
    device: torch.device
    dtype: torch.dtype
    threads: int
    losses: Callable[[StackedTransformer, torch.Tensor], torch.Tensor] = member_losses

    def amp(self):
        return hardware.autocast(self.device, self.dtype)

    def step(self, rows: torch.Tensor, lr: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """One optimiser step of every member on its rows (K, B, ctx + 1) at its lr; returns the
        (K,) detached losses. Inactive (finished) members get no gradient."""
        with self.amp():
            losses = self.losses(self.model, rows)
        self.optimizer.zero_grad()
        torch.where(active, losses, torch.zeros_like(losses)).sum().backward()
        if self.specs[0].train.grad_clip > 0:
            self.optimizer.clip_(self.specs[0].train.grad_clip)
        self.optimizer.step(lr)
        return losses.detach()

    def load_member(self, k: int, spec: RunSpec) -> tuple[int, list, float, float, int]:
        """Resume member k from its run's checkpoint (checkpoint.load_checkpoint's format)."""
        state = checkpoint.load_checkpoint(spec, self.member, self.member_optimizer, self.device)
        self.model.load_member(k, self.member)
        self.optimizer.load_member(k, self.member_optimizer, self.member)
        return state

    def save_member(
        self,
        k: int,
        step: int,
        lr: float,
        metrics: list,
        wall_s: float,
        loss_sum: float,
        loss_count: int,
    ) -> None:
        """Member k's checkpoint, exactly as its separate run saves one."""
        self.model.member_into(k, self.member)
        self.optimizer.member_into(k, self.member_optimizer, self.member, lr)
        checkpoint.save_checkpoint(
            self.specs[k].run_dir / runs.CHECKPOINT,
            self.member,
            self.member_optimizer,
            step,
            metrics,
            wall_s,
            loss_sum,
            loss_count,
        )

    def evaluate(self, k: int, source: Any, val_rows: torch.Tensor) -> tuple[float, dict]:
        """Member k's validation loss and probe scores, by the single run's code."""
        spec = self.specs[k]
        self.model.member_into(k, self.member)
        loss_val = losses.evaluate(
            self.member, spec.shape, val_rows, spec.train.batch_size * 4, self.amp
        )
        return loss_val, train.probe_metrics(self.member, source, self.device, self.amp)


def build_ensemble(specs: list[RunSpec]) -> EnsembleEngine:
    """The engine of members `specs` (one shape; sets torch's thread count as a side effect)."""
    t = specs[0].train
    threads, device, shape, dtype = hardware.place(t, specs[0].shape)
    model = StackedTransformer(shape, [s.train.seed for s in specs]).to(device)
    member = Transformer(shape, seed=0).to(device)
    member_optimizer, _ = train.make_optimizer(member, t)
    # compile as a run of K times the tokens would be
    # (hardware.pick_compile: the work must repay it)
    as_one_run = dataclasses.replace(specs[0], D=specs[0].D * len(specs))
    compiled = hardware.pick_compile(t.compile, device, as_one_run, threads)
    losses = torch.compile(member_losses) if compiled else member_losses
    optimizer = StackedAdamW(list(model.parameters()), t)
    return EnsembleEngine(
        specs, model, optimizer, member, member_optimizer, device, dtype, threads, losses
    )


# ---------------------------------------------------------------- training a group


def train_ensemble(cfgs: list[DictConfig]) -> list[dict]:
    """Train the runs `cfgs` (one shape; differing in seed and/or lr) together; one result dict
    per run, as train.train_run returns it ("skipped", "busy", "ok", "diverged").
    Members whose checkpoints stand at another step than the most common one train alone."""
    specs = [resolve_run(c) for c in cfgs]
    if len({ensemble_key(s) for s in specs}) != 1 or ensemble_key(specs[0]) is None:
        raise ValueError("an ensemble's runs must be decoder runs that differ only in seed and lr")
    results: dict[str, dict] = {}
    held: list[tuple[RunSpec, runs.FileLock]] = []
    try:
        for spec in specs:
            lock = None if runs.is_finished(spec.run_dir) else runs.claim(spec.run_dir)
            if runs.is_finished(spec.run_dir):
                results[spec.run_id] = {**runs.read_result(spec.run_dir), "status": "skipped"}
            elif lock is None:
                results[spec.run_id] = {
                    "run_id": spec.run_id,
                    "sweep": spec.sweep,
                    "status": "busy",
                }
            else:
                held.append((spec, lock))
                continue
            if lock is not None:
                lock.release(unlink=True)
        todo = [spec for spec, _ in held]
        start = {s.run_id: _checkpoint_step(s) for s in todo}
        steps = list(start.values())
        common = max(set(steps), key=lambda v: (steps.count(v), -v), default=0)
        together = [s for s in todo if start[s.run_id] == common]
        if len(together) > 1:
            results.update(zip([s.run_id for s in together], _train(together)))
        for spec in todo:
            if spec.run_id not in results:
                results[spec.run_id] = train._train(spec)
    finally:
        for spec, lock in held:
            lock.release(unlink=True)
            if spec.run_dir.is_dir() and not any(spec.run_dir.iterdir()):
                spec.run_dir.rmdir()
    return [results[s.run_id] for s in specs]


def _checkpoint_step(spec: RunSpec) -> int:
    path = spec.run_dir / runs.CHECKPOINT
    if not path.is_file():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def _train(specs: list[RunSpec]) -> list[dict]:
    """train._train for K members at once: train the claimed members to their end, finish each."""
    engine = build_ensemble(specs)
    source = token_source(specs[0].data, specs[0].shape.ctx)
    for spec in specs:
        runs.atomic_write_text(
            spec.run_dir / runs.CONFIG, OmegaConf.to_yaml(OmegaConf.create(spec.config))
        )
    mirrors = [
        trackers.start(s.logger, s.run_dir, s.runs_dir, s.sweep, s.run_id, s.config) for s in specs
    ]  # logger=...: one per member
    loop = EnsembleLoop(specs, engine, source, mirrors)
    stop = checkpoint.StopSignals().install()
    try:
        loop.run(stop)
    finally:
        stop.restore()
    results = loop.finish_alive()
    if stop.signum is not None:
        stop.deliver(f"{loop.label}: finished")
    return results


class EnsembleLoop:
    """train.RunLoop for K members at once: the shared step and count of summed train losses,
    and each member's curve, status and result. A member that diverges is finished at once."""

    def __init__(
        self, specs: list[RunSpec], engine: EnsembleEngine, source: Any, mirrors: list[Any]
    ):
        K = len(specs)
        self.specs, self.engine, self.source, self.mirrors = specs, engine, source, mirrors
        self.val_rows = source.val_batch().to(engine.device)
        self.step, self.count = 0, 0
        self.metrics: list[list] = [[] for _ in specs]
        elapsed, sums = [0.0] * K, [0.0] * K
        if (
            specs[0].run_dir / runs.CHECKPOINT
        ).is_file():  # train_ensemble grouped them at one step
            for k, spec in enumerate(specs):
                self.step, self.metrics[k], elapsed[k], sums[k], self.count = engine.load_member(
                    k, spec
                )
        self.resumed_from = self.step
        self.status, self.loss_val, self.loss_train = ["ok"] * K, [math.nan] * K, [math.nan] * K
        self.results: list[dict | None] = [None] * K
        self.alive = [True] * K  # members still training (read here without a device sync)
        self.active = torch.ones(K, dtype=torch.bool, device=engine.device)  # the step's mask
        self.loss_acc = torch.tensor(sums, dtype=torch.float64, device=engine.device)
        self.start = [time.perf_counter() - e for e in elapsed]
        self.horizon = schedule_steps(specs[0])
        self.lrs = [lr_at(self.step, self.horizon, s.train) for s in specs]
        self.label = f"{specs[0].run_id} +{K - 1} (ensemble)"

    def run(self, stop: checkpoint.StopSignals) -> None:
        """Train until the last step or until every member has diverged."""
        spec0, t0, K = self.specs[0], self.specs[0].train, len(self.specs)
        evals = set(eval_steps(spec0.steps, t0.n_evals, exact=spec0.protocol.name == "kaplan"))
        check_every = 1 if self.engine.device.type == "cpu" else train.CHECK_EVERY
        bar = progress.run_bar(spec0.D * K, self.step * spec0.tokens_per_step * K, self.label)
        seeds = [s.train.seed for s in self.specs]
        batches = StackedBatches(
            self.source, t0.batch_size, seeds, self.engine.device, self.step, spec0.steps
        )
        sums: list[float] = []
        try:
            self.engine.model.train()
            while self.step < spec0.steps and any(self.alive):
                self.lrs = [lr_at(self.step, self.horizon, s.train) for s in self.specs]
                lrs = torch.tensor(self.lrs, device=self.engine.device)
                losses = self.engine.step(batches.get(self.step), lrs, self.active)
                self.step += 1
                self.loss_acc += losses
                self.count += 1
                bar.update(spec0.tokens_per_step * sum(self.alive))
                if self.step % check_every == 0 or self.step in evals:
                    sums = self.loss_acc.tolist()
                    self.finish_diverged(sums)
                if self.step in evals:
                    self.evaluate(sums)
                self.checkpoint_if_due(stop)
        finally:
            batches.close()
            bar.close()

    def finish_diverged(self, sums: list[float]) -> None:
        """Finish the members whose summed train loss is NaN or inf since the last evaluation."""
        for k in range(len(self.specs)):
            if self.alive[k] and not math.isfinite(sums[k]):
                self.status[k], self.loss_train[k] = "diverged", sums[k]
                self.finish(k)

    def evaluate(self, sums: list[float]) -> None:
        """Each live member's evaluation after this step, logged as its separate run logs it."""
        for k, spec in enumerate(self.specs):
            if not self.alive[k]:
                continue
            self.loss_train[k] = sums[k] / self.count
            self.loss_val[k], scores = self.engine.evaluate(k, self.source, self.val_rows)
            wall = time.perf_counter() - self.start[k]
            self.metrics[k].append(
                train.metrics_row(
                    spec, self.step, self.loss_train[k], self.loss_val[k], self.lrs[k], wall, scores
                )
            )
            runs.atomic_write_jsonl(spec.run_dir / runs.METRICS, self.metrics[k])
            self.mirrors[k].log(self.metrics[k][-1])
            if not math.isfinite(self.loss_val[k]):
                self.status[k] = "diverged"
                self.finish(k)
        self.loss_acc.zero_()
        self.count = 0

    def checkpoint_if_due(self, stop: checkpoint.StopSignals) -> None:
        """Every live member's checkpoint every train.checkpoint_every steps, and when a stop
        signal came (then hand the signal on)."""
        spec0, every = self.specs[0], self.specs[0].train.checkpoint_every
        stopping = stop.signum is not None
        if self.step < spec0.steps and (stopping or (every and self.step % every == 0)):
            for k in range(len(self.specs)):
                if self.alive[k]:
                    wall = time.perf_counter() - self.start[k]
                    self.engine.save_member(
                        k,
                        self.step,
                        self.lrs[k],
                        self.metrics[k],
                        wall,
                        float(self.loss_acc[k]),
                        self.count,
                    )
            if stopping:
                stop.deliver(f"{self.label}: checkpoints saved at step {self.step}/{spec0.steps}")

    def finish(self, k: int) -> None:
        """Write member k's result (train.finish_run) and stop training it."""
        wall, loss_sum = time.perf_counter() - self.start[k], float(self.loss_acc[k])
        step, lr, count, metrics = self.step, self.lrs[k], self.count, self.metrics[k]
        self.results[k] = train.finish_run(
            self.specs[k],
            self.status[k],
            self.loss_val[k],
            self.loss_train[k],
            wall,
            metrics,
            self.source,
            self.engine.device,
            self.engine.dtype,
            self.resumed_from,
            lambda: self.engine.save_member(k, step, lr, metrics, wall, loss_sum, count),
        )
        self.mirrors[k].finish(self.results[k])
        self.alive[k] = False
        self.active[k] = False

    def finish_alive(self) -> list[dict]:
        """Finish the members still training; every member's result."""
        for k in range(len(self.specs)):
            if self.alive[k]:
                self.finish(k)
        return [r for r in self.results if r is not None]

"""Mirror a run's config and metrics to the tracker a user watches (`logger=tensorboard|mlflow|
wandb`; default `none`). The run store (runs/) stays the source of truth: a tracker only copies
what the run writes there, and its library is an optional extra (`pip install 'scaling[trackers]'`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from scaling.errors import ConfigError

WandbMode = Literal["online", "offline", "disabled", "shared"]  # wandb.init's `mode`

TRACKERS = ("none", "tensorboard", "mlflow", "wandb")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


@dataclass
class LoggerConfig:
    """Which tracker mirrors the runs (conf/logger/) and where it writes."""

    name: str = "none"  # none | tensorboard | mlflow | wandb
    # tensorboard: event folder per run (default: <run folder>/tensorboard); mlflow: tracking URI
    # (default: file:<runs_dir>/mlruns); wandb: its files folder (default: <runs_dir>)
    dir: str | None = None
    project: str | None = None  # mlflow experiment / wandb project (default: the sweep name)
    mode: str = "offline"  # wandb: offline (sync later with `wandb sync`) | online


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def _scalars(row: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if k != "step"
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
    }


class Tracker:
    """No tracker: every call does nothing."""

    def log(self, row: dict) -> None:
        """One evaluation of metrics.jsonl (its `step` is the x axis)."""

    def finish(self, result: dict) -> None:
        """The run's result.json as a summary; the tracker's run ends."""


class TensorBoard(Tracker):
    def __init__(self, folder: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in _flat(config).items()))

    def log(self, row: dict) -> None:
        for k, v in _scalars(row).items():
            self.writer.add_scalar(k, v, int(row["step"]))
        self.writer.flush()

    def finish(self, result: dict) -> None:
        self.writer.close()


class MLflow(Tracker):
    def __init__(self, uri: str, experiment: str, run_name: str, config: dict):
        import mlflow

        if uri.startswith("file:"):  # MLflow 3 keeps its file store behind this opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        for k, v in _flat(config).items():
            self.client.log_param(self.run_id, k, v)

    def log(self, row: dict) -> None:
        for k, v in _scalars(row).items():
            self.client.log_metric(self.run_id, k, v, step=int(row["step"]))

    def finish(self, result: dict) -> None:
        for k in ("N", "D", "loss", "loss_train", "wall_s"):
            if isinstance(result.get(k), (int, float)) and math.isfinite(result[k]):
                self.client.log_metric(self.run_id, f"final/{k}", float(result[k]))
        self.client.set_terminated(self.run_id, "FINISHED")


class WandB(Tracker):
    def __init__(self, folder: Path, project: str, run_name: str, mode: str, config: dict):
        import wandb

        self.run = wandb.init(
            project=project,
            name=run_name,
            dir=str(folder),
            mode=cast(WandbMode, mode),  # a str from the config; wandb.init rejects others
            config=_flat(config),
            reinit="create_new",
        )

    def log(self, row: dict) -> None:
        self.run.log(_scalars(row), step=int(row["step"]))

    def finish(self, result: dict) -> None:
        kept = {k: v for k, v in result.items() if isinstance(v, (int, float, str))}
        self.run.summary.update(kept)
        self.run.finish()


def start(
    cfg: LoggerConfig | dict | None,
    run_dir: Path,
    runs_dir: str,
    sweep: str,
    run_id: str,
    config: dict,
) -> Tracker:
    """The tracker of `cfg` for one run; ConfigError (before any step) on an unknown name or a
    tracker whose library is not installed."""
    if not isinstance(cfg, LoggerConfig):
        cfg = LoggerConfig(**(dict(cfg) if cfg else {}))
    if cfg.name not in TRACKERS:
        raise ConfigError(f"logger={cfg.name!r}: choose one of {', '.join(TRACKERS)}")
    if cfg.name == "none":
        return Tracker()
    try:
        __import__(PACKAGES[cfg.name])
    except ImportError:
        raise ConfigError(
            f"logger={cfg.name} needs the {PACKAGES[cfg.name]} package: pip install "
            "'scaling[trackers]' (or logger=none)"
        ) from None
    project = cfg.project or sweep
    if cfg.name == "tensorboard":
        return TensorBoard(
            Path(cfg.dir) / sweep / run_id if cfg.dir else run_dir / "tensorboard", config
        )
    if cfg.name == "mlflow":
        uri = cfg.dir or f"file:{(Path(runs_dir) / 'mlruns').resolve()}"
        return MLflow(uri, project, run_id, config)
    folder = Path(cfg.dir or runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return WandB(folder, project, run_id, cfg.mode, config)

"""Readers for other tools' training logs: each turns a run's log into our runs table row and its
training curve, so `scaling fit` treats them like our own sweep folders.

Formats (one module each): `hf` (Trainer `trainer_state.json`), `tensorboard` (event folders),
`wandb` (history CSV export), `lightning` (CSVLogger `metrics.csv`). A folder that is not a run
itself gives one run per subfolder holding a log. Tokens are the logged token count or
`tokens_per_step` x step; N is a column, the config file beside the log (see `sizes`), or a value.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.analysis.readers import hf, lightning, sizes, tensorboard, wandb
from scaling.errors import DataError

FORMATS = {"hf": hf, "tensorboard": tensorboard, "wandb": wandb, "lightning": lightning}
# metric names tried in order when --loss / --d name no column of the log
EVAL_LOSS = (
    "eval_loss",
    "eval/loss",
    "val_loss",
    "val/loss",
    "loss_val",
    "validation_loss",
    "valid/loss",
    "validation/loss",
)
TRAIN_LOSS = ("loss", "train_loss", "train/loss", "loss_train", "training_loss")
TOKENS = (
    "num_input_tokens_seen",
    "train/num_input_tokens_seen",
    "tokens",
    "tokens_seen",
    "num_tokens",
    "trainer/tokens",
)
LR = ("learning_rate", "train/learning_rate", "lr", "lr-AdamW", "lr-Adam")
RESERVED = {"run_id", "N", "D", "C", "loss", "loss_train", "step", "format", "log", "N_source"}


@dataclass(frozen=True)
class LogOptions:
    """How to read logs: a forced format, the loss/token metric names, where N comes from."""

    format: str | None = None  # None: detected from each file
    loss: str | None = None  # eval-loss metric (None: EVAL_LOSS)
    tokens: str | None = None  # token-count metric (None: TOKENS)
    tokens_per_step: float | None = None  # tokens = this x step (wins over a logged count)
    n_value: float | None = None  # N of every run (one run folder), when no config says it
    n_key: str | None = None  # a column or config key holding N (None: sizes.N_KEYS)

    def __post_init__(self):
        if self.format is not None and self.format not in FORMATS:
            raise DataError(f"--format {self.format!r}: choose one of {', '.join(FORMATS)}")


def detect(path: Path) -> str | None:
    """The format of a log file or run folder, or None when it is not one."""
    for name, mod in FORMATS.items():
        if mod.is_log(path):
            return name
    return None


def find_runs(path: Path, fmt: str | None) -> list[tuple[Path, str]]:
    """(log path, format) of `path` itself if it is a log, else of every run folder below it
    (a folder stops the walk once it is a run)."""
    is_log = (lambda p: fmt if FORMATS[fmt].is_log(p) else None) if fmt else detect
    if (found := is_log(path)) is not None:
        return [(path, found)]
    if path.is_file():
        raise DataError(
            f"{path}: not a {fmt} log"
            if fmt
            else f"{path}: not a log this toolkit reads ({', '.join(FORMATS)}); "
            "pass --format to force one"
        )
    out = []
    for root, dirs, _ in os.walk(path):
        dirs.sort()
        keep = []
        for d in dirs:
            sub = Path(root) / d
            if (f := is_log(sub)) is not None:
                out.append((sub, f))
            elif not d.startswith("."):
                keep.append(d)
        dirs[:] = keep
    return out


def _pick(frame: pd.DataFrame, name: str | None, defaults, log: Path, flag: str) -> str | None:
    """The column `name` (DataError if the log lacks it), else the first default holding values."""
    if name is not None:
        if name not in frame:
            raise DataError(
                f"{log}: no metric {name!r} ({flag}); it logs {', '.join(map(str, frame.columns))}"
            )
        return name
    return next((k for k in defaults if k in frame and frame[k].notna().any()), None)


def _values(frame: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(float)


def _config_folders(log: Path, fmt: str) -> list[Path]:
    """Where a run's config may lie: beside the log (and an HF checkpoint's output folder)."""
    folder = log if log.is_dir() else log.parent
    return [folder, folder.parent] if fmt == "hf" else [folder]


def _tokens(hist: pd.DataFrame, step: np.ndarray, log: Path, opts: LogOptions) -> np.ndarray:
    """Training tokens at each logged step: --tokens-per-step x step, or the logged token count
    (interpolated over the steps where it is missing, such as evaluation rows)."""
    if opts.tokens_per_step is not None:
        return opts.tokens_per_step * step
    tcol = _pick(hist, opts.tokens, TOKENS, log, "--d")
    if tcol is None:
        raise DataError(
            f"{log}: no token count is logged ({', '.join(TOKENS[:3])}, ...); "
            "pass --tokens-per-step (batch size x context length)"
        )
    t = _values(hist, tcol)
    known = np.isfinite(t) & np.isfinite(step)
    return np.interp(step, step[known], t[known]) if known.any() else t


def read_run(log: Path, fmt: str, run_id: str, opts: LogOptions) -> tuple[dict, pd.DataFrame]:
    """One run: its runs-table row (run_id, N, D, loss, step, ...) and its curve (run_id, step,
    tokens, loss_val[, loss_train]), one curve row per evaluation."""
    hist = FORMATS[fmt].read(log)
    cfg, cfg_path = sizes.read_config(_config_folders(log, fmt))
    lcol = _pick(hist, opts.loss, EVAL_LOSS, log, "--loss")
    if lcol is None:
        raise DataError(
            f"{log}: no evaluation loss ({', '.join(EVAL_LOSS[:4])}, ...); name the "
            "metric with --loss"
        )
    step = _values(hist, "step")
    loss = _values(hist, lcol)
    evals = np.isfinite(loss) & np.isfinite(step)
    if not evals.any():
        raise DataError(f"{log}: metric {lcol!r} has no finite value; nothing to fit")
    tokens = _tokens(hist, step, log, opts)
    evals &= np.isfinite(tokens) & (tokens > 0)  # an evaluation before training has no point
    if not evals.any():
        raise DataError(f"{log}: no evaluation has a positive token count; pass --tokens-per-step")
    curve = pd.DataFrame(
        {"run_id": run_id, "step": step[evals], "tokens": tokens[evals], "loss_val": loss[evals]}
    )
    curve = curve.groupby("step", as_index=False).last().sort_values("step")
    tl = _pick(hist, None, TRAIN_LOSS, log, "")
    if tl is not None and tl != lcol:
        tr = hist.loc[np.isfinite(_values(hist, tl)) & np.isfinite(step), ["step", tl]]
        tr = tr.groupby("step").last()[tl]
        curve["loss_train"] = pd.to_numeric(tr.reindex(curve["step"]).to_numpy(), errors="coerce")
    n, n_source = _size(hist, cfg, cfg_path, log, opts)
    last = curve.iloc[-1]
    row = {
        "run_id": run_id,
        "N": n,
        "D": float(last["tokens"]),
        "loss": float(last["loss_val"]),
        "step": float(last["step"]),
        "format": fmt,
        "log": str(log),
        "N_source": n_source,
    }
    if "loss_train" in curve and math.isfinite(last["loss_train"]):
        row["loss_train"] = float(last["loss_train"])
    lr = next((k for k in LR if k in hist), None)
    if lr is not None and np.isfinite(_values(hist, lr)).any():
        row["lr"] = float(np.nanmax(_values(hist, lr)))  # the peak of the logged schedule
    for k, v in sizes.hyperparameters(cfg).items():
        if k not in RESERVED and k not in row:
            row[k] = v
    return row, curve


def _size(
    hist: pd.DataFrame, cfg: dict, cfg_path: Path | None, log: Path, opts: LogOptions
) -> tuple[float, str]:
    """N and where it came from: the log's column or its config's key, else the architecture in
    its config, else --n VALUE."""
    for key in (opts.n_key,) if opts.n_key else sizes.N_KEYS:
        v = _values(hist, key) if key in hist else np.array([])
        if np.isfinite(v).any():
            return float(v[np.isfinite(v)][-1]), f"the log's column {key}"
    if cfg_path is not None:
        n = sizes.param_count(cfg, opts.n_key)
        if n is not None:
            return n, f"the parameter count in {cfg_path.name}"
        n = None if opts.n_key else sizes.params_from_architecture(cfg)
        if n is not None:
            return n, f"the architecture in {cfg_path.name}"
    if opts.n_value is not None:
        return opts.n_value, "--n"
    where = (
        f"its config {cfg_path} has no parameter count or architecture"
        if cfg_path
        else "no config.json/hparams.yaml/config.yaml beside it"
    )
    raise DataError(
        f"{log}: no model size ({where}); add num_parameters to a config.json beside "
        "the log or pass --n VALUE"
    )


def read_logs(path: Path, opts: LogOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run under `path` as (runs table, curves), like a sweep folder of our own."""
    found = find_runs(path, opts.format)
    if not found and opts.format:
        raise DataError(f"{path}: no {opts.format} log in it or its subfolders (--format)")
    if not found:
        raise DataError(
            f"{path}: a folder must hold runs.csv (a sweep) or run logs ("
            f"{', '.join(FORMATS)}), itself or in subfolders; found neither"
        )
    rows, curves = [], []
    for log, fmt in found:
        rel = (log if log.is_dir() else log.parent).relative_to(path) if path.is_dir() else Path()
        run_id = str(rel) if str(rel) != "." else (path.name if path.is_dir() else path.parent.name)
        row, curve = read_run(log, fmt, run_id or log.stem, opts)
        rows.append(row)
        curves.append(curve)
    table = pd.DataFrame(rows)
    for name, canon in ((opts.loss, "loss"), (opts.tokens, "D"), (opts.n_key, "N")):
        if name is not None:
            table[name] = table[canon]  # so the column options name the log's own metrics
    return table, pd.concat(curves, ignore_index=True)


def log_files(path: Path) -> list[Path]:
    """The files behind every log under `path` and the configs giving N (the report's hashes)."""
    out = []
    for log, fmt in find_runs(path, None):
        if (cfg := sizes.config_file(_config_folders(log, fmt))) is not None:
            out.append(cfg)
        if fmt == "hf" and log.is_dir():
            if (state := hf.state_file(log)) is not None:  # always, for a folder found as an hf log
                out.append(state)
        elif fmt == "tensorboard" and log.is_dir():
            out += sorted(log.glob(tensorboard.PATTERN))
        elif fmt == "lightning" and log.is_dir():
            out.append(log / lightning.METRICS)
        elif fmt == "wandb" and log.is_dir():
            out += wandb.history_files(log)
        else:
            out.append(log)
    return out

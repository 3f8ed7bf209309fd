"""The run store: where runs live under `runs/`, how they are written, claimed, found and tabled.

Layout (docs/architecture.md): `runs/<sweep>/<run_id>/{config.yaml, metrics.jsonl, result.json}`
and `runs/<sweep>/runs.csv`. A run is finished iff its `result.json` exists; `runs.csv` is
always rebuilt from those files (never appended), under a lock, so parallel launchers cannot
corrupt it. Every write goes to a temp file in the same folder and is renamed into place.
This module never imports torch: the fitting side reads runs through it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import socket
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from scaling.errors import ConfigError, DataError

try:  # POSIX advisory locks: released by the kernel when the holder dies, so no stale claims
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULT = "result.json"
CHECKPOINT = "checkpoint.pt"
RUNS_CSV = "runs.csv"
LOCK = ".lock"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files owner-only


@dataclass
class RunResult:
    """A finished run's result.json and its runs.csv row. The fields without a default are
    runs.csv's columns, in order (the contract's first, then the shape and run settings); the
    optional ones are written only when set, and the final probe scores (`scores`) are flattened
    into the result, so they become runs.csv's extra columns, sorted."""

    run_id: str
    sweep: str
    arch: str
    data: str  # the data source's name
    size: str  # ladder rung name, or "custom"
    N: int  # parameters, embeddings included
    N_nonembed: int
    D: int  # training tokens
    C: float  # = C_6ND
    C_6ND: float
    C_kaplan: float
    C_chinchilla: float
    loss: float  # final validation loss, nats per token (NaN: diverged)
    loss_train: float
    entropy_floor: float | None  # E*, where the source and objective make it known
    seed: int
    status: str  # "ok" | "diverged"
    wall_s: float
    tokens_per_s: float | None
    d_model: int
    n_layers: int
    n_heads: int
    ctx: int
    d_ff: int | None
    vocab_size: int
    steps: int
    batch_size: int
    lr: float
    device: str  # "cpu" | "cuda"
    precision: str  # "fp32" | "bf16"
    resumed_from_step: int
    entropy_floor_note: str | None = None  # why E* is unknown for this objective or data
    unique_tokens: int | None = None  # a finite source's unique training tokens (U_D)
    epochs: float | None = None  # D / unique_tokens: passes over them (may be fractional)
    scores: dict[str, float] = field(default_factory=dict)  # final probe scores

    def to_dict(self) -> dict[str, Any]:
        """result.json's object: every column, the optional fields that are set, the scores."""
        out = {name: getattr(self, name) for name in RUNS_CSV_COLUMNS}
        out.update(
            {
                f.name: getattr(self, f.name)
                for f in fields(self)
                if f.name not in out and f.name != "scores" and getattr(self, f.name) is not None
            }
        )
        return {**out, **self.scores}


# runs.csv columns, in order: RunResult's fields without a default
RUNS_CSV_COLUMNS = [
    f.name for f in fields(RunResult) if f.default is MISSING and f.default_factory is MISSING
]


@dataclass
class MetricsRow:
    """One line of metrics.jsonl: the evaluation after `step` optimiser steps (plus the probe
    scores at that point, flattened into the line)."""

    step: int
    tokens: int
    flops: float  # 6 * N * tokens
    loss_train: float  # mean train loss since the previous evaluation
    loss_val: float
    lr: float
    wall_s: float

    def to_dict(self, scores: dict[str, float]) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, **scores}


METRIC_KEYS = tuple(f.name for f in fields(MetricsRow))  # a metrics line's keys but the scores


# ---------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """JSON-ready: NaN and inf become null (a diverged run has no finite loss), numpy scalars
    Python numbers, tuples lists, keys strings."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=True) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Rewrite a whole JSON-lines file atomically (metrics files are a few dozen lines)."""
    atomic_write_text(path, "".join(json.dumps(json_safe(r), sort_keys=True) + "\n" for r in rows))


# ---------------------------------------------------------------- layout and ids


def sweep_dir(runs_dir: str | os.PathLike, sweep: str) -> Path:
    return Path(runs_dir) / sweep


def run_dir(runs_dir: str | os.PathLike, sweep: str, run_id: str) -> Path:
    return sweep_dir(runs_dir, sweep) / run_id


def make_run_id(readable: str, identity: dict) -> str:
    """`<readable>-<hash8>`: readable for people, the hash of everything that changes the result.

    `identity` holds the settings that define the experiment (data, model, optimisation, seed,
    tokens), not how it is executed (device, threads, checkpointing), so a rerun finds the run.
    """
    blob = json.dumps(json_safe(identity), sort_keys=True, separators=(",", ":"), default=str)
    return f"{readable}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def is_finished(path: str | os.PathLike) -> bool:
    return (Path(path) / RESULT).is_file()


def read_result(path: str | os.PathLike) -> dict:
    with open(Path(path) / RESULT, encoding="utf-8") as f:
        return json.load(f)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """A run's metrics.jsonl as a list of dicts. A last line cut by a crash (the run was killed
    while writing it) is dropped with a warning; a bad line before the last raises DataError."""
    file = Path(path) / METRICS
    if not file.is_file():
        return []
    lines = file.read_text(encoding="utf-8").splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise DataError(
                    f"{file}: line {i + 1} is not valid JSON; fix or delete that line"
                ) from None
            warnings.warn(
                f"{file}: last line is truncated (the run was cut while writing it); ignored it",
                RuntimeWarning,
                stacklevel=2,
            )
    return rows


def unfinished_run_dirs(sweep_path: str | os.PathLike) -> list[Path]:
    """Run folders of a sweep without result.json: interrupted, failed or still training."""
    return [p for p in iter_run_dirs(sweep_path) if not is_finished(p)]


def iter_run_dirs(sweep_path: str | os.PathLike) -> Iterator[Path]:
    """Run folders of a sweep, sorted by name (hidden folders such as `.hydra` excluded)."""
    root = Path(sweep_path)
    if root.is_dir():
        yield from sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_results(sweep_path: str | os.PathLike) -> list[dict]:
    """The result.json of every finished run of a sweep, sorted by run_id."""
    return [read_result(p) for p in iter_run_dirs(sweep_path) if is_finished(p)]


# ---------------------------------------------------------------- claims and locks


class FileLock:
    """An exclusive, non-blocking (or blocking) lock on a file, held until `release()`.

    Uses `flock`, which the kernel drops when the holder exits or is killed (SIGKILL, a crashed
    node's NFS lease expiring), so an interrupted run never leaves a stale claim: the staleness
    rule is the kernel's, not a timeout. The file holds `pid@host` for people reading it. After
    locking we check the file we hold is still the one at `path` (another holder may have
    unlinked it on release); if not we retry.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; False if `blocking` is False and another process holds it. A folder that
        cannot be written or a filesystem without locks raises ConfigError."""
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise ConfigError(
                    f"cannot write to {self.path.parent} ({err.strerror}); "
                    "choose a writable folder (runs_dir=PATH) or fix its permissions"
                ) from None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    return False
                except OSError as err:  # ENOLCK: e.g. Lustre mounted without flock
                    os.close(fd)
                    raise ConfigError(
                        f"{self.path.parent}: the filesystem refuses file locks ({err.strerror}); "
                        "put runs_dir on a filesystem with flock (local disk, NFSv4, "
                        "Lustre mounted with -o flock)"
                    ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode())
                return True
            os.close(fd)  # the file was replaced under us; lock the new one

    def release(self, unlink: bool = False) -> None:
        if self._fd is None:
            return
        if unlink:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire(blocking=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim(path: str | os.PathLike) -> FileLock | None:
    """Claim a run folder for training: a held lock, or None if another process is training it."""
    lock = FileLock(Path(path) / LOCK)
    return lock if lock.acquire(blocking=False) else None


# ---------------------------------------------------------------- runs.csv


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return value


def runs_table_text(results: list[dict]) -> str:
    """runs.csv text: contract columns first, then any extra result keys in sorted order."""
    extra = sorted(
        {
            k
            for r in results
            for k in r
            if k not in RUNS_CSV_COLUMNS and not isinstance(r[k], (dict, list))
        }
    )
    columns = RUNS_CSV_COLUMNS + extra
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({c: _csv_value(r.get(c)) for c in columns})
    return buf.getvalue()


def rebuild_runs_csv(sweep_path: str | os.PathLike) -> Path:
    """Rebuild `<sweep>/runs.csv` from every result.json, under the sweep's lock, atomically."""
    sweep_path = Path(sweep_path)
    with FileLock(sweep_path / ".runs.csv.lock"):
        text = runs_table_text(load_results(sweep_path))
        atomic_write_text(sweep_path / RUNS_CSV, text)
    return sweep_path / RUNS_CSV


def read_runs_csv(path: str | os.PathLike) -> list[dict]:
    """runs.csv as a list of dicts of strings (use `scaling.analysis.tables` for a typed frame)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def format_table(results: list[dict]) -> str:
    """A short fixed-width table of finished runs for the terminal, sorted by N then D."""
    rows = sorted(results, key=lambda r: (r.get("N") or 0, r.get("D") or 0, r.get("run_id", "")))
    head = (
        f"{'run_id':<34} {'N':>9} {'D':>9} {'C':>9} {'loss':>7} {'floor':>7} {'status':>8} "
        f"{'wall_s':>7}"
    )
    lines = [head]
    for r in rows:
        loss, floor = r.get("loss"), r.get("entropy_floor")
        lines.append(
            f"{r.get('run_id', ''):<34} {r.get('N', 0):>9,} {r.get('D', 0):>9.3g} "
            f"{r.get('C', 0):>9.3g} {'nan' if loss is None else f'{loss:.4f}':>7} "
            f"{'-' if floor is None else f'{floor:.4f}':>7} {r.get('status', ''):>8} "
            f"{r.get('wall_s', 0):>7.1f}"
        )
    return "\n".join(lines)

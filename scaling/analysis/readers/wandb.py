"""W&B run history exported as CSV (the run page's export, or `run.history().to_csv()`):
one column per logged key plus W&B's own `_step`, `_runtime`, `_timestamp`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.analysis.readers.csvfile import read_csv
from scaling.errors import DataError

MARKERS = ("_step", "_runtime", "_timestamp")
# the trainer's step when the integration logs it (W&B's _step counts log calls)
STEP_KEYS = ("train/global_step", "trainer/global_step", "global_step", "_step")


def history_files(folder: Path) -> list[Path]:
    return [q for q in sorted(folder.glob("*.csv")) if is_log(q)]


def is_log(path: Path) -> bool:
    if path.is_dir():
        return len(history_files(path)) == 1
    if path.suffix.lower() != ".csv":
        return False
    try:
        with open(path) as fh:
            head = fh.readline()
    except OSError:
        return False
    return any(m in [c.strip().strip('"') for c in head.split(",")] for m in MARKERS)


def read(path: Path) -> pd.DataFrame:
    """The export as it is, with `step` = the trainer's step where logged, else W&B's `_step`."""
    path = history_files(path)[0] if path.is_dir() else path
    frame = read_csv(path, "a W&B history CSV")
    step = next((k for k in STEP_KEYS if k in frame), None)
    if step is None:
        raise DataError(f"{path}: a W&B history CSV needs a step column ({', '.join(STEP_KEYS)})")
    return frame.assign(step=pd.to_numeric(frame[step], errors="coerce"))

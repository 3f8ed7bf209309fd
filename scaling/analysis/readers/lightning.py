"""Lightning CSVLogger folders: `metrics.csv` (one row per log call, empty cells elsewhere) with
the run's `hparams.yaml` beside it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.analysis.readers.csvfile import read_csv
from scaling.errors import DataError

METRICS = "metrics.csv"


def is_log(path: Path) -> bool:
    if path.is_dir():
        return (path / METRICS).is_file()
    return path.name == METRICS


def read(path: Path) -> pd.DataFrame:
    path = path / METRICS if path.is_dir() else path
    frame = read_csv(path, "a Lightning metrics.csv")
    if "step" not in frame:
        raise DataError(
            f"{path}: a Lightning metrics.csv has a 'step' column; this one has "
            f"{', '.join(map(str, frame.columns))}"
        )
    return frame

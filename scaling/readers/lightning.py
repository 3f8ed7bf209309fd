"""Lightning CSVLogger folders: `metrics.csv` (one row per log call, empty cells elsewhere) with
the run's `hparams.yaml` beside it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.errors import DataError

METRICS = "metrics.csv"


def is_log(path: Path) -> bool:
    if path.is_dir():
        return (path / METRICS).is_file()
    return path.name == METRICS


def read(path: Path) -> pd.DataFrame:
    path = path / METRICS if path.is_dir() else path
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(
            f"{path}: cannot read it as a Lightning metrics.csv ({str(err).splitlines()[0]})"
        ) from None
    if "step" not in frame:
        raise DataError(
            f"{path}: a Lightning metrics.csv has a 'step' column; this one has "
            f"{', '.join(map(str, frame.columns))}"
        )
    return frame

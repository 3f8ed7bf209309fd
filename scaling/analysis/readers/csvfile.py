"""Read a CSV log into a frame, or say in one line which log could not be read and why."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.errors import DataError


def read_csv(path: Path, kind: str) -> pd.DataFrame:
    """The CSV at `path`, written by `kind` (e.g. "a Lightning metrics.csv"); DataError if not."""
    try:
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot read it as {kind} ({str(err).splitlines()[0]})") from None

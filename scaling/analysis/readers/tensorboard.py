"""TensorBoard event directories, read through tensorboard's own EventAccumulator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scaling.errors import DataError

PATTERN = "events.out.tfevents.*"


def is_log(path: Path) -> bool:
    if path.is_dir():
        return any(path.glob(PATTERN))
    return path.name.startswith("events.out.tfevents.")


def read(path: Path) -> pd.DataFrame:
    """Every scalar tag as a column, one row per step (the last value logged at that step)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise DataError(
            f"{path}: reading TensorBoard logs needs the tensorboard package; "
            "pip install 'scaling[logs]'"
        ) from None
    folder = path if path.is_dir() else path.parent
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    try:
        acc.Reload()
    except Exception as err:  # a corrupt record raises from deep inside the reader
        raise DataError(
            f"{folder}: cannot read its TensorBoard event files ({type(err).__name__}: "
            f"{err}); are they complete?"
        ) from None
    tags = acc.Tags().get("scalars", [])
    if not tags:
        raise DataError(
            f"{folder}: its TensorBoard event files hold no scalars; log the loss with add_scalar"
        )
    cols = {
        tag: pd.Series({e.step: e.value for e in acc.Scalars(tag)}, dtype=float) for tag in tags
    }
    frame = pd.DataFrame(cols).sort_index()
    return frame.rename_axis("step").reset_index()

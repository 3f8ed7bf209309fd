"""Hugging Face Trainer logs: `trainer_state.json` (its `log_history`), alone or in an
output folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from scaling.errors import DataError

STATE = "trainer_state.json"


def state_file(folder: Path) -> Path | None:
    """The folder's own trainer_state.json, else the one of its latest `checkpoint-<step>/`."""
    if (folder / STATE).is_file():
        return folder / STATE
    ckpts = [
        (int(m.group(1)), q)
        for q in folder.glob(f"checkpoint-*/{STATE}")
        if (m := re.fullmatch(r"checkpoint-(\d+)", q.parent.name))
    ]
    return max(ckpts)[1] if ckpts else None


def is_log(path: Path) -> bool:
    if path.is_dir():
        return state_file(path) is not None
    if path.name == STATE:
        return True
    if path.suffix != ".json":
        return False
    try:
        with open(path) as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return '"log_history"' in head


def read(path: Path) -> pd.DataFrame:
    """One row per `log_history` entry (training logs, evaluations, the final summary), by step."""
    if path.is_dir():
        found = state_file(path)
        if found is None:
            raise DataError(f"{path}: no {STATE} in the folder or its checkpoint-<step>/ folders")
        path = found
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(
            f"{path}: not a readable trainer_state.json ({err}); pass the file the "
            "Trainer wrote (output_dir/trainer_state.json)"
        ) from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise DataError(f"{path}: no 'log_history' list of entries; is this a Trainer state file?")
    frame = pd.DataFrame(history)
    if "step" not in frame:
        raise DataError(
            f"{path}: log_history entries have no 'step'; is this a Trainer state file?"
        )
    return frame

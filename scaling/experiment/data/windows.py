"""Training rows of a finite corpus: windows of ctx + 1 tokens at random starts."""

from __future__ import annotations

import numpy as np
import torch


def random_windows(tokens: np.ndarray, ctx: int, batch_size: int, key: list[int]) -> torch.Tensor:
    """`batch_size` windows of ctx + 1 tokens of `tokens` (an array or memmap) starting at uniform
    random offsets drawn from `key` (source, seed, step), as int64 rows of one training batch."""
    starts = np.random.default_rng(key).integers(0, len(tokens) - ctx, size=batch_size)
    return torch.from_numpy(
        np.asarray(tokens[starts[:, None] + np.arange(ctx + 1)], dtype=np.int64)
    )


class FiniteCorpus:
    """A token source over a finite corpus: training rows are windows at random starts (keyed by
    TRAIN_KEY, seed and step), validation rows are fixed; subclasses set `_train`, `_val`, `ctx`."""

    TRAIN_KEY: int
    ctx: int
    _train: np.ndarray
    _val: np.ndarray

    @property
    def train_tokens(self) -> int:
        """Unique training tokens: a run of D tokens sees the corpus D / train_tokens times."""
        return len(self._train)

    def train_batch(self, step: int, batch_size: int, seed: int) -> torch.Tensor:
        return random_windows(self._train, self.ctx, batch_size, [self.TRAIN_KEY, seed, step])

    def val_batch(self) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self._val, dtype=np.int64))

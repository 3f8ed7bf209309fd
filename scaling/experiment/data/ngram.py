"""A count-based byte n-gram predictor (Witten-Bell interpolation), a cheap reference learner.

Used to show that a source keeps rewarding capacity (n-gram order) and data (tokens) without
training a network: benchmarks/data_bench.py and tests/test_data_synthetic.py.
"""

from __future__ import annotations

import numpy as np


def _codes(sym: np.ndarray, k: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """For each position t >= k of each row: (code of the k symbols before t, symbol at t)."""
    code = np.ones(
        (sym.shape[0], sym.shape[1] - k), dtype=np.int64
    )  # leading 1 keeps lengths apart
    for j in range(k):
        code = (code << bits) | sym[:, j : sym.shape[1] - k + j]
    return code.ravel(), sym[:, k:].ravel()


class NGram:
    """Interpolated Witten-Bell n-gram over bytes, trained on rows (contexts never cross rows)."""

    def __init__(self, rows: np.ndarray, order: int):
        rows = np.asarray(rows, dtype=np.int64)
        # bytes seen in training get compact symbol codes (unseen ones share the last code)
        seen = np.unique(rows)
        self.sym = np.full(256, len(seen), dtype=np.int64)
        self.sym[seen] = np.arange(len(seen))
        self.bits = int(len(seen)).bit_length()
        if not 1 <= order <= 62 // self.bits:
            raise ValueError(
                f"order must be in 1..{62 // self.bits} for {len(seen)} distinct bytes "
                "(int64 codes)"
            )
        self.order = order
        sym = self.sym[rows]
        # per context length k: (sorted pair keys, pair counts, sorted ctx, ctx totals, ctx types)
        self.tables = []
        for k in range(order):
            ctx, nxt = _codes(sym, k, self.bits)
            pairs, pair_n = np.unique((ctx << self.bits) | nxt, return_counts=True)
            ctxs, first = np.unique(pairs >> self.bits, return_index=True)
            types = np.diff(np.append(first, len(pairs)))
            totals = np.add.reduceat(pair_n, first)
            self.tables.append((pairs, pair_n, ctxs, totals, types))

    @staticmethod
    def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        i = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return np.where(keys[i] == query, values[i], 0)

    def log_probs(self, rows: np.ndarray, order: int | None = None) -> np.ndarray:
        """log p(x[t] | up to order-1 previous bytes of the row) for t >= 1: shape (B, L-1).

        `order` (<= the trained order) evaluates the smaller model nested inside this one.
        """
        sym = self.sym[np.asarray(rows, dtype=np.int64)]
        B, L = sym.shape
        p = np.full((B, L - 1), 1.0 / 256)  # column t-1 predicts x[t]; order "-1" is uniform
        for k, (pairs, pair_n, ctxs, totals, types) in enumerate(
            self.tables[: min(order or self.order, L)]
        ):
            ctx, nxt = _codes(sym, k, self.bits)  # predictions for t = k..L-1
            drop = 1 if k == 0 else 0  # x[0] is never predicted
            shape = (B, L - k)
            c_pair = self._lookup(pairs, pair_n, (ctx << self.bits) | nxt).reshape(shape)[:, drop:]
            c_tot = self._lookup(ctxs, totals, ctx).reshape(shape)[:, drop:]
            c_typ = self._lookup(ctxs, types, ctx).reshape(shape)[:, drop:]
            col = max(k - 1, 0)  # positions t < k keep their shorter-context estimate
            lower = p[:, col:]
            p[:, col:] = np.where(
                c_tot > 0, (c_pair + c_typ * lower) / np.maximum(c_tot + c_typ, 1), lower
            )
        return np.log(p)

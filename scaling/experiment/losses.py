"""The training objective of each architecture: rows of data in, model inputs, targets and the
positions that count out; the loss is nats per predicted token (docs/architectures.md).

    decoder          next-token prediction: read x[:, :ctx], predict x[:, 1:] (every position)
    encoder          masked-token prediction (BERT): n_masked of the ctx positions become <mask>;
                     only those are predicted
    encoder_decoder  span corruption (T5): n_noise tokens in n_spans spans are cut from the ctx
                     tokens, each span replaced by its sentinel; the decoder writes
                     "<s0> span0 <s1> span1 ..." (every target token predicted, sentinels included)

The random choices come from a torch.Generator seeded by (seed, step) for training and by a
fixed seed for validation, so a resumed run draws the same masks and every run of a sweep is
scored on the same corrupted validation rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scaling.experiment.models.shape import ModelShape

_TAG = 0x0B1EC7  # keeps the objective's random stream apart from the data's
_VAL = -1  # the "step" of the fixed validation draw

FLOOR_NOTES = {
    "encoder": (
        "not computed: the optimum is the true p(x_i | unmasked tokens), a sum over every filling "
        "of the row's other masked bytes; the synthetic language's hidden topic and document-wide "
        "copy cache couple all words, so that sum has no cheap exact form"
    ),
    "encoder_decoder": (
        "not computed: the optimum is the true p(spans | corrupted text), a sum over the unknown "
        "contents and lengths of all spans jointly; the synthetic language's hidden topic and "
        "document-wide copy cache couple all words, so that sum has no cheap exact form"
    ),
}
UNKNOWN_SOURCE = "the data's true distribution is unknown (real text)"


@dataclass(frozen=True)
class ObjectiveBatch:
    """What one forward pass needs and how it is scored."""

    inputs: dict[str, torch.Tensor]  # keyword arguments of Transformer.forward
    targets: torch.Tensor  # (B, T_out) ids the logits are scored against
    predict: torch.Tensor | None  # (B, T_out) bool: positions in the loss; None = every position

    def rows(self, i: int, j: int) -> ObjectiveBatch:
        """Rows i..j-1 (for evaluating in chunks)."""
        pred = None if self.predict is None else self.predict[i:j]
        return ObjectiveBatch({k: v[i:j] for k, v in self.inputs.items()}, self.targets[i:j], pred)

    @property
    def n_predicted(self) -> int:
        return self.targets.numel() if self.predict is None else int(self.predict.sum())


def generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of step `step` of a run seeded `seed` (a pure function of both)."""
    state = np.random.SeedSequence([_TAG, int(seed), int(step) + 1]).generate_state(
        1, dtype=np.uint64
    )[0]
    return torch.Generator(device="cpu").manual_seed(int(state))


def _segments(total: int, k: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """(batch, k) positive lengths summing to `total`, uniform over such compositions
    (k - 1 distinct cut points among the total - 1 gaps, as T5's random_segmentation)."""
    if k == 1:
        return torch.full((batch, 1), total, dtype=torch.long)
    cuts = (
        torch.rand(batch, total - 1, generator=gen).argsort(dim=1)[:, : k - 1].sort(dim=1).values
        + 1
    )
    edges = torch.cat(
        [torch.zeros(batch, 1, dtype=torch.long), cuts, torch.full((batch, 1), total)], dim=1
    )
    return edges.diff(dim=1)


def span_layout(
    shape: ModelShape, batch: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """T5's random_spans_noise_mask for `batch` rows of ctx tokens: (noise, span), both (batch,
    ctx); noise marks the n_noise corrupted positions, span numbers the clean/noise segment pair
    each position is in (clean segment i, then noise span i; the row starts clean)."""
    T, n, k = shape.ctx, shape.n_noise, shape.n_spans
    lengths = torch.stack(
        [_segments(T - n, k, batch, gen), _segments(n, k, batch, gen)], dim=2
    ).reshape(batch, 2 * k)
    seg = torch.searchsorted(
        lengths.cumsum(dim=1), torch.arange(T).expand(batch, T).contiguous(), right=True
    )
    return seg % 2 == 1, seg // 2


def make_batch(shape: ModelShape, rows: torch.Tensor, gen: torch.Generator) -> ObjectiveBatch:
    """The objective of `shape.arch` on rows (B, ctx + 1); masks drawn from `gen` on the CPU."""
    x = rows[:, :-1]
    if shape.arch == "decoder":
        return ObjectiveBatch({"idx": x}, rows[:, 1:], None)
    B, T = x.shape
    if T != shape.ctx:
        raise ValueError(
            f"arch={shape.arch} needs rows of ctx + 1 = {shape.ctx + 1} tokens, got {T + 1}"
        )
    V = (
        shape.vocab_size
    )  # special ids start here: <mask> = V; sentinels V..V+n_spans-1, start V+n_spans
    if shape.arch == "encoder":
        picked = torch.rand(B, T, generator=gen).argsort(dim=1)[:, : shape.n_masked]
        masked = torch.zeros(B, T, dtype=torch.bool).scatter_(1, picked, True).to(x.device)
        return ObjectiveBatch({"idx": x.masked_fill(masked, V)}, x, masked)
    noise, span = (t.to(x.device) for t in span_layout(shape, B, gen))
    first = torch.ones_like(noise)
    first[:, 1:] = noise[:, 1:] != noise[:, :-1]  # first position of every segment
    sentinel = V + span
    # encoder reads the clean tokens, each noise span collapsed into its sentinel
    src = torch.where(noise, sentinel, x)[~noise | first].view(B, shape.src_len)
    # decoder writes each span after its sentinel: the complement, clean segments collapsed
    tgt = torch.where(noise, x, sentinel)[noise | first].view(B, shape.tgt_len)
    start = torch.full((B, 1), V + shape.n_spans, dtype=tgt.dtype, device=tgt.device)
    return ObjectiveBatch({"idx": src, "tgt": torch.cat([start, tgt[:, :-1]], dim=1)}, tgt, None)


def loss_sum(
    model: Callable[..., torch.Tensor],
    batch: ObjectiveBatch,
    amp: Callable[[], Any] = contextlib.nullcontext,
) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy in nats over the predicted positions, their count)."""
    with amp():
        logits = model(**batch.inputs)
    logits = logits.float()
    if batch.predict is None:
        loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="sum")
    else:
        loss = F.cross_entropy(logits[batch.predict], batch.targets[batch.predict], reduction="sum")
    return loss, batch.n_predicted


def train_loss(
    model: Callable[..., torch.Tensor],
    shape: ModelShape,
    rows: torch.Tensor,
    seed: int,
    step: int,
    amp: Callable[[], Any] = contextlib.nullcontext,
) -> torch.Tensor:
    """Mean loss (nats per predicted token) of training step `step` on `rows`, for backward()."""
    total, count = loss_sum(model, make_batch(shape, rows, generator(seed, step)), amp)
    return total / count


@torch.no_grad()
def evaluate(
    model: Any,
    shape: ModelShape,
    rows: torch.Tensor,
    batch_size: int,
    amp: Callable[[], Any] = contextlib.nullcontext,
) -> float:
    """Mean loss (nats per predicted token) over the fixed validation rows; the masks are one
    fixed draw over all rows, so the score does not depend on batch_size."""
    batch = make_batch(shape, rows, generator(0, _VAL))
    model.eval()
    total, count = 0.0, 0
    for i in range(0, rows.size(0), batch_size):
        loss, n = loss_sum(model, batch.rows(i, i + batch_size), amp)
        total, count = total + loss.item(), count + n
    model.train()
    return total / count


def objective_floor(shape: ModelShape, source: Any) -> tuple[float | None, str | None]:
    """(E*, note): the lowest loss any model can reach on this objective and data, or None and
    why it is not known. The decoder's E* is the source's exact entropy floor."""
    if source.entropy_floor is None:
        return None, UNKNOWN_SOURCE
    if shape.arch == "decoder":
        return float(source.entropy_floor), None
    return None, FLOOR_NOTES[shape.arch]

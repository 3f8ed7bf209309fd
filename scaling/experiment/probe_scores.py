"""Score a model on the emergent-ability probes: pure evaluation of `logits_fn(idx) -> logits`.

`probe_scores(logits_fn, source)` is what the trainer calls at every evaluation point; its flat
keys go into each metrics.jsonl line and the final ones into result.json / runs.csv:

    {kind}_acc, {kind}_logp       synthetic probes (icl, reasoning, reasoningH per hop count H,
                                  knowledge): exact-match accuracy of the answers under greedy
                                  decoding, and the mean log-probability (nats) per answer token
    {kind}_chance                 the accuracy of a guesser that knows the answer format only
    icl_late_minus_early          any data: loss on late minus early positions of the validation
                                  rows (negative = the model uses its context)
    induction_loss, induction_acc any data: loss / top-1 accuracy on the second copy of a repeated
                                  random token sequence (Olsson et al. 2022)

Greedy exact match equals "every answer token is the argmax given the true prefix" (teacher
forcing), so one forward pass per row scores every query; ties go to the lowest byte, so a
uniform model scores 0 accuracy and exactly -log(256) per token.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from scaling.experiment.data.probes import KINDS, Answers

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
ICL_ROWS = 64  # validation rows used for the late-minus-early score
INDUCTION_ROWS = 32  # repeated random sequences


@torch.no_grad()
def token_scores(
    logits_fn: LogitsFn,
    rows: torch.Tensor,
    device: str | torch.device | None = None,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """For rows (B, T+1): log p(x[t]) and whether x[t] is the argmax, predicting x[:, 1:] from
    prefixes (each (B, T), float64 / bool numpy)."""
    logp, hit = [], []
    for i in range(0, len(rows), batch_size):
        chunk = (
            rows[i : i + batch_size].to(device) if device is not None else rows[i : i + batch_size]
        )
        logits = logits_fn(chunk[:, :-1]).float()
        lp = torch.log_softmax(logits, dim=-1)
        target = chunk[:, 1:, None]
        logp.append(lp.gather(-1, target)[..., 0].double().cpu())
        hit.append((logits.argmax(-1) == chunk[:, 1:]).cpu())
    return torch.cat(logp).numpy(), torch.cat(hit).numpy()


def answer_scores(
    logp: np.ndarray, hit: np.ndarray, answers: Answers
) -> tuple[float, float, dict[int, tuple[float, float]]]:
    """(accuracy, mean log p per answer token, {group: (accuracy, log p)}) over the kept queries."""
    if answers.cols.size == 0 or not answers.keep.any():
        return math.nan, math.nan, {}
    lp = logp[:, answers.cols]  # (B, n_queries, answer_len)
    ok = np.asarray(hit[:, answers.cols].all(-1))  # exact match: every answer token right
    keep = answers.keep
    by_group = {}
    for g in np.unique(answers.group[keep]):
        sel = keep & (answers.group == g)
        by_group[int(g)] = (float(ok[sel].mean()), float(lp[sel].mean()))
    return float(ok[keep].mean()), float(lp[keep].mean()), by_group


def icl_score(logp: np.ndarray) -> float:
    """Mean loss on the last eighth of the positions minus the mean loss on positions
    [T/16, T/8) (Olsson et al.'s late-minus-early in-context learning score; NaN if T < 16)."""
    T = logp.shape[1]
    if T < 16:
        return math.nan
    early = -logp[:, T // 16 : T // 8].mean()
    late = -logp[:, T - T // 8 :].mean()
    return float(late - early)


def induction_rows(val: torch.Tensor, n_rows: int = INDUCTION_ROWS, seed: int = 0) -> torch.Tensor:
    """(n_rows, T+1) rows [r, r, ...]: a random sequence r of (T+1)//2 tokens drawn uniformly from
    the bytes that occur in the validation rows, then its copy (the same rows for every run)."""
    alphabet = torch.unique(val)
    length = val.shape[1]
    half = (length + 1) // 2
    gen = torch.Generator().manual_seed(seed)
    r = alphabet[torch.randint(len(alphabet), (n_rows, half), generator=gen)]
    return torch.cat([r, r], 1)[:, :length]


def induction_score(logp: np.ndarray, hit: np.ndarray) -> tuple[float, float]:
    """(mean loss, top-1 accuracy) over the second copy, from its second token on (the first
    token of the copy cannot be predicted from the first copy)."""
    length = logp.shape[1] + 1
    half = (length + 1) // 2
    cols = (
        np.arange(half + 1, length) - 1
    )  # prediction columns of x[t], t in the copy after its start
    if len(cols) == 0:
        return math.nan, math.nan
    return float(-logp[:, cols].mean()), float(hit[:, cols].mean())


def probe_scores(
    logits_fn: LogitsFn, source, device: str | torch.device | None = None, batch_size: int = 64
) -> dict[str, float]:
    """Every probe score of the model `logits_fn` on `source` (flat keys, see the module doc).

    Synthetic probes only when the source has them on (data.synthetic.probes.fraction > 0);
    the late-minus-early and induction scores for any source. Costs about one validation pass
    (3 x eval_rows + 64 + 32 rows). `logits_fn` maps idx (B, T) to logits (B, T, vocab); call it
    with the model in eval mode (and under autocast if training uses it).
    """
    out: dict[str, float] = {}
    probes = getattr(source, "probes", None)
    if probes is not None:
        for kind in KINDS:
            rows, answers = source.probe_eval(kind)
            logp, hit = token_scores(logits_fn, rows, device, batch_size)
            acc, lp, groups = answer_scores(logp, hit, answers)
            out[f"{kind}_acc"], out[f"{kind}_logp"] = acc, lp
            out[f"{kind}_chance"] = probes.spec.chance(kind)
            if kind == "reasoning":
                for h in range(1, probes.spec.reasoning_steps + 1):
                    out[f"reasoning{h}_acc"], out[f"reasoning{h}_logp"] = groups.get(
                        h, (math.nan, math.nan)
                    )
                    out[f"reasoning{h}_chance"] = probes.spec.chance(kind)
    val = source.val_batch()
    logp, _ = token_scores(logits_fn, val[:ICL_ROWS], device, batch_size)
    out["icl_late_minus_early"] = icl_score(logp)
    logp, hit = token_scores(logits_fn, induction_rows(val), device, batch_size)
    out["induction_loss"], out["induction_acc"] = induction_score(logp, hit)
    return out

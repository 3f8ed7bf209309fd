"""Exact parameter counts and the three training-FLOP conventions of the scaling-law papers.

Pure Python: no torch import, so the fitting side can turn a shape into N and C. Each count
mirrors `scaling/models/transformer.py` term by term (no biases anywhere, LayerNorm has a
weight only, LM head tied to the token embedding); tests check both against the real module.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.models.shape import ModelShape


@dataclass(frozen=True)
class ParamCounts:
    """N = every parameter; N_nonembed = N minus the token and position embeddings (Kaplan).

    The LM head is tied to the token embedding, so it adds nothing to N and, like the
    embedding it shares, is excluded from N_nonembed (Kaplan drops the de-embedding too).
    """

    N: int
    N_nonembed: int


@dataclass(frozen=True)
class FlopCounts:
    """Training FLOPs for D tokens under three conventions (forward + backward)."""

    C_6ND: float  # 6 * N * D, N total parameters (the runs.csv `C`)
    C_kaplan: float  # Kaplan 2020 Table 1: 3 * (2 N_nonembed + 2 n_layer n_ctx d_attn) * D
    C_chinchilla: float  # Hoffmann 2022 Appendix F: every matmul + softmax, backward = 2x forward


def param_counts(shape: ModelShape) -> ParamCounts:
    """Exact parameter counts of `Transformer(shape)`, equal to sum(p.numel())."""
    d, f, L = shape.d_model, shape.d_ff, shape.n_layers
    per_layer = (
        d  # ln_1 weight
        + d * 3 * d  # attention: fused query/key/value projection
        + d * d  # attention: output projection
        + d  # ln_2 weight
        + d * f  # MLP up-projection
        + f * d  # MLP down-projection
    )
    embeddings = shape.vocab_size * d + shape.ctx * d  # token (shared with the LM head) + position
    n_nonembed = L * per_layer + d  # + ln_f weight
    return ParamCounts(N=n_nonembed + embeddings, N_nonembed=n_nonembed)


def forward_flops_per_token(shape: ModelShape, seq_len: int | None = None) -> int:
    """Matmul FLOPs of one forward pass per token (2 per multiply-add), as
    torch.utils.flop_counter counts them. Attention scores are counted over the full
    seq_len x seq_len square (causal masking saves no FLOPs in the kernels). Embedding
    lookups, LayerNorm, GELU, softmax and residual adds are not matmuls and are left out."""
    T = shape.ctx if seq_len is None else seq_len
    d, f = shape.d_model, shape.d_ff
    per_layer = (
        2 * d * 3 * d  # query/key/value projection
        + 2 * T * d  # scores q @ k^T: each query against T keys, summed over all heads
        + 2 * T * d  # weighted sum of values att @ v
        + 2 * d * d  # attention output projection
        + 2 * d * f  # MLP up-projection
        + 2 * f * d  # MLP down-projection
    )
    return shape.n_layers * per_layer + 2 * d * shape.vocab_size  # + LM head (logits)


def kaplan_forward_flops_per_token(shape: ModelShape) -> int:
    """Kaplan et al. 2020 Table 1: C_forward = 2 N + 2 n_layer n_ctx d_attn, N non-embedding
    (we use the exact N_nonembed; Kaplan's 12 n_layer d_model^2 drops LayerNorm weights)."""
    return 2 * param_counts(shape).N_nonembed + 2 * shape.n_layers * shape.ctx * shape.d_model


def chinchilla_forward_flops_per_token(shape: ModelShape) -> float:
    """Hoffmann et al. 2022 Appendix F, forward FLOPs of one ctx-long sequence divided by ctx.
    Key size x heads = d_model here."""
    T, d, f, V, H = shape.ctx, shape.d_model, shape.d_ff, shape.vocab_size, shape.n_heads
    embeddings = 2 * T * V * d  # counted as a one-hot matmul (we do a lookup: 0 matmul FLOPs)
    attention = (
        2 * 3 * T * d * d  # key, query and value projections
        + 2 * T * T * d  # key @ query logits
        + 3 * H * T * T  # softmax (exp, sum, divide)
        + 2 * T * T * d  # softmax @ value reductions
        + 2 * T * d * d  # final linear
    )
    dense = 2 * T * (d * f + d * f)  # MLP up and down projections
    logits = 2 * T * d * V  # final logits
    return (embeddings + shape.n_layers * (attention + dense) + logits) / T


def training_flops(shape: ModelShape, tokens: float) -> FlopCounts:
    """Training FLOPs for `tokens` tokens in ctx-long rows; every convention counts the
    backward pass as twice the forward (training = 3 x forward)."""
    n = param_counts(shape).N
    return FlopCounts(
        C_6ND=float(6 * n * tokens),
        C_kaplan=float(3 * kaplan_forward_flops_per_token(shape) * tokens),
        C_chinchilla=float(3 * chinchilla_forward_flops_per_token(shape) * tokens),
    )

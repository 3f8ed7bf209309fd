"""Exact parameter counts and the three training-FLOP conventions of the scaling-law papers.

Pure Python: no torch import, so the fitting side can turn a shape into N and C. Each count
mirrors `scaling/experiment/models/transformer.py` term by term (no biases anywhere, LayerNorm has a
weight only, LM head tied to the token embedding); tests check both against the real module.

FLOPs are per training row, then per data token: every architecture reads rows of `ctx` data
tokens (D counts those), but the encoder-decoder runs its encoder over `src_len` positions
(corrupted text with sentinels) and its decoder over `tgt_len` positions (sentinels and spans).
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.experiment.models.shape import ModelShape
from scaling.flops import FLOPS_PER_PARAM_TOKEN


@dataclass(frozen=True)
class ParamCounts:
    """N = every parameter; N_nonembed = N minus the token and position embeddings (Kaplan).

    The LM head is tied to the token embedding, so it adds nothing to N and, like the
    embedding it shares, is excluded from N_nonembed (Kaplan drops the de-embedding too).
    The special tokens (<mask>, sentinels, decoder start) are embedding rows: in N, not
    in N_nonembed.
    """

    N: int
    N_nonembed: int


@dataclass(frozen=True)
class FlopCounts:
    """Training FLOPs for D tokens under three conventions (forward + backward)."""

    C_6ND: float  # 6 * N * D, N total parameters (the runs.csv `C`)
    C_kaplan: float  # Kaplan 2020 Table 1: 3 * (2 N_nonembed + 2 n_layer n_ctx d_attn) * D
    C_chinchilla: float  # Hoffmann 2022 Appendix F: every matmul + softmax, backward = 2x forward


def _block_params(shape: ModelShape) -> int:
    """One `Block`: self-attention, MLP and two LayerNorms."""
    d, f = shape.d_model, shape.d_ff
    assert f is not None  # ModelShape fills d_ff in on construction
    return (
        d  # ln_1 weight
        + d * 3 * d  # attention: fused query/key/value projection
        + d * d  # attention: output projection
        + d  # ln_2 weight
        + d * f  # MLP up-projection
        + f * d  # MLP down-projection
    )


def _cross_params(shape: ModelShape) -> int:
    """What a `DecoderBlock` adds to a `Block`: cross-attention and its LayerNorm."""
    d = shape.d_model
    return (
        d  # ln of the cross-attention input (the decoder block's ln_2; its MLP LayerNorm is ln_3)
        + d * d  # cross-attention query projection (reads the decoder)
        + d * 2 * d  # cross-attention key/value projection (reads the encoder output)
        + d * d  # cross-attention output projection
    )


def param_counts(shape: ModelShape) -> ParamCounts:
    """Exact parameter counts of `Transformer(shape)`, equal to sum(p.numel())."""
    d, L = shape.d_model, shape.n_layers
    embeddings = (
        shape.n_vocab * d + shape.ctx * d
    )  # token (+ specials; shared with the LM head) + position
    n_nonembed = L * _block_params(shape) + d  # the (first) stack + ln_f weight
    if shape.arch == "encoder_decoder":
        n_nonembed += d  # encoder's final LayerNorm (ln_enc)
        n_nonembed += L * (_block_params(shape) + _cross_params(shape))  # the decoder stack
    return ParamCounts(N=n_nonembed + embeddings, N_nonembed=n_nonembed)


def _stack_flops(shape: ModelShape, T: int) -> int:
    """Matmul FLOPs of one `Block` stack over a length-T sequence, per sequence."""
    d, f = shape.d_model, shape.d_ff
    assert f is not None  # ModelShape fills d_ff in on construction
    per_token = (
        2 * d * 3 * d  # query/key/value projection
        + 2 * T * d  # scores q @ k^T: each query against T keys, summed over all heads
        + 2 * T * d  # weighted sum of values att @ v
        + 2 * d * d  # attention output projection
        + 2 * d * f  # MLP up-projection
        + 2 * f * d  # MLP down-projection
    )
    return shape.n_layers * per_token * T


def _cross_flops(shape: ModelShape, T: int, S: int) -> int:
    """Matmul FLOPs of the decoder stack's cross-attentions (T decoder, S encoder positions)."""
    d = shape.d_model
    per_layer = (
        2 * d * d * T  # query projection of every decoder position
        + 2 * d * 2 * d * S  # key/value projection of every encoder position
        + 2 * S * d * T  # scores: each decoder query against S encoder keys
        + 2 * S * d * T  # weighted sum of the encoder values
        + 2 * d * d * T  # output projection
    )
    return shape.n_layers * per_layer


def forward_flops_per_row(shape: ModelShape) -> int:
    """Matmul FLOPs of one forward pass over one training row (2 per multiply-add), as
    torch.utils.flop_counter counts them. Attention scores are counted over the full square
    (causal masking saves no FLOPs in the kernels). Embedding lookups, LayerNorm, GELU,
    softmax and residual adds are not matmuls and are left out. The head runs at every
    position of the decoder-only / encoder stack (the encoder's loss uses the masked ones)."""
    head = 2 * shape.d_model * shape.n_vocab  # tied LM head (logits), per position it runs at
    if shape.arch != "encoder_decoder":
        return _stack_flops(shape, shape.ctx) + head * shape.ctx
    S, T = shape.src_len, shape.tgt_len
    return (
        _stack_flops(shape, S)  # encoder over the corrupted text
        + _stack_flops(shape, T)
        + _cross_flops(shape, T, S)  # decoder: self-attention stack + cross
        + head * T
    )  # logits at the decoder positions only


def forward_flops_per_token(shape: ModelShape, seq_len: int | None = None) -> float:
    """Forward matmul FLOPs per data token: `forward_flops_per_row / ctx`. For the single-stack
    archs `seq_len` (default ctx) sets the sequence length the count is for (an int then)."""
    if seq_len is None:
        row = forward_flops_per_row(shape)
        return row // shape.ctx if row % shape.ctx == 0 else row / shape.ctx
    if shape.arch == "encoder_decoder":
        raise ValueError(
            "seq_len applies to the single-stack archs; "
            "the encoder-decoder's lengths follow its shape"
        )
    return _stack_flops(shape, seq_len) // seq_len + 2 * shape.d_model * shape.n_vocab


def kaplan_forward_flops_per_token(shape: ModelShape) -> float:
    """Kaplan et al. 2020 Table 1: C_forward = 2 N + 2 n_layer n_ctx d_attn, N non-embedding
    (we use the exact N_nonembed; Kaplan's 12 n_layer d_model^2 drops LayerNorm weights).
    For the encoder-decoder, the same rule per stack and per position a weight is applied at
    (2 FLOPs per weight per position, 2 n_ctx d per layer per query with n_ctx the keys it sees),
    summed over one row and divided by ctx."""
    d, L = shape.d_model, shape.n_layers
    if shape.arch != "encoder_decoder":
        return 2 * param_counts(shape).N_nonembed + 2 * L * shape.ctx * d
    S, T = shape.src_len, shape.tgt_len
    enc = L * _block_params(shape) + d  # encoder blocks + ln_enc, applied at S positions
    kv = L * 2 * d * d  # cross-attention key/value weights, applied at the S encoder positions
    dec = (
        L * (_block_params(shape) + _cross_params(shape)) + d - kv
    )  # the rest of the decoder (+ ln_f), at T
    row = 2 * (enc * S + kv * S + dec * T) + 2 * L * d * (S * S + T * T + T * S)
    return row / shape.ctx


def chinchilla_forward_flops_per_token(shape: ModelShape) -> float:
    """Hoffmann et al. 2022 Appendix F, forward FLOPs of one row divided by ctx. Key size x
    heads = d_model here. The encoder-decoder adds the same terms for its second stack and,
    for cross-attention, queries/output at T, keys/values at S and a T x S score matrix."""
    d, f, V, H, L = shape.d_model, shape.d_ff, shape.n_vocab, shape.n_heads, shape.n_layers
    assert f is not None  # ModelShape fills d_ff in on construction

    def attention(
        T: int, S: int, kv_rows: int
    ) -> int:  # T queries against S keys computed from kv_rows
        return (
            2 * T * d * d
            + 2 * 2 * kv_rows * d * d  # query; key and value projections
            + 2 * T * S * d  # key @ query logits
            + 3 * H * T * S  # softmax (exp, sum, divide)
            + 2 * T * S * d  # softmax @ value reductions
            + 2 * T * d * d  # final linear
        )

    def dense(T: int) -> int:
        return 2 * T * (d * f + d * f)  # MLP up and down projections

    if shape.arch != "encoder_decoder":
        T = shape.ctx
        embeddings = 2 * T * V * d  # counted as a one-hot matmul (we do a lookup: 0 matmul FLOPs)
        logits = 2 * T * d * V  # final logits
        return (embeddings + L * (attention(T, T, T) + dense(T)) + logits) / T
    S, T = shape.src_len, shape.tgt_len
    embeddings = 2 * (S + T) * V * d  # both stacks embed their input
    encoder = L * (attention(S, S, S) + dense(S))
    decoder = L * (attention(T, T, T) + attention(T, S, S) + dense(T))
    logits = 2 * T * d * V
    return (embeddings + encoder + decoder + logits) / shape.ctx


def training_flops(shape: ModelShape, tokens: float) -> FlopCounts:
    """Training FLOPs for `tokens` data tokens in ctx-long rows; every convention counts the
    backward pass as twice the forward (training = 3 x forward)."""
    n = param_counts(shape).N
    return FlopCounts(
        C_6ND=float(FLOPS_PER_PARAM_TOKEN * n * tokens),
        C_kaplan=float(3 * kaplan_forward_flops_per_token(shape) * tokens),
        C_chinchilla=float(3 * chinchilla_forward_flops_per_token(shape) * tokens),
    )

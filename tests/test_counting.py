"""Counting: N equals the module's parameters, the matmul FLOP count equals what torch's
FlopCounterMode measures on a real forward + backward, and the Kaplan and Chinchilla
conventions differ from that measurement by exactly the terms each paper adds or drops."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from scaling.experiment.losses import generator, loss_sum, make_batch
from scaling.experiment.models import (
    ModelShape,
    Transformer,
    forward_flops_per_row,
    forward_flops_per_token,
    param_counts,
    training_flops,
)

SHAPES = [
    ModelShape(d_model=16, n_layers=1, n_heads=1, ctx=16),
    ModelShape(d_model=32, n_layers=2, n_heads=2, ctx=16),
    ModelShape(d_model=24, n_layers=3, n_heads=4, ctx=16, d_ff=40, vocab_size=100),
]
# the other two architectures on the same knobs (ctx 32: 5 noise tokens in 2 spans for enc-dec)
ARCH_SHAPES = [
    ModelShape(d_model=16, n_layers=1, n_heads=1, ctx=32, arch="encoder"),
    ModelShape(d_model=24, n_layers=3, n_heads=4, ctx=32, d_ff=40, vocab_size=100, arch="encoder"),
    ModelShape(d_model=16, n_layers=1, n_heads=1, ctx=32, arch="encoder_decoder"),
    ModelShape(
        d_model=24,
        n_layers=3,
        n_heads=4,
        ctx=32,
        d_ff=40,
        vocab_size=100,
        arch="encoder_decoder",
        noise_density=0.3,
        mean_span=2.0,
    ),
]


@pytest.mark.parametrize("shape", SHAPES + ARCH_SHAPES, ids=str)
def test_param_counts_equal_the_module(shape):
    model = Transformer(shape)
    counts = param_counts(shape)
    assert counts.N == sum(p.numel() for p in model.parameters())
    assert (
        model.wte.weight.shape[0] == shape.vocab_size + shape.n_special
    )  # special tokens are counted rows
    # Kaplan: drop the token embedding (also the tied LM head) and the position embedding
    embeddings = {"wte.weight", "wpe.weight"}
    assert counts.N_nonembed == sum(
        p.numel() for n, p in model.named_parameters() if n not in embeddings
    )


def measured_training_flops(shape: ModelShape, batch: int, seq_len: int) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs FlopCounterMode sees for one batch."""
    model = Transformer(shape, seed=0)
    x = torch.randint(
        0, shape.vocab_size, (batch, seq_len + 1), generator=torch.Generator().manual_seed(0)
    )
    with FlopCounterMode(display=False) as counter:
        logits = model(x[:, :-1])
        forward = counter.get_total_flops()
        F.cross_entropy(logits.reshape(-1, shape.vocab_size), x[:, 1:].reshape(-1)).backward()
    return forward, counter.get_total_flops()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("seq_len", [16, 8])
def test_matmul_flops_equal_flop_counter(shape, seq_len):
    # FlopCounterMode counts matmuls only (mm, addmm, bmm, ...): it does not see the embedding
    # lookups, LayerNorm, GELU, the softmax, the causal mask, residual adds or the loss, which
    # is exactly what forward_flops_per_token leaves out. It also does not count torch's CPU
    # fused attention kernel at all, so this check runs the explicit "matmul" attention path.
    # Backward = 2 x forward holds exactly: every matmul needs the gradient of both operands
    # (the embeddings are trained, so even the first layer propagates to its input).
    shape = ModelShape(**{**shape.__dict__, "attention": "matmul"})
    batch = 2
    forward, total = measured_training_flops(shape, batch, seq_len)
    assert forward == forward_flops_per_token(shape, seq_len) * batch * seq_len
    assert total == 3 * forward


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kaplan_and_chinchilla_differ_from_the_measurement_by_their_documented_terms(shape):
    shape = ModelShape(**{**shape.__dict__, "attention": "matmul"})
    batch, T = 2, shape.ctx
    tokens = batch * T
    _, measured = measured_training_flops(shape, batch, T)
    d, L, V, H = shape.d_model, shape.n_layers, shape.vocab_size, shape.n_heads
    flops = training_flops(shape, tokens)
    # Chinchilla adds what a matmul counter cannot see: the embedding as a one-hot matmul
    # (2 V d per token) and the softmax (3 flops per score, per head: 3 H T per token per layer)
    assert flops.C_chinchilla == pytest.approx(
        measured + 3 * tokens * (2 * V * d + L * 3 * H * T), rel=1e-12
    )
    # Kaplan counts 2 FLOPs per non-embedding parameter, so LayerNorm weights ((2L+1) d) count
    # as if they were matmul weights; it keeps one of the two T x d attention products and
    # drops the de-embedding (LM head, 2 d V)
    assert flops.C_kaplan == pytest.approx(
        measured + 3 * tokens * (2 * (2 * L + 1) * d - 2 * L * T * d - 2 * d * V), rel=1e-12
    )
    assert flops.C_6ND == 6 * param_counts(shape).N * tokens


def test_counting_does_not_import_torch():
    code = (
        "import sys, scaling.experiment.models.counting, scaling.experiment.models; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def measured_row_flops(shape: ModelShape, batch: int) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs of the arch's real objective on `batch` rows."""
    model = Transformer(shape, seed=0)
    rows = torch.randint(
        0, shape.vocab_size, (batch, shape.ctx + 1), generator=torch.Generator().manual_seed(0)
    )
    objective = make_batch(shape, rows, generator(0, 0))
    with FlopCounterMode(display=False) as counter:
        loss, _ = loss_sum(model, objective)
        forward = counter.get_total_flops()
        loss.backward()
    return forward, counter.get_total_flops()


@pytest.mark.parametrize("shape", ARCH_SHAPES, ids=str)
def test_every_arch_matmul_flops_equal_flop_counter_and_conventions_add_their_terms(shape):
    # the encoder runs the head at all ctx positions; the encoder-decoder runs its encoder over
    # src_len positions, its decoder (self + cross-attention) and head over tgt_len positions
    shape = ModelShape(**{**shape.__dict__, "attention": "matmul"})
    batch = 2
    forward, total = measured_row_flops(shape, batch)
    assert forward == forward_flops_per_row(shape) * batch
    assert total == 3 * forward
    d, L, V, H = shape.d_model, shape.n_layers, shape.n_vocab, shape.n_heads
    tokens = batch * shape.ctx  # D counts data tokens: ctx per row for every arch
    flops = training_flops(shape, tokens)
    if shape.arch == "encoder":
        S, T, scores = shape.ctx, 0, shape.ctx**2
    else:
        S, T = shape.src_len, shape.tgt_len
        scores = (
            S * S + T * T + T * S
        )  # encoder self, decoder self and cross-attention score matrices
    embedded = S + T  # positions whose token is embedded (both stacks' inputs)
    # Chinchilla adds the one-hot embedding matmuls and 3 FLOPs per attention score per head
    assert flops.C_chinchilla == pytest.approx(
        total + 3 * batch * (2 * V * d * embedded + 3 * H * L * scores), rel=1e-12
    )
    # Kaplan: 2 FLOPs per non-embedding weight per position it is applied at, one of the two
    # attention products, no head. Matmul weights at their positions reproduce the count exactly
    # once the LayerNorm weights are added and the second attention product and head removed.
    if shape.arch == "encoder":
        ln = (2 * L + 1) * d * S
        head = 2 * d * V * S
    else:
        ln = (
            (2 * L + 1) * S + (3 * L + 1) * T
        ) * d  # encoder LNs + ln_enc at S; decoder LNs + ln_f at T
        head = 2 * d * V * T
    assert flops.C_kaplan == pytest.approx(
        total + 3 * batch * (2 * ln - 2 * L * d * scores - head), rel=1e-12
    )
    assert flops.C_6ND == 6 * param_counts(shape).N * tokens


def test_encoder_decoder_pays_for_two_stacks():
    # n_layers in each stack: N grows by the decoder blocks and their cross-attention, exactly
    kw = dict(d_model=32, n_layers=2, n_heads=2, ctx=32)
    dec, ed = param_counts(ModelShape(**kw)), param_counts(ModelShape(**kw, arch="encoder_decoder"))
    d, f, L = 32, 128, 2
    assert ed.N_nonembed - dec.N_nonembed == d + L * (
        8 * d * d + 2 * d * f + 3 * d
    )  # ln_enc + decoder blocks
    assert (
        ed.N - dec.N
        == ed.N_nonembed - dec.N_nonembed + (ModelShape(**kw, arch="encoder_decoder").n_special) * d
    )

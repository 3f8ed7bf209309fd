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

from scaling.models import ModelShape, Transformer, forward_flops_per_token, param_counts, training_flops

SHAPES = [
    ModelShape(d_model=16, n_layers=1, n_heads=1, ctx=16),
    ModelShape(d_model=32, n_layers=2, n_heads=2, ctx=16),
    ModelShape(d_model=24, n_layers=3, n_heads=4, ctx=16, d_ff=40, vocab_size=100),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_param_counts_equal_the_module(shape):
    model = Transformer(shape)
    counts = param_counts(shape)
    assert counts.N == sum(p.numel() for p in model.parameters())
    # Kaplan: drop the token embedding (also the tied LM head) and the position embedding
    embeddings = {"wte.weight", "wpe.weight"}
    assert counts.N_nonembed == sum(p.numel() for n, p in model.named_parameters() if n not in embeddings)


def measured_training_flops(shape: ModelShape, batch: int, seq_len: int) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs FlopCounterMode sees for one batch."""
    model = Transformer(shape, seed=0)
    x = torch.randint(0, shape.vocab_size, (batch, seq_len + 1), generator=torch.Generator().manual_seed(0))
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
    assert flops.C_chinchilla == pytest.approx(measured + 3 * tokens * (2 * V * d + L * 3 * H * T), rel=1e-12)
    # Kaplan counts 2 FLOPs per non-embedding parameter, so LayerNorm weights ((2L+1) d) count
    # as if they were matmul weights; it keeps one of the two T x d attention products and
    # drops the de-embedding (LM head, 2 d V)
    assert flops.C_kaplan == pytest.approx(
        measured + 3 * tokens * (2 * (2 * L + 1) * d - 2 * L * T * d - 2 * d * V), rel=1e-12
    )
    assert flops.C_6ND == 6 * param_counts(shape).N * tokens


def test_counting_does_not_import_torch():
    code = "import sys, scaling.models.counting, scaling.models; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

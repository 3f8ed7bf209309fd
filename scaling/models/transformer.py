"""A small GPT-style transformer in one readable file (after karpathy/nanoGPT's model.py).

Pre-LayerNorm blocks, multi-head attention (torch's fused `scaled_dot_product_attention`, or
explicit matmuls: same math, different speed), GELU MLP, learned position embeddings, a final
LayerNorm and an LM head tied to the token embedding. No biases; LayerNorm has a weight only.
Parameter counts below assume d = d_model, f = d_ff, V = vocab_size, L = n_layers, T = ctx;
`scaling/models/counting.py` adds them up and the tests check the sum against this module.

Whether attention is causal is a parameter of each block, so the encoder (bidirectional) and
encoder-decoder architectures can reuse `Block` with the same knobs.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from scaling.models.shape import ModelShape

INIT_STD = 0.02  # GPT-2's initial weight scale for embeddings and linear layers


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, impl: str) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v for (B, heads, T, head_dim) tensors; with `causal`,
    query t sees keys 0..t only. "sdpa" uses torch's fused kernel, "matmul" spells it out
    (under bf16 autocast on CPU the explicit form trains faster; see docs/model.md)."""
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # scores: 2*T*hd FLOPs per query per head
    if causal:
        future = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).triu(1)
        att = att.masked_fill(future, float("-inf"))  # a query never sees a later key
    att = F.softmax(att, dim=-1)  # ~3 FLOPs per score (exp, sum, divide): not a matmul
    return att @ v  # weighted sum of values: 2*T*hd FLOPs per query per head


class SelfAttention(nn.Module):
    """Multi-head self-attention: 4 d^2 parameters, 8 d^2 + 4 T d matmul FLOPs per token."""

    def __init__(self, shape: ModelShape, causal: bool):
        super().__init__()
        d = shape.d_model
        self.n_heads, self.causal, self.impl = shape.n_heads, causal, shape.attention
        self.c_attn = nn.Linear(d, 3 * d, bias=False)  # fused query, key, value: 3 d^2 params, 6 d^2 FLOPs/token
        self.c_proj = nn.Linear(d, d, bias=False)  # output projection: d^2 params, 2 d^2 FLOPs/token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim): every head attends independently
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = attend(q, k, v, self.causal, self.impl)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))  # re-assemble the heads side by side


class MLP(nn.Module):
    """Position-wise feed-forward: d -> f -> d with GELU; 2 d f parameters, 4 d f FLOPs/token."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.c_fc = nn.Linear(shape.d_model, shape.d_ff, bias=False)  # up: d f params, 2 d f FLOPs/token
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(shape.d_ff, shape.d_model, bias=False)  # down: f d params, 2 f d FLOPs/token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x)); 4 d^2 + 2 d f + 2 d params.
    `causal` chooses masked (decoder) or bidirectional (encoder) self-attention."""

    def __init__(self, shape: ModelShape, causal: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(shape.d_model, bias=False)  # d params (weight only)
        self.attn = SelfAttention(shape, causal)
        self.ln_2 = nn.LayerNorm(shape.d_model, bias=False)  # d params (weight only)
        self.mlp = MLP(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """Decoder-only language model: idx (B, T) int64 with T <= ctx -> logits (B, T, vocab_size).

    Weights are drawn from a torch.Generator seeded with `seed` (the global RNG is neither used
    nor advanced), so the same shape and seed give the same model bit for bit.
    """

    def __init__(self, shape: ModelShape, seed: int = 0):
        super().__init__()
        self.shape = shape
        d = shape.d_model
        # build on the meta device (no memory, no RNG), then allocate and draw the weights below
        with torch.device("meta"):
            self.wte = nn.Embedding(shape.vocab_size, d)  # token embedding, also the LM head: V d params
            self.wpe = nn.Embedding(shape.ctx, d)  # learned position embedding: T d params
            self.blocks = nn.ModuleList(Block(shape, causal=True) for _ in range(shape.n_layers))
            self.ln_f = nn.LayerNorm(d, bias=False)  # final LayerNorm: d params
        self.to_empty(device="cpu")
        self.init_weights(torch.Generator(device="cpu").manual_seed(seed))

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator) -> None:
        """GPT-2 init: N(0, 0.02) weights, residual-output projections scaled by 1/sqrt(2L)
        so the residual stream's variance does not grow with depth; LayerNorm weights 1."""
        residual_std = INIT_STD / math.sqrt(2 * self.shape.n_layers)
        for name, p in self.named_parameters():  # a fixed order, so the draw is reproducible
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
                p.fill_(1.0)
            else:
                p.normal_(0.0, residual_std if name.endswith("c_proj.weight") else INIT_STD, generator=generator)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        if T > self.shape.ctx:
            raise ValueError(f"sequence length {T} exceeds the model's context length ctx={self.shape.ctx}")
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, d): lookups, no matmul FLOPs
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return F.linear(x, self.wte.weight)  # tied LM head: 2 d V FLOPs/token, no extra params

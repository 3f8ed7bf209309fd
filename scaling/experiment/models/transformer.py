"""A small GPT-style transformer in one readable file (after karpathy/nanoGPT's model.py).

Pre-LayerNorm blocks, multi-head attention (torch's fused `scaled_dot_product_attention`, or
explicit matmuls: same math, different speed), GELU MLP, learned position embeddings, a final
LayerNorm and an LM head tied to the token embedding. No biases; LayerNorm has a weight only.
Parameter counts below assume d = d_model, f = d_ff, V = vocab_size, L = n_layers, T = ctx;
`scaling/experiment/models/counting.py` adds them up and the tests check the sum against this
module.

The three architectures share these blocks and size knobs (docs/architectures.md):
`decoder` is one causal stack; `encoder` the same stack bidirectional; `encoder_decoder` a
bidirectional stack of n_layers blocks and a causal stack of n_layers `DecoderBlock`s that also
cross-attend to the encoder's output. Every attention module reports the boolean mask it applies
(`mask()`; the "matmul" kernel applies exactly that tensor), and `Transformer.masks()` collects
them.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from scaling.experiment.models.shape import ModelShape

INIT_STD = 0.02  # GPT-2's initial weight scale for embeddings and linear layers


def attention_mask(
    t_q: int, t_k: int, causal: bool, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(t_q, t_k) bool, True where query i may attend to key j: j <= i when causal, else all."""
    allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=device)
    return allowed.tril() if causal else allowed


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, impl: str
) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v for (B, heads, T, head_dim) tensors; with `causal`,
    query t sees keys 0..t only. "sdpa" uses torch's fused kernel, "matmul" spells it out
    (under bf16 autocast on CPU the explicit form trains faster; see docs/model.md)."""
    if impl != "matmul":  # "sdpa", or "auto" left unresolved by the caller
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    B, H, T, hd = q.shape
    S = k.size(-2)
    # additive mask: 0 where a query may attend, -inf where it may not (a later key, when causal);
    # one fused baddbmm applies it and the 1/sqrt(hd) scale to the scores
    # (~4x cheaper than masked_fill)
    bias = torch.zeros(T, S, dtype=q.dtype, device=q.device)
    bias = bias.masked_fill(~attention_mask(T, S, causal, q.device), float("-inf"))
    att = torch.baddbmm(
        bias,
        q.reshape(B * H, T, hd),
        k.reshape(B * H, S, hd).transpose(1, 2),
        alpha=1.0 / math.sqrt(hd),
    )  # scores: 2*S*hd FLOPs per query per head
    att = F.softmax(att, dim=-1)  # ~3 FLOPs per score (exp, sum, divide): not a matmul
    return (att @ v.reshape(B * H, S, hd)).view(
        B, H, T, hd
    )  # weighted sum of values: 2*S*hd FLOPs per query per head


class SelfAttention(nn.Module):
    """Multi-head self-attention: 4 d^2 parameters, 8 d^2 + 4 T d matmul FLOPs per token."""

    def __init__(self, shape: ModelShape, causal: bool):
        super().__init__()
        d = shape.d_model
        self.n_heads, self.causal, self.impl = shape.n_heads, causal, shape.attention
        self.c_attn = nn.Linear(
            d, 3 * d, bias=False
        )  # fused query, key, value: 3 d^2 params, 6 d^2 FLOPs/token
        self.c_proj = nn.Linear(
            d, d, bias=False
        )  # output projection: d^2 params, 2 d^2 FLOPs/token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim): every head attends independently
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = attend(q, k, v, self.causal, self.impl)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))  # re-assemble the heads side by side

    def mask(self, t: int) -> torch.Tensor:
        """The (t, t) bool mask this module applies to a length-t input (True = may attend)."""
        return attention_mask(t, t, self.causal)


class CrossAttention(nn.Module):
    """Decoder queries attend to every encoder position (T5, Vaswani et al. 2017): 4 d^2 parameters;
    per decoder token 4 d^2 (query, output) + 4 S d (scores, sum) FLOPs, per encoder token 4 d^2
    (key, value)."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        d = shape.d_model
        self.n_heads, self.impl = shape.n_heads, shape.attention
        self.c_q = nn.Linear(
            d, d, bias=False
        )  # query from the decoder: d^2 params, 2 d^2 FLOPs/decoder token
        self.c_kv = nn.Linear(
            d, 2 * d, bias=False
        )  # key, value from the encoder: 2 d^2 params, 4 d^2 FLOPs/encoder token
        self.c_proj = nn.Linear(
            d, d, bias=False
        )  # output projection: d^2 params, 2 d^2 FLOPs/decoder token

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        S, hd = memory.size(1), C // self.n_heads
        q = self.c_q(x).view(B, T, self.n_heads, hd).transpose(1, 2)
        k, v = (
            t.view(B, S, self.n_heads, hd).transpose(1, 2)
            for t in self.c_kv(memory).split(C, dim=2)
        )
        y = attend(
            q, k, v, False, self.impl
        )  # every decoder position sees the whole encoder output
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    def mask(self, t: int, s: int) -> torch.Tensor:
        """The (t, s) bool mask from t decoder queries to s encoder keys: all True."""
        return attention_mask(t, s, False)


class MLP(nn.Module):
    """Position-wise feed-forward: d -> f -> d with GELU; 2 d f parameters, 4 d f FLOPs/token."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        d, f = shape.d_model, shape.d_ff
        assert f is not None  # ModelShape fills d_ff in on construction
        self.c_fc = nn.Linear(d, f, bias=False)  # up: d f params, 2 d f FLOPs/token
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(f, d, bias=False)  # down: f d params, 2 f d FLOPs/token

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


class DecoderBlock(nn.Module):
    """Pre-LN encoder-decoder decoder block: causal self-attention, cross-attention to the encoder
    output, MLP, each a residual branch; 8 d^2 + 2 d f + 3 d params."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.ln_1 = nn.LayerNorm(shape.d_model, bias=False)  # d params
        self.attn = SelfAttention(shape, causal=True)  # 4 d^2 params
        self.ln_2 = nn.LayerNorm(shape.d_model, bias=False)  # d params
        self.cross = CrossAttention(shape)  # 4 d^2 params
        self.ln_3 = nn.LayerNorm(shape.d_model, bias=False)  # d params
        self.mlp = MLP(shape)  # 2 d f params

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.cross(self.ln_2(x), memory)
        return x + self.mlp(self.ln_3(x))


class Transformer(nn.Module):
    """The model of every `shape.arch`; logits cover all `shape.n_vocab` ids (bytes + specials).

    decoder, encoder: `model(idx)` with idx (B, T <= ctx) -> logits (B, T, n_vocab)
    encoder_decoder:  `model(idx, tgt)` with the encoder's idx (B, S <= ctx) and the decoder's
                      input tgt (B, T <= ctx) -> logits (B, T, n_vocab) at the decoder positions
    Weights are drawn from a torch.Generator seeded with `seed` (the global RNG is neither used
    nor advanced), so the same shape and seed give the same model bit for bit.
    """

    def __init__(self, shape: ModelShape, seed: int = 0):
        super().__init__()
        self.shape = shape
        d = shape.d_model
        # build on the meta device (no memory, no RNG), then allocate and draw the weights below
        with torch.device("meta"):
            self.wte = nn.Embedding(
                shape.n_vocab, d
            )  # token embedding, also the LM head: (V + specials) d params
            self.wpe = nn.Embedding(
                shape.ctx, d
            )  # learned position embedding (shared by both stacks): T d params
            # the decoder-only stack is causal;
            # the encoder's (alone or under a decoder) is bidirectional
            self.blocks = nn.ModuleList(
                Block(shape, causal=shape.arch == "decoder") for _ in range(shape.n_layers)
            )
            if shape.arch == "encoder_decoder":
                self.ln_enc = nn.LayerNorm(d, bias=False)  # encoder's final LayerNorm: d params
                self.dec_blocks = nn.ModuleList(DecoderBlock(shape) for _ in range(shape.n_layers))
            self.ln_f = nn.LayerNorm(d, bias=False)  # final LayerNorm before the head: d params
        self.to_empty(device="cpu")
        self.init_weights(torch.Generator(device="cpu").manual_seed(seed))

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator) -> None:
        """GPT-2 init: N(0, 0.02) weights, residual-output projections scaled by 1/sqrt(2L)
        so the residual stream's variance does not grow with depth; LayerNorm weights 1."""
        residual_std = INIT_STD / math.sqrt(2 * self.shape.n_layers)
        for name, p in self.named_parameters():  # a fixed order, so the draw is reproducible
            if name.split(".")[-2].startswith("ln_"):  # LayerNorm weights: ln_1/2/3, ln_enc, ln_f
                p.fill_(1.0)
            else:
                p.normal_(
                    0.0,
                    residual_std if name.endswith("c_proj.weight") else INIT_STD,
                    generator=generator,
                )

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token + position embedding (B, T, d): lookups, no matmul FLOPs."""
        T = idx.size(1)
        if T > self.shape.ctx:
            raise ValueError(
                f"sequence length {T} exceeds the model's context length ctx={self.shape.ctx}"
            )
        return self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))

    def forward(self, idx: torch.Tensor, tgt: torch.Tensor | None = None) -> torch.Tensor:
        if (tgt is not None) != (self.shape.arch == "encoder_decoder"):
            raise ValueError(
                f"arch={self.shape.arch} takes "
                f"{'model(idx, tgt)' if self.shape.arch == 'encoder_decoder' else 'model(idx)'}"
            )
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        if tgt is not None:
            memory = self.ln_enc(x)  # what every cross-attention reads
            x = self.embed(tgt)
            for block in self.dec_blocks:
                x = block(x, memory)
        x = self.ln_f(x)
        return F.linear(
            x, self.wte.weight
        )  # tied LM head: 2 d (V + specials) FLOPs/token, no extra params

    def masks(
        self, src_len: int | None = None, tgt_len: int | None = None
    ) -> dict[str, torch.Tensor]:
        """The boolean attention masks (True = may attend) the model's modules apply, by role:
        {"self"} for decoder / encoder, {"encoder self", "decoder self", "cross"} for the
        encoder-decoder; lengths default to the training ones (shape.src_len, shape.tgt_len).
        Every block of a stack is asked, and must agree."""
        S = self.shape.src_len if src_len is None else src_len
        T = self.shape.tgt_len if tgt_len is None else tgt_len

        def agreed(masks: list[torch.Tensor]) -> torch.Tensor:
            if any(not torch.equal(m, masks[0]) for m in masks):
                raise RuntimeError("blocks of one stack apply different attention masks")
            return masks[0]

        first = agreed([b.attn.mask(S) for b in cast("list[Block]", list(self.blocks))])
        if self.shape.arch != "encoder_decoder":
            return {"self": first}
        dec_blocks = cast("list[DecoderBlock]", list(self.dec_blocks))
        return {
            "encoder self": first,
            "decoder self": agreed([b.attn.mask(T) for b in dec_blocks]),
            "cross": agreed([b.cross.mask(T, S) for b in dec_blocks]),
        }

"""K decoder transformers of one shape as one model: every weight stacked along a leading model
axis, every linear layer one batched matmul over the K models (docs/performance.md, ensembles).

Member k computes exactly what `Transformer(shape, seeds[k])` computes on its own rows (same
initial weights, same math; float rounding aside), so K small runs of one shape train as one
large computation. The weights keep `Transformer`'s parameter names, with shape (K, *shape of
that parameter), so a member moves in and out of a plain `Transformer` by name (`member_into`,
`load_member`): evaluation, probes and checkpoints reuse the single-run code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scaling.experiment.models.shape import ModelShape
from scaling.experiment.models.transformer import Transformer, attend


class StackedTransformer(torch.nn.Module):
    """K decoder-only transformers of `shape`, member k initialised as Transformer(shape, seeds[k]).

    forward(idx (K, B, T)) -> logits (K, B, T, n_vocab): member k reads idx[k].
    """

    def __init__(self, shape: ModelShape, seeds: list[int]):
        super().__init__()
        if shape.arch != "decoder":
            raise ValueError(f"stacked models are decoder-only, got arch={shape.arch}")
        self.shape, self.K = shape, len(seeds)
        members = [Transformer(shape, seed=s) for s in seeds]
        self.names = [name for name, _ in members[0].named_parameters()]  # Transformer's order
        params = [dict(m.named_parameters()) for m in members]
        self.stack = torch.nn.ParameterList(
            torch.nn.Parameter(torch.stack([p[n].detach() for p in params])) for n in self.names
        )

    def weights(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.stack))

    # ---------------------------------------------------------------- members in and out

    @torch.no_grad()
    def member_into(self, k: int, model: Transformer) -> Transformer:
        """Copy member k's weights into a plain Transformer of the same shape (returned)."""
        for p, w in zip(model.parameters(), self.stack):
            p.copy_(w[k])
        return model

    @torch.no_grad()
    def load_member(self, k: int, model: Transformer) -> None:
        """Set member k's weights from a plain Transformer of the same shape."""
        for p, w in zip(model.parameters(), self.stack):
            w[k].copy_(p)

    # ---------------------------------------------------------------- forward

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        w, shape = self.weights(), self.shape
        K, B, T = idx.shape
        if T > shape.ctx:
            raise ValueError(f"sequence length {T} exceeds the context length ctx={shape.ctx}")
        V, d = w["wte.weight"].shape[1:]
        # member k's token ids index its own rows of the (K * V, d) table: one embedding lookup
        offset = (torch.arange(K, device=idx.device) * V).view(K, 1, 1)
        x = F.embedding(idx + offset, w["wte.weight"].reshape(K * V, d))
        x = x + w["wpe.weight"][:, None, :T]
        x = x.view(K, B * T, d)
        for i in range(shape.n_layers):
            p = f"blocks.{i}."
            x = x + self._attention(_norm(x, w[p + "ln_1.weight"]), w, p, B, T)
            h = F.gelu(_linear(_norm(x, w[p + "ln_2.weight"]), w[p + "mlp.c_fc.weight"]))
            x = x + _linear(h, w[p + "mlp.c_proj.weight"])
        x = _norm(x, w["ln_f.weight"])
        return _linear(x, w["wte.weight"]).view(K, B, T, -1)  # tied LM head

    def _attention(self, x: torch.Tensor, w: dict, p: str, B: int, T: int) -> torch.Tensor:
        K, _, C = x.shape
        H = self.shape.n_heads
        q, k, v = _linear(x, w[p + "attn.c_attn.weight"]).split(C, dim=2)
        # (K, B*T, C) -> (K*B, heads, T, head_dim): every member's heads attend independently
        q, k, v = (t.reshape(K * B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        y = attend(q, k, v, causal=True, impl=self.shape.attention)
        return _linear(y.transpose(1, 2).reshape(K, B * T, C), w[p + "attn.c_proj.weight"])


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (K, n, in) @ weight (K, out, in)^T -> (K, n, out): one batched matmul for K layers."""
    return torch.bmm(x, weight.transpose(1, 2))


def _norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """LayerNorm (no bias) with a per-member weight (K, d) over x (K, n, d)."""
    return F.layer_norm(x, x.shape[-1:]) * weight.unsqueeze(1)

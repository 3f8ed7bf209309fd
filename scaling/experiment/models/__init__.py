"""Models: `ModelShape` and `resolve_shape` (shape.py), exact counts (counting.py, no torch),
and the transformer (transformer.py, imported only when `Transformer` is asked for)."""

from __future__ import annotations

from scaling.experiment.models.counting import (
    FlopCounts,
    ParamCounts,
    forward_flops_per_row,
    forward_flops_per_token,
    param_counts,
    training_flops,
)
from scaling.experiment.models.shape import ModelShape, resolve_shape

__all__ = [
    "FlopCounts",
    "ModelShape",
    "ParamCounts",
    "Transformer",
    "forward_flops_per_row",
    "forward_flops_per_token",
    "param_counts",
    "resolve_shape",
    "training_flops",
]


def __getattr__(name: str):
    # torch is imported on first use of Transformer, so counting and shapes stay torch-free
    if name == "Transformer":
        from scaling.experiment.models.transformer import Transformer

        return Transformer
    raise AttributeError(f"module 'scaling.experiment.models' has no attribute {name!r}")

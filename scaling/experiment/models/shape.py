"""The shape of a model: a frozen, validated `ModelShape`, and `resolve_shape` that builds one
from the `model` config group (a named rung of the size ladder, then explicit overrides).

Pure Python (no torch), so the counting and fitting side can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from scaling.errors import ConfigError

ARCHS = (
    "decoder",
    "encoder",
    "encoder_decoder",
)  # one set of blocks and size knobs (docs/architectures.md)
ATTENTIONS = (
    "auto",
    "sdpa",
    "matmul",
)  # trainer picks | torch's fused scaled_dot_product_attention | explicit matmuls
RUNG_KEYS = ("d_model", "n_layers", "n_heads")  # what a ladder rung fixes
# objective knobs and the arch that reads each; for any other arch the knob is stored as None, so
# it cannot split run ids (a decoder run is the same run whatever mask_fraction says)
OBJECTIVE_KNOBS = {
    "mask_fraction": "encoder",
    "noise_density": "encoder_decoder",
    "mean_span": "encoder_decoder",
}


def _positive_int(field: str, value: Any, fix: str) -> int:
    """`value` as an int > 0, else a ConfigError naming `field` and how to fix it."""
    if isinstance(value, bool) or not isinstance(value, int):
        # an integral float such as 64.0 (YAML "6.4e1") is accepted; 64.5 or "64" is not
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"model.{field}={value!r} must be a positive integer; {fix}")
    if value <= 0:
        raise ConfigError(f"model.{field}={value} must be a positive integer; {fix}")
    return value


@dataclass(frozen=True)
class ModelShape:
    """Everything that fixes a model's parameters and FLOPs (and the attention kernel used).

    d_ff defaults to 4 * d_model. Construction validates; a bad value raises ConfigError.
    The objective knobs fix sequence lengths (hence FLOPs) and the special tokens (hence N), so
    they live here too: `mask_fraction` (encoder), `noise_density` and `mean_span`
    (encoder_decoder).
    """

    d_model: int  # width of the residual stream
    n_layers: int  # number of transformer blocks
    n_heads: int  # attention heads per block; head dim = d_model // n_heads
    ctx: int  # context length: the longest sequence the position embedding covers
    vocab_size: int = 256  # byte-level tokens
    d_ff: int | None = None  # MLP hidden width; None means 4 * d_model
    # "decoder" (causal LM) | "encoder" (masked LM) | "encoder_decoder" (span corruption)
    arch: str = "decoder"
    attention: str = "sdpa"  # "sdpa" | "matmul": same math, different kernels (speed only);
    # "auto" lets the trainer choose (scaling.experiment.hardware.pick_attention);
    # the model reads it as "sdpa"
    mask_fraction: float | None = (
        0.15  # encoder: share of the ctx positions replaced by <mask> and predicted
    )
    noise_density: float | None = 0.15  # encoder_decoder: share of the ctx positions corrupted (T5)
    mean_span: float | None = 3.0  # encoder_decoder: mean length of a corrupted span (T5)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(
                f"model.arch={self.arch!r} is not supported; choose one of: {', '.join(ARCHS)}"
            )
        if self.attention not in ATTENTIONS:
            raise ConfigError(
                f"model.attention={self.attention!r} is unknown; "
                f"choose one of: {', '.join(ATTENTIONS)}"
            )
        d_ff = 4 * self.d_model if self.d_ff is None else self.d_ff
        for name, value in (
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("ctx", self.ctx),
            ("vocab_size", self.vocab_size),
            ("d_ff", d_ff),
        ):
            object.__setattr__(
                self, name, _positive_int(name, value, "set it to a whole number >= 1")
            )
        self._check_objective()
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"model.n_heads={self.n_heads} does not divide model.d_model={self.d_model}; "
                f"pick n_heads among the divisors of d_model (e.g. d_model/16 for head dim 16)"
            )

    def _check_objective(self) -> None:
        """Objective knobs: None unless the arch uses them, else a float in range."""
        for knob, arch in OBJECTIVE_KNOBS.items():
            value = getattr(self, knob)
            if arch != self.arch:
                object.__setattr__(self, knob, None)
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"model.{knob}={value!r} must be a number for model.arch={arch}; e.g. "
                    f"model.{knob}={getattr(ModelShape, knob)}"
                )
            else:
                object.__setattr__(self, knob, float(value))
        if self.arch == "encoder":
            assert self.mask_fraction is not None  # set to a float by the loop above
            if not 0.0 < self.mask_fraction < 1.0:
                raise ConfigError(
                    f"model.mask_fraction={self.mask_fraction} must lie in (0, 1); e.g. 0.15 (BERT)"
                )
        if self.arch == "encoder_decoder":
            assert self.noise_density is not None and self.mean_span is not None
            if not 0.0 < self.noise_density < 1.0:
                raise ConfigError(
                    f"model.noise_density={self.noise_density} must lie in (0, 1); e.g. 0.15 (T5)"
                )
            if self.mean_span < 1.0:
                raise ConfigError(f"model.mean_span={self.mean_span} must be >= 1; e.g. 3 (T5)")
            if self.ctx - self.n_noise < self.n_spans:
                raise ConfigError(
                    f"model.ctx={self.ctx} with noise_density={self.noise_density} "
                    f"leaves {self.ctx - self.n_noise} clean tokens for {self.n_spans} spans; "
                    "lower model.noise_density or raise model.ctx"
                )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    # ---- the objective's token counts (docs/architectures.md); all fixed by the shape

    @property
    def n_masked(self) -> int:
        """encoder: positions per row replaced by <mask> and predicted (at least one)."""
        assert self.mask_fraction is not None, "n_masked is defined for arch=encoder only"
        return max(1, round(self.ctx * self.mask_fraction))

    @property
    def n_noise(self) -> int:
        """encoder_decoder: corrupted tokens per row (T5's num_noise_tokens, at least one)."""
        assert self.noise_density is not None, "n_noise is defined for arch=encoder_decoder only"
        return max(1, round(self.ctx * self.noise_density))

    @property
    def n_spans(self) -> int:
        """encoder_decoder: corrupted spans per row (T5's num_noise_spans, at least one)."""
        assert self.mean_span is not None, "n_spans is defined for arch=encoder_decoder only"
        return max(1, round(self.n_noise / self.mean_span))

    @property
    def n_special(self) -> int:
        """Ids past the data's vocab_size: <mask> (encoder); one sentinel per span plus the
        decoder's start token (encoder_decoder); none for the decoder."""
        if self.arch == "encoder_decoder":
            return self.n_spans + 1
        return 1 if self.arch == "encoder" else 0

    @property
    def n_vocab(self) -> int:
        """Rows of the token embedding (= columns of the tied output head)."""
        return self.vocab_size + self.n_special

    @property
    def src_len(self) -> int:
        """Length of the sequence the first (or only) stack reads: ctx, or for the encoder-decoder
        the corrupted text (ctx - n_noise clean tokens + one sentinel per span)."""
        return (
            self.ctx - self.n_noise + self.n_spans if self.arch == "encoder_decoder" else self.ctx
        )

    @property
    def tgt_len(self) -> int:
        """encoder_decoder: length of the decoder's sequence (per span: a sentinel, the span)."""
        return self.n_noise + self.n_spans if self.arch == "encoder_decoder" else 0


def _plain(cfg: Any) -> dict:
    """A plain dict from a dict or an OmegaConf DictConfig (interpolations resolved)."""
    if type(cfg).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping):
        raise ConfigError(
            f"the model config must be a mapping, got {type(cfg).__name__}; pass the model group"
        )
    return dict(cfg)


def resolve_shape(model_cfg: Any) -> ModelShape:
    """The ModelShape of a `model` config: the rung named by `size` (from its `ladder`), then
    any explicit d_model / n_layers / n_heads / ctx / ... that is not null overrides it."""
    cfg = _plain(model_cfg)
    shape_keys = {f.name for f in fields(ModelShape)}
    unknown = sorted(set(cfg) - shape_keys - {"size", "ladder"})
    if unknown:
        raise ConfigError(
            f"unknown model key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(shape_keys | {'size', 'ladder'}))}"
        )
    values: dict[str, Any] = {}
    size = cfg.get("size")
    if size is not None and size not in (cfg.get("ladder") or {}):
        from scaling.experiment.models.sizing import shape_for_N, target_N  # imports counting.py

        target = target_N(size)
        if target is not None:  # model.size=N<count>: the nearest shape at the ladder's aspect
            base = {
                k: v
                for k, v in cfg.items()
                if k in shape_keys and k not in RUNG_KEYS and v is not None
            }
            values.update(shape_for_N(target, cfg.get("ladder") or {}, base))
            size = None
    if size is not None:
        ladder = cfg.get("ladder") or {}
        if size not in ladder:
            names = ", ".join(map(str, ladder)) or "(the config has no model.ladder)"
            raise ConfigError(
                f"model.size={size!r} is not a rung of the ladder; choose one of: "
                f"{names}, or N<count> (e.g. N5e4) for the shape nearest that many "
                "parameters"
            )
        rung = ladder[size]
        if not isinstance(rung, Mapping) or any(k not in rung for k in RUNG_KEYS):
            raise ConfigError(
                f"model.ladder.{size} must set {', '.join(RUNG_KEYS)}; fix that rung in conf/model/"
            )
        values.update({k: rung[k] for k in RUNG_KEYS})
    values.update({k: v for k, v in cfg.items() if k in shape_keys and v is not None})
    missing = [k for k in ("d_model", "n_layers", "n_heads", "ctx") if k not in values]
    if missing:
        raise ConfigError(
            f"model.{missing[0]} is not set; pick a rung with model.size=<name> or set "
            f"{', '.join('model.' + k for k in missing)} explicitly"
        )
    return ModelShape(**values)

"""Token sources: the data config schema and `build_source()` (see docs/architecture.md).

Every source yields byte tokens (vocab 256): `train_batch(step, batch_size, seed)` is a pure
function of (data config, seed, step) and `val_batch()` is fixed by the data config alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from scaling.errors import ConfigError
from scaling.experiment.data.probes import ProbeConfig
from scaling.experiment.data.synthetic import SyntheticConfig
from scaling.experiment.data.tokens import TokensConfig

SOURCES = ("synthetic", "stdlib", "text", "tokens")


@dataclass
class DataConfig:
    """Which token source to use and how its validation set is drawn."""

    name: str = "synthetic"  # synthetic | stdlib | text
    val_tokens: int = 65536  # validation positions (rounded up to whole rows of ctx)
    val_seed: int = 1234  # fixes the validation rows; keep it equal across a sweep
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    paths: list[str] = field(default_factory=list)  # text: files, folders or globs
    val_fraction: float = 0.1  # stdlib/text: share of files held out for validation
    max_bytes: int = 33554432  # stdlib/text: read at most this many bytes (start-up time)
    tokens: TokensConfig = field(default_factory=TokensConfig)  # tokens: your own token ids


class TokenSource(Protocol):
    name: str
    vocab_size: int

    @property
    def entropy_floor(self) -> float | None: ...  # read-only: a float, or None when unknown

    def train_batch(self, step: int, batch_size: int, seed: int) -> torch.Tensor: ...

    def val_batch(self) -> torch.Tensor: ...


_NESTED = {"synthetic": SyntheticConfig, "probes": ProbeConfig, "tokens": TokensConfig}


def _from_mapping(cls: type, values: dict, where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown field {where}.{unknown[0]}; valid fields are: {', '.join(known)}"
        )
    kwargs = {}
    for key, value in values.items():
        if key in _NESTED and isinstance(value, dict):
            value = _from_mapping(_NESTED[key], value, f"{where}.{key}")
        kwargs[key] = value
    return cls(**kwargs)


def as_data_config(cfg: Any) -> DataConfig:
    """Accept a DataConfig, an OmegaConf node (structured or plain) or a dict."""
    if isinstance(cfg, DataConfig):
        return cfg
    if not isinstance(cfg, dict):
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            obj = OmegaConf.to_object(cfg)
            if isinstance(obj, DataConfig):
                return obj
            cfg = obj
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"data config must be a mapping, got {type(cfg).__name__}; "
            "pass data=synthetic|stdlib|text"
        )
    cfg = dict(cfg)
    if isinstance(cfg.get("synthetic"), SyntheticConfig):
        cfg["synthetic"] = dataclasses.asdict(cfg["synthetic"])
    if isinstance(cfg.get("tokens"), TokensConfig):
        cfg["tokens"] = dataclasses.asdict(cfg["tokens"])
    return _from_mapping(DataConfig, cfg, "data")


def validate(cfg: DataConfig, ctx: int) -> None:
    """Raise ConfigError (one line naming the field and the fix) on any impossible value."""
    if cfg.name not in SOURCES:
        raise ConfigError(f"unknown data.name={cfg.name!r}; choose one of: {', '.join(SOURCES)}")
    if int(ctx) < 1:
        raise ConfigError(
            f"context length must be >= 1, got {ctx}; set model ctx to a positive integer"
        )
    if int(cfg.val_tokens) < 1:
        raise ConfigError(
            f"data.val_tokens={cfg.val_tokens} must be >= 1; e.g. data.val_tokens=65536"
        )
    if not 0.0 < float(cfg.val_fraction) < 1.0:
        raise ConfigError(
            f"data.val_fraction={cfg.val_fraction} must be in (0, 1); e.g. data.val_fraction=0.1"
        )
    if int(cfg.max_bytes) < 1:
        raise ConfigError(
            f"data.max_bytes={cfg.max_bytes} must be >= 1; e.g. data.max_bytes=33554432"
        )
    if cfg.name == "text" and not cfg.paths:
        raise ConfigError("data=text needs data.paths; e.g. data.paths='[corpus/,notes/*.md]'")
    if cfg.name == "tokens" and not cfg.tokens.path:
        raise ConfigError(
            "data=tokens needs data.tokens.path: a folder with train.bin/val.bin or a saved dataset"
        )
    s = cfg.synthetic
    if cfg.name == "synthetic":
        weights = {
            "w_unigram": s.w_unigram,
            "w_topic": s.w_topic,
            "w_bigram": s.w_bigram,
            "w_cache": s.w_cache,
        }
        for key, w in weights.items():
            if w < 0:
                raise ConfigError(f"data.synthetic.{key}={w} must be >= 0")
        if abs(sum(weights.values()) - 1.0) > 1e-9 or s.w_cache >= 1:
            raise ConfigError(
                "data.synthetic weights w_unigram+w_topic+w_bigram+w_cache sum to "
                f"{sum(weights.values()):g}; "
                "make them sum to 1 (with w_cache < 1)"
            )
        if not 2 <= s.min_len <= s.max_len <= 32:
            raise ConfigError(
                f"data.synthetic needs 2 <= min_len <= max_len <= 32, got {s.min_len}, {s.max_len}"
            )
        if s.n_words < 2 or s.n_words > 26**s.max_len // 4:
            raise ConfigError(f"data.synthetic.n_words={s.n_words} must be in [2, 26^max_len/4]")
        for key in ("n_topics", "topic_words", "n_successors"):
            if getattr(s, key) < 1:
                raise ConfigError(f"data.synthetic.{key}={getattr(s, key)} must be >= 1")
        if s.zipf_exponent <= 0 or s.letter_concentration <= 0:
            raise ConfigError("data.synthetic.zipf_exponent and letter_concentration must be > 0")
        _validate_probes(s.probes)


def _validate_probes(p: ProbeConfig) -> None:
    where = "data.synthetic.probes"
    if not 0.0 <= p.fraction <= 1.0:
        raise ConfigError(
            f"{where}.fraction={p.fraction} must be in [0, 1]; e.g. 0.1, or 0 to turn probes off"
        )
    weights = (p.w_icl, p.w_reasoning, p.w_knowledge)
    if min(weights) < 0 or sum(weights) <= 0:
        raise ConfigError(
            f"{where}.w_icl/w_reasoning/w_knowledge={weights} must be >= 0 with a positive sum"
        )
    ranges = {
        "value_len": (1, 8),
        "icl_pairs": (1, 26),
        "icl_queries": (1, 64),
        "reasoning_symbols": (2, 26),
        "reasoning_steps": (1, 9),
        "reasoning_queries": (1, 64),
        "knowledge_key_len": (1, 6),
        "eval_rows": (1, 4096),
    }
    for key, (lo, hi) in ranges.items():
        if not lo <= getattr(p, key) <= hi:
            raise ConfigError(f"{where}.{key}={getattr(p, key)} must be in [{lo}, {hi}]")
    if not 1 <= p.knowledge_facts <= 26**p.knowledge_key_len // 2:
        raise ConfigError(
            f"{where}.knowledge_facts={p.knowledge_facts} must be in [1, 26^knowledge_key_len/2]; "
            "lower it or raise knowledge_key_len"
        )
    if p.knowledge_zipf < 0:
        raise ConfigError(
            f"{where}.knowledge_zipf={p.knowledge_zipf} must be >= 0 (0: uniform facts)"
        )


def build_source(data_cfg: Any, ctx: int) -> TokenSource:
    """Build the token source named by `data_cfg.name` for rows of ctx + 1 tokens."""
    cfg = as_data_config(data_cfg)
    validate(cfg, ctx)
    if cfg.name == "synthetic":
        from scaling.experiment.data.synthetic import SyntheticSource

        return SyntheticSource(cfg.synthetic, int(ctx), int(cfg.val_tokens), int(cfg.val_seed))
    if cfg.name == "tokens":
        from scaling.experiment.data.tokens import TokenArraySource

        return TokenArraySource(
            cfg.tokens, int(ctx), int(cfg.val_tokens), int(cfg.val_seed), float(cfg.val_fraction)
        )
    from scaling.experiment.data.text import ByteSource, collect_paths, stdlib_files

    files = stdlib_files() if cfg.name == "stdlib" else collect_paths([str(p) for p in cfg.paths])
    return ByteSource(
        cfg.name,
        files,
        int(ctx),
        int(cfg.val_tokens),
        int(cfg.val_seed),
        float(cfg.val_fraction),
        int(cfg.max_bytes),
    )

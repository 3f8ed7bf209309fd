"""Model size and hyperparameters from the config file beside a log (HF `config.json`,
Lightning `hparams.yaml`, a Hydra/W&B `config.yaml`)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from scaling.errors import DataError

CONFIG_FILES = ("config.json", "hparams.yaml", "config.yaml", "config.yml", "files/config.yaml")
N_KEYS = ("num_parameters", "n_parameters", "num_params", "n_params", "N", "params", "model_size")
WIDTH = ("hidden_size", "n_embd", "d_model")
DEPTH = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")
FFN = ("intermediate_size", "n_inner", "d_ff", "ffn_dim")


def _flatten(d: dict, prefix: str = "") -> dict:
    """Nested keys joined with '.'; W&B's {"value": v, "desc": ...} entries unwrapped."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and "value" in v and set(v) <= {"value", "desc"}:
            v = v["value"]
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_file(folders: list[Path]) -> Path | None:
    """The first config file in `folders`, in order."""
    return next((f / name for f in folders for name in CONFIG_FILES if (f / name).is_file()), None)


def read_config(folders: list[Path]) -> tuple[dict, Path | None]:
    """The first config file found in `folders` (in order), flattened; ({}, None) if none."""
    path = config_file(folders)
    if path is None:
        return {}, None
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise DataError(
            f"{path}: cannot read this config ({str(err).splitlines()[0]}); "
            "fix it or pass --n VALUE"
        ) from None
    return (_flatten(data) if isinstance(data, dict) else {}), path


def _number(cfg: dict, keys) -> float | None:
    for key in keys:
        for k, v in cfg.items():
            if (
                (k == key or k.endswith("." + key))
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
                and v > 0
            ):
                return float(v)
    return None


def param_count(cfg: dict, key: str | None = None) -> float | None:
    """N from a parameter-count key: `key` if given, else the usual names (N_KEYS)."""
    return _number(cfg, (key,) if key else N_KEYS)


def params_from_architecture(cfg: dict) -> float | None:
    """N of a GPT-style decoder with tied embeddings: V*d + L*(4*d^2 + 2*d*d_ff) (biases, norms
    and learned positions left out); None unless width, depth and vocab_size are given."""
    d, layers, vocab = _number(cfg, WIDTH), _number(cfg, DEPTH), _number(cfg, ("vocab_size",))
    if d is None or layers is None or vocab is None:
        return None
    ff = _number(cfg, FFN) or 4 * d
    return vocab * d + layers * (4 * d * d + 2 * d * ff)


def hyperparameters(cfg: dict) -> dict:
    """The config's numeric and string scalars (lr, seed, ...), as columns for --best-over."""
    return {
        k: v for k, v in cfg.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
    }

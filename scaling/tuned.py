"""The tuned file (`scaling tune` writes it, docs/tuning.md) and the rules `train.lr=auto` and
`train.warmup_frac=auto` apply: the contract between the analysis that fits lr*(N) and the
experiment that trains with it, like the run store's between runs and fits."""

from __future__ import annotations

import json
import math
from pathlib import Path

from scaling.errors import ConfigError

N_REF = 1e5  # lr*(N) = coef * (N / N_REF)^exponent: coef is the lr at 100K parameters
FILE_KIND = "scaling-tune"


def read_tuned(path: str | Path) -> dict:
    """The tuned file written by `scaling tune`; ConfigError naming the file if it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        law = data["lr"]
        float(law["coef"]), float(law["exponent"]), float(law["ref"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"train.lr_fit={str(path)!r} is not a file written by `scaling tune` ({err}); "
            "rerun `scaling tune runs/<lr sweep>` or set train.lr_fit='' to use the rule"
        ) from None
    if data.get("kind") != FILE_KIND:
        raise ConfigError(
            f"train.lr_fit={str(path)!r} is not a `scaling tune` file (kind "
            f"{data.get('kind')!r}); point train.lr_fit at the file `scaling tune` wrote"
        )
    return data


def auto_lr(N: float, lr_fit: str, rule_coef: float, rule_exponent: float) -> tuple[float, str]:
    """The peak lr `train.lr=auto` gives a model of N parameters, and where it came from: the law
    in the tuned file `lr_fit` when that file exists, else the rule coef * (N / 1e5)^exponent."""
    if lr_fit and Path(lr_fit).is_file():
        law = read_tuned(lr_fit)["lr"]
        coef, exponent, ref, source = (
            float(law["coef"]),
            float(law["exponent"]),
            float(law["ref"]),
            lr_fit,
        )
    else:
        coef, exponent, ref, source = rule_coef, rule_exponent, N_REF, "rule"
    lr = coef * (N / ref) ** exponent
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(
            f"train.lr=auto gives lr={lr!r} at N={N} from {source}; "
            "check train.lr_fit / train.lr_rule_coef / train.lr_rule_exponent"
        )
    return float(f"{lr:.4g}"), source


def auto_warmup_frac(N: float, D: float, cap: float = 0.5) -> float:
    """`train.warmup_frac=auto`: warm up over N tokens (Porian et al. 2024), at most `cap`."""
    return float(f"{min(cap, N / D):.4g}")

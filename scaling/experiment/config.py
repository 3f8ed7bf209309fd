"""Typed config of a run and its validation: one `Config` (data, model, train, sweep, runs_dir).

The dataclasses are registered with Hydra's ConfigStore as the schema under `conf/config.yaml`,
so an unknown key or a wrongly typed value fails while composing. `resolve_run` then checks
what types cannot (sizes, divisibility, budgets, the data source) and returns a `RunSpec`:
everything a run needs, derived once, before any folder is made or any step is trained.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from scaling import runs, tuned
from scaling.errors import ConfigError
from scaling.experiment.data import DataConfig, as_data_config
from scaling.experiment.models import ModelShape, ParamCounts, param_counts, resolve_shape
from scaling.experiment.trackers import LoggerConfig
from scaling.flops import FLOPS_PER_PARAM_TOKEN

# the repo's top-level conf/, linked as scaling/conf so that the wheel ships it inside the package
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILES = ("auto", "true", "false")
# train keys that change how a run executes, not what it computes: not part of the run id
EXECUTION_KEYS = (
    "tokens",
    "flops",
    "device",
    "precision",
    "compile",
    "threads",
    "checkpoint_every",
    "keep_checkpoint",
    "ensemble",
    "ensemble_max",
)
ENSEMBLES = ("auto", "off")
# train keys that say how lr=auto is resolved: the resolved lr is part of the run id, they are not
AUTO_KEYS = ("lr_fit", "lr_rule_coef", "lr_rule_exponent")


@dataclass
class TrainConfig:
    """Optimisation and execution of one run (defaults: conf/train/default.yaml)."""

    tokens: float | None = 2.0e5  # D: training tokens, rounded to whole steps of batch_size*ctx
    flops: float | None = None  # C: if set (and tokens null), D = C / (6 N)  (isoflop sweeps)
    batch_size: int = 16  # sequences per optimiser step
    lr: Any = 3e-3  # peak learning rate (AdamW), or "auto": from lr_fit, else the rule below
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at exactly D tokens
    warmup_frac: Any = 0.05  # fraction of the steps spent in linear warmup, or "auto": N tokens
    weight_decay: float = 0.1  # AdamW decoupled weight decay on matrices (not LayerNorm)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    seed: int = 0  # fixes the model init and the data order
    n_evals: int = 10  # validation points, log-spaced over the run (the last one at D)
    checkpoint_every: int = 250  # steps between checkpoints (0: never); deleted when the run ends
    keep_checkpoint: bool = False  # keep the final checkpoint (e.g. to continue training later)
    device: str = "auto"  # auto (CUDA if present, else CPU) | cpu | cuda | cuda:<i>
    precision: str = (
        "auto"  # auto (bf16 autocast on CUDA and on CPUs with native bf16) | fp32 | bf16
    )
    compile: str = "auto"  # torch.compile: auto (CUDA, runs of >= 1000 steps) | true | false
    threads: int = 0  # torch.set_num_threads; 0 keeps torch's default
    ensemble: str = "auto"  # sweeps: runs differing only in seed/lr train together | off
    ensemble_max: int = 4  # most runs in one ensemble (memory caps it further)
    lr_fit: str = ""  # lr=auto: the `scaling tune` file to read; "" or no such file: the rule
    lr_rule_coef: float = 3.34e-3  # lr=auto without a tuned file: lr = coef * (N / 1e5)^exponent
    lr_rule_exponent: float = -0.684  # (the fit of runs/reference/lr, docs/tuning.md)


@dataclass
class ProtocolConfig:
    """How runs become (N, D) points (conf/protocol/, docs/study.md): `chinchilla` (default) trains
    one run per (N, D) with the cosine ending at D; `kaplan` ends the schedule at a fixed horizon
    past every run's D, so each intermediate evaluation is an (N, D) point of one run per size."""

    name: str = "chinchilla"  # chinchilla | kaplan
    horizon_tokens: float | None = (
        None  # kaplan: tokens where warmup + cosine end, the same for every run (>= D)
    )


PROTOCOLS = ("chinchilla", "kaplan")


@dataclass
class AdaptiveConfig:
    """Self-centring IsoFLOP budgets (scaling/experiment/adaptive.py); on when `budgets` is set."""

    budgets: list[float] = field(default_factory=list)  # FLOP budgets C, run smallest first
    n_sizes: int = 7  # sizes per budget's first window
    width: float = 10.0  # largest / smallest N of that window
    pilot_N: float | None = None  # first budget's centre (e.g. a fit's N*); null: rule below
    pilot_tokens_per_param: float = 20.0  # first centre without pilot_N: N = sqrt(C / (6 * this))
    slope: float = 0.5  # a in N* ~ C^a, moves the centre while fewer than two budgets are known
    max_extensions: int = 4  # times a budget may add sizes beyond an edge minimum
    seeds: int = 1  # seeds in all at the sizes nearest each budget's N* (1: one seed everywhere)
    seed_sizes: int = 3  # how many sizes nearest N* get them


@dataclass
class SweepConfig:
    """Names the folder runs go to; the grid itself is `hydra.sweeper.params` of the preset."""

    name: str = "quick"  # runs land in <runs_dir>/<name>/<run_id>/
    description: str = ""  # one line shown by `scaling sweep --help`
    report: bool = (
        True  # after the sweep, write its report (scaling.analysis.report); false: runs.csv only
    )
    report_dir: str = ""  # where the report goes; "" = analysis/<name>
    # after training, the task probes (scaling/experiment/tasks.py; needs keep_checkpoint)
    tasks: bool = False
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)  # sweep=isoflop_adaptive


@dataclass
class ModelConfig:
    """The model: a ladder rung (`size`) and any field that overrides it
    (conf/model/transformer.yaml); scaling.experiment.models.resolve_shape turns it into a
    ModelShape."""

    arch: str = "decoder"  # decoder | encoder | encoder_decoder
    size: str | None = None  # a rung of `ladder`, N<count> (e.g. N5e4), or null
    d_model: int | None = None  # null: the rung's
    n_layers: int | None = None
    n_heads: int | None = None
    d_ff: int | None = None  # null: 4 * d_model
    ctx: int = 128  # tokens per training row
    vocab_size: int | None = None  # null: the data's
    attention: str = "auto"  # auto | sdpa | matmul
    mask_fraction: float = 0.15  # encoder: share of positions masked and predicted
    noise_density: float = 0.15  # encoder_decoder: share of positions cut out in spans
    mean_span: float = 3.0  # encoder_decoder: mean span length
    ladder: dict[str, Any] = field(
        default_factory=dict
    )  # rung name -> {d_model, n_layers, n_heads}


@dataclass
class Config:
    """The whole config: conf/config.yaml composes presets of each group onto this schema."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = MISSING  # a ladder rung plus overrides (conf/model/)
    train: TrainConfig = field(default_factory=TrainConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    runs_dir: str = "runs"  # root of the run store, relative to the working directory
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # a tracker mirroring the runs


def register_configs() -> None:
    """Store the schema as `scaling_config` (the first entry of conf/config.yaml's defaults)."""
    ConfigStore.instance().store(name="scaling_config", node=Config)


# ---------------------------------------------------------------- validation and derivation


@dataclass(frozen=True)
class RunSpec:
    """A validated run: its identity, shape, budget and where it lives."""

    run_id: str
    sweep: str
    run_dir: Path
    shape: ModelShape
    counts: ParamCounts
    size: str  # ladder rung name, or "custom"
    data_name: str
    tokens_per_step: int  # batch_size * ctx
    steps: int
    D: int  # training tokens = steps * tokens_per_step
    train: TrainConfig
    protocol: ProtocolConfig
    data: DataConfig
    runs_dir: str
    logger: LoggerConfig
    options: SweepConfig  # the sweep block: report, report_dir, tasks, adaptive
    config: dict  # the resolved config (train.tokens = D), saved as config.yaml; run_id hashes it


def _fail(field_name: str, value: Any, need: str, fix: str) -> NoReturn:
    raise ConfigError(f"{field_name}={value!r} {need}; {fix}")


def _check_train(t: TrainConfig) -> None:
    """The first bad train.* setting, as one line naming it and its fix (ConfigError)."""
    _check_optimiser(t)
    _check_execution(t)
    _check_budget(t)


def _positive(name: str, value: Any, fix: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        _fail(f"train.{name}", value, "must be a positive number", fix)


def _check_optimiser(t: TrainConfig) -> None:
    _positive("batch_size", t.batch_size, "set train.batch_size to a whole number >= 1")
    if t.lr != "auto":
        _positive("lr", t.lr, "set train.lr to a positive learning rate such as 3e-3, or to auto")
    if not 0.0 <= t.min_lr_ratio <= 1.0:
        _fail(
            "train.min_lr_ratio",
            t.min_lr_ratio,
            "must lie in [0, 1]",
            "e.g. train.min_lr_ratio=0.1",
        )
    warmup = t.warmup_frac
    if warmup != "auto" and not (isinstance(warmup, (int, float)) and 0.0 <= warmup < 1.0):
        _fail(
            "train.warmup_frac",
            warmup,
            "must lie in [0, 1) or be auto",
            "e.g. train.warmup_frac=0.05",
        )
    if t.weight_decay < 0:
        _fail("train.weight_decay", t.weight_decay, "must be >= 0", "e.g. train.weight_decay=0.1")
    for name in ("beta1", "beta2"):
        if not 0.0 <= getattr(t, name) < 1.0:
            _fail(f"train.{name}", getattr(t, name), "must lie in [0, 1)", f"e.g. train.{name}=0.9")
    if t.grad_clip < 0:
        _fail(
            "train.grad_clip", t.grad_clip, "must be >= 0", "use 0 to turn clipping off or e.g. 1.0"
        )


def _check_execution(t: TrainConfig) -> None:
    if t.n_evals < 1:
        _fail("train.n_evals", t.n_evals, "must be >= 1", "e.g. train.n_evals=10")
    if t.checkpoint_every < 0:
        _fail(
            "train.checkpoint_every", t.checkpoint_every, "must be >= 0", "use 0 for no checkpoints"
        )
    if t.threads < 0:
        _fail("train.threads", t.threads, "must be >= 0", "use 0 for torch's default")
    if t.seed < 0:
        _fail("train.seed", t.seed, "must be >= 0", "e.g. train.seed=0")
    if not (t.device in DEVICES or re.fullmatch(r"cuda:\d+", t.device)):
        _fail(
            "train.device", t.device, "is unknown", f"choose one of: {', '.join(DEVICES)}, cuda:<i>"
        )
    if str(t.precision).lower() not in PRECISIONS:
        _fail(
            "train.precision", t.precision, "is unknown", f"choose one of: {', '.join(PRECISIONS)}"
        )
    if str(t.ensemble).lower() not in ENSEMBLES:
        _fail("train.ensemble", t.ensemble, "is unknown", f"choose one of: {', '.join(ENSEMBLES)}")
    if t.ensemble_max < 1:
        _fail("train.ensemble_max", t.ensemble_max, "must be >= 1", "e.g. train.ensemble_max=4")
    if str(t.compile).lower() not in COMPILES:
        _fail("train.compile", t.compile, "is unknown", f"choose one of: {', '.join(COMPILES)}")


def _check_budget(t: TrainConfig) -> None:
    if (t.tokens is None) == (t.flops is None):
        _fail(
            "train.tokens",
            t.tokens,
            f"and train.flops={t.flops!r} are both set or both null",
            "set exactly one: train.tokens=<D> or train.tokens=null train.flops=<C>",
        )
    if t.tokens is not None:
        _positive("tokens", t.tokens, "set train.tokens to the number of training tokens, e.g. 2e5")
    if t.flops is not None:
        _positive("flops", t.flops, "set train.flops to the FLOP budget C, e.g. 1e12")


def _check_protocol(p: dict, D: int) -> ProtocolConfig:
    """The protocol block, checked against the run's D (a Kaplan horizon must lie at or past it)."""
    name, horizon = p.get("name"), p.get("horizon_tokens")
    if name not in PROTOCOLS:
        _fail("protocol.name", name, "is unknown", "use protocol=chinchilla or protocol=kaplan")
    if name == "chinchilla" and horizon is not None:
        _fail(
            "protocol.horizon_tokens",
            horizon,
            "is only read by protocol=kaplan (chinchilla's schedule ends at D)",
            "drop it or add protocol=kaplan",
        )
    if name == "kaplan":
        if not (isinstance(horizon, (int, float)) and math.isfinite(horizon) and horizon > 0):
            _fail(
                "protocol.horizon_tokens",
                horizon,
                "must be a positive number of tokens under protocol=kaplan",
                "set it past the longest run, e.g. protocol.horizon_tokens=2e7",
            )
        if horizon < D:
            _fail(
                "protocol.horizon_tokens",
                horizon,
                f"is less than the run's D={D}",
                f"raise it to at least {D} (Kaplan's schedule ends past the data seen)",
            )
    return ProtocolConfig(
        name=str(name), horizon_tokens=None if horizon is None else float(horizon)
    )


@functools.lru_cache(maxsize=8)
def _source(data_json: str, ctx: int) -> Any:
    from scaling.experiment.data import (
        build_source,
    )  # imports torch; the fitting side never calls this

    return build_source(OmegaConf.create(json.loads(data_json)), ctx)


def token_source(cfg: DataConfig | DictConfig | dict, ctx: int) -> Any:
    """The data config's token source (built once per distinct config; sources are pure)."""
    data: Any
    if isinstance(cfg, DataConfig):
        data = dataclasses.asdict(cfg)
    else:
        data = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    return _source(json.dumps(data, sort_keys=True), ctx)


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def _resolve_auto(train: TrainConfig, saved: dict, N: int, D: int) -> TrainConfig:
    """Replace lr=auto and warmup_frac=auto by the numbers they give this model (scaling/tuned.py),
    in the TrainConfig and in `saved` (the config the run stores and hashes)."""
    if train.lr == "auto":
        saved["lr"], _ = tuned.auto_lr(N, train.lr_fit, train.lr_rule_coef, train.lr_rule_exponent)
    if train.warmup_frac == "auto":
        saved["warmup_frac"] = tuned.auto_warmup_frac(N, D)
    return replace(train, lr=saved["lr"], warmup_frac=saved["warmup_frac"])


def resolve_run(cfg: DictConfig) -> RunSpec:
    """Validate a composed config and derive the run (shape, N, D, steps, run id, folder).

    Raises ConfigError naming the field and the fix; touches nothing on disk.
    """
    container = _container(cfg)
    train = TrainConfig(**container["train"])
    _check_train(train)
    _check_device(train.device)
    shape, source = _shape_and_source(container)
    counts = param_counts(shape)
    tokens_per_step = int(train.batch_size) * shape.ctx
    steps = _steps(train, counts.N, tokens_per_step)
    D = steps * tokens_per_step
    protocol = _check_protocol(container.get("protocol") or {"name": "chinchilla"}, D)
    container["train"]["tokens"] = float(D)
    train = _resolve_auto(train, container["train"], counts.N, D)
    size = str(container["model"].get("size") or "custom")
    data_name = str(container["data"].get("name", "data"))
    arch = "" if shape.arch == "decoder" else f"{shape.arch}-"
    kind = "" if protocol.name == "chinchilla" else f"{protocol.name}-"
    readable = f"{kind}{arch}{size}-{data_name}-D{_human(D)}-seed{train.seed}"
    run_id = runs.make_run_id(readable, _identity(container, shape, protocol, data_name, D))
    sweep = str(container["sweep"]["name"])
    return RunSpec(
        run_id=run_id,
        sweep=sweep,
        run_dir=runs.run_dir(container["runs_dir"], sweep, run_id),
        shape=shape,
        counts=counts,
        size=size,
        data_name=data_name,
        tokens_per_step=tokens_per_step,
        steps=steps,
        D=D,
        train=train,
        protocol=protocol,
        data=as_data_config(container["data"]),
        runs_dir=str(container["runs_dir"]),
        logger=LoggerConfig(**(container.get("logger") or {})),
        options=_sweep_config(container["sweep"]),
        config=container,
    )


def _sweep_config(values: dict) -> SweepConfig:
    adaptive = AdaptiveConfig(**(values.get("adaptive") or {}))
    return SweepConfig(**{**values, "adaptive": adaptive})


def _container(cfg: DictConfig) -> dict:
    """The composed config as a plain dict, its sweep name and runs_dir checked."""
    container = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(container, dict) or not {"data", "model", "train", "sweep"} <= set(container):
        raise ConfigError(
            "the config lacks data/model/train/sweep; compose it from conf/config.yaml"
        )
    sweep_name = str(container["sweep"]["name"])
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", sweep_name):
        _fail(
            "sweep.name",
            sweep_name,
            "is not a plain folder name",
            "use letters, digits, '-', '_' or '.'",
        )
    if not str(container.get("runs_dir") or "").strip():
        _fail(
            "runs_dir", container.get("runs_dir"), "is empty", "set runs_dir=runs (or any folder)"
        )
    return container


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            _fail(
                "train.device",
                device,
                "needs CUDA, which is not available here",
                "use train.device=auto or train.device=cpu",
            )


def _shape_and_source(container: dict) -> tuple[ModelShape, Any]:
    """The model's shape, its vocabulary taken from (or checked against) the data's."""
    shape = resolve_shape(container["model"])
    source = token_source(container["data"], shape.ctx)
    if container["model"].get("vocab_size") is None:  # null: the data's vocabulary (bytes: 256)
        shape = dataclasses.replace(shape, vocab_size=source.vocab_size)
    if shape.vocab_size != source.vocab_size:
        _fail(
            "model.vocab_size",
            shape.vocab_size,
            f"differs from the data's vocab_size={source.vocab_size}",
            f"set model.vocab_size={source.vocab_size}",
        )
    return shape, source


def _steps(train: TrainConfig, N: int, tokens_per_step: int) -> int:
    """Optimiser steps of the run: train.tokens, or train.flops / (6 N), in whole batches."""
    value = train.tokens if train.tokens is not None else train.flops  # one is set (_check_train)
    if train.tokens is not None:
        wanted, name = float(train.tokens), "train.tokens"
    else:
        wanted, name = float(value or 0.0) / (FLOPS_PER_PARAM_TOKEN * N), "train.flops"
    if wanted < tokens_per_step:
        _fail(
            name,
            value,
            f"gives D={wanted:.4g} tokens, less than one batch "
            f"(train.batch_size*model.ctx = {train.batch_size}*"
            f"{tokens_per_step // train.batch_size}"
            f" = {tokens_per_step})",
            f"raise {name} or lower train.batch_size",
        )
    return int(round(wanted / tokens_per_step))


def _identity(
    container: dict, shape: ModelShape, protocol: ProtocolConfig, data_name: str, D: int
) -> dict:
    """What the run id hashes: what defines the experiment, as the saved config.yaml states it:
    the data, the model keys (the ladder reduced to the resolved dimensions) and the
    optimisation, seed and D. Execution knobs (device, precision, compile, threads, checkpoints,
    kernel) are left out, so the same experiment on other hardware finds the same run."""
    dims = ("d_model", "n_layers", "n_heads", "ctx", "vocab_size", "d_ff")
    # data.tokens only where it is used, so runs on other data keep the ids they had
    data_id = {k: v for k, v in container["data"].items() if k != "tokens" or data_name == "tokens"}
    identity = {
        "data": data_id,
        "model": {
            **{k: v for k, v in container["model"].items() if k not in ("ladder", "attention")},
            **{k: getattr(shape, k) for k in dims},
        },
        "train": {
            k: v for k, v in container["train"].items() if k not in EXECUTION_KEYS + AUTO_KEYS
        },
        "D": D,
    }
    if protocol.name != "chinchilla":  # the default stays out of the hash: ids do not change
        identity["protocol"] = dataclasses.asdict(protocol)
    return identity


# ---------------------------------------------------------------- composing from overrides

_NOISE = (
    "object_type=",
    "reference_type=",
    "value_type=",
    "full_key:",
    "Config search path",
    "provider=",
    "To append to your config",
)


def _one_line(err: BaseException) -> str:
    """Hydra/OmegaConf errors span several lines (message, full_key, object_type): keep the
    message and the key, on one line."""
    parts, seen = [], set()
    for e in (err, err.__cause__):
        if e is None:
            continue
        for line in str(e).splitlines():
            line = line.strip()
            line = line.replace(
                "add --multirun to your command line", "run it with `scaling sweep`"
            )
            if line and not line.startswith(_NOISE) and line not in seen:
                seen.add(line)
                parts.append(line)
    return " ".join(parts) or type(err).__name__


def compose_all(
    override_lists: list[list[str]], return_hydra_config: bool = False
) -> list[DictConfig]:
    """Compose conf/config.yaml once per list of Hydra overrides (no run folder, no logging).

    A bad override (unknown key, wrong type, missing preset, a sweep list outside a sweep)
    raises ConfigError with Hydra's reason on one line.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None, job_name="scaling"):
            return [
                hydra_compose("config", overrides=list(o), return_hydra_config=return_hydra_config)
                for o in override_lists
            ]
    except (HydraException, OmegaConfBaseException) as err:
        fix = "see --help for the keys and presets"
        if "'hydra/launcher/ray'" in str(err):  # the plugin's own config: the extra is missing
            fix = "the Ray launchers need the [ray] extra: pip install -e '.[ray]'"
        raise ConfigError(f"bad override: {_one_line(err)} ({fix})") from None


def compose(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """The config for one list of overrides (see `compose_all`)."""
    return compose_all([overrides], return_hydra_config)[0]


def split_help(argv: list[str]) -> tuple[list[str], bool]:
    """argv without -h/--help, and whether help was asked for."""
    rest = [a for a in argv if a not in ("-h", "--help")]
    return rest, len(rest) != len(argv)


def config_dir_override(argv: list[str]) -> list[str]:
    """argv with `--config-dir DIR` (a folder of the user's own presets, laid out like conf/) turned
    into Hydra's `hydra.searchpath` override: its presets add to the shipped ones (same-named
    shipped presets win, as Hydra orders its search path)."""
    out, dirs, it = [], [], iter(argv)
    for a in it:
        if a == "--config-dir" or a.startswith("--config-dir="):
            value = a.split("=", 1)[1] if "=" in a else next(it, "")
            path = Path(value).expanduser().resolve()
            if not value or not path.is_dir():
                raise ConfigError(
                    f"--config-dir {value!r}: no such folder; give a folder laid "
                    "out like conf/ (e.g. DIR/sweep/mine.yaml)"
                )
            dirs.append(f"file://{path}")
        else:
            out.append(a)
    return out + ([f"hydra.searchpath=[{','.join(dirs)}]"] if dirs else [])


def _presets() -> dict[str, list[str]]:
    return {
        g.name: sorted(p.stem for p in g.glob("*.yaml"))
        for g in sorted(CONF_DIR.iterdir())
        if g.is_dir() and g.name != "hydra"
    }


def help_text(sweep: bool = False) -> str:
    """The override syntax, the presets of every config group and the composed defaults."""
    lines = [
        "",
        "overrides (Hydra syntax, any number, in any order):",
        "  group=preset      pick a preset file conf/<group>/<preset>.yaml, "
        "e.g. data=stdlib sweep=isoflop",
        "  --config-dir DIR  add your own presets DIR/<group>/<name>.yaml (a new name; start",
        "                    from a shipped one with `defaults: [quick]`)",
        "  key=value         set one field, "
        "e.g. model.size=s4 model.n_layers=4 train.tokens=2e6 train.seed=1",
        "  runs_dir=PATH     root of the run store (default: runs/ under the current directory)",
    ]
    if sweep:
        lines.append(
            "  key=a,b,c         add or replace a grid axis, e.g. train.seed=0,1,2 model.size=s1,s2"
        )
    lines += ["", "presets:"]
    lines += [f"  {group}: {', '.join(names)}" for group, names in _presets().items()]
    lines += ["", "train fields (conf/train/default.yaml):"]
    train_yaml = CONF_DIR / "train" / "default.yaml"
    if train_yaml.is_file():
        lines += [
            "  " + line
            for line in train_yaml.read_text().splitlines()
            if line and not line.startswith("#")
        ]
    base = compose([])
    rungs = []
    for name in base.model.get("ladder") or {}:
        model_cfg = OmegaConf.to_container(base.model, resolve=True)
        assert isinstance(model_cfg, dict)  # conf/model/*.yaml is a mapping
        shape = resolve_shape({**model_cfg, "size": name})
        rungs.append(f"{name} (N={param_counts(shape).N:,})")
    lines += ["", f"model sizes at ctx={base.model.ctx}: {', '.join(rungs)}"]
    lines += [
        "model: pick a rung with model.size=<name> (ladder in conf/model/transformer.yaml) or set",
        "  model.d_model/n_layers/n_heads/ctx directly; "
        "model.attention=auto|sdpa|matmul picks the kernel.",
        "data: data=synthetic (known entropy floor), data=stdlib (Python's own library source),",
        "  data=text data.paths=[file_or_folder,...] (your text files); see conf/data/.",
    ]
    return "\n".join(lines)

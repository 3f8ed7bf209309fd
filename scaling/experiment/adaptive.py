"""IsoFLOP windows that centre themselves (`scaling sweep sweep=isoflop_adaptive`, docs/study.md).

Budgets run smallest first. Each is centred on the N* its predecessors predict (a power law
through their minima; with one, `slope`; with none, `pilot_N` or `pilot_tokens_per_param`),
samples `n_sizes` sizes log-spaced over `width`, and, while its lowest loss sits at the window's
smallest or largest size, adds two sizes beyond that edge at the same spacing, until the minimum
is interior, `max_extensions` is spent, or the sizes run out (the smallest shape, or D under
MIN_STEPS steps): the summary says which. With `seeds` > 1, the `seed_sizes` sizes nearest each
budget's N* then train that many seeds in all (as ensembles), so the fit sees the seed spread where
it decides N*; decisions use the first seed only, so they replay the same with or without them.
Sizes come from the continuous rule (`model.size=N<count>`, scaling/experiment/models/sizing.py);
each budget is an ordinary sweep in <runs_dir>/<name>/C<budget>/, so a rerun skips every finished
run and replays the same decisions.

The planner (everything above `run`) is pure Python on (N, loss) pairs, so tests drive it with
synthetic losses; `run` trains through `scaling.experiment.sweep`.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from scaling.errors import ConfigError
from scaling.flops import FLOPS_PER_PARAM_TOKEN

MIN_STEPS = 10  # a window's largest size still trains this many optimiser steps at the budget
SET_PER_ROUND = (
    "runs_dir",
    "sweep.name",
    "model.size",
    "train.flops",
    "train.tokens",
    "sweep.report",
    "train.lr_fit",
    "train.seed",
)


@dataclass
class Settings:
    """The planner's knobs: sweep.adaptive in the config (AdaptiveConfig in config.py)."""

    budgets: list[float]
    n_sizes: int = 7
    width: float = 10.0
    pilot_N: float | None = None
    pilot_tokens_per_param: float = 20.0
    slope: float = 0.5
    max_extensions: int = 4
    seeds: int = 1
    seed_sizes: int = 3


@dataclass
class BudgetResult:
    """One budget: every (N, loss) it trained, its minimum and how the window got there."""

    C: float
    centre: float
    centre_from: str
    points: dict[float, float] = field(default_factory=dict)
    N_star: float | None = None
    edge: str = ""  # "" (interior) | "small" | "large"
    extensions: int = 0
    note: str = ""
    seeded: list[float] = field(default_factory=list)


def window(centre: float, n_sizes: int, width: float) -> list[float]:
    """`n_sizes` target N log-spaced over a factor `width`, centred (in log) on `centre`."""
    return list(centre * np.geomspace(width**-0.5, width**0.5, n_sizes))


def minimum(points: dict[float, float]) -> tuple[float | None, str]:
    """(N*, edge): the lowest finite loss and, when it is interior, the vertex of the parabola in
    log N through it and its two neighbours; edge "small"/"large" when it is the first/last size."""
    pts = sorted((N, L) for N, L in points.items() if math.isfinite(L))
    if not pts:
        return None, ""
    i = min(range(len(pts)), key=lambda k: pts[k][1])
    if i == 0 or i == len(pts) - 1:
        return pts[i][0], "small" if i == 0 else "large"
    x = np.log([pts[i - 1][0], pts[i][0], pts[i + 1][0]])
    a, b, _ = np.polyfit(x, [pts[i - 1][1], pts[i][1], pts[i + 1][1]], 2)
    return float(np.exp(np.clip(-b / (2 * a), x[0], x[2]))) if a > 0 else pts[i][0], ""


def nearest_sizes(points: dict[float, float], N_star: float, k: int) -> list[float]:
    """The `k` trained sizes nearest N* in log N (those that decide where the minimum sits)."""
    return sorted(sorted(points, key=lambda N: abs(math.log(N / N_star)))[:k])


def predict_centre(C: float, done: list[BudgetResult], s: Settings) -> tuple[float, str]:
    """The N* expected at budget C from the budgets with an interior minimum (module doc)."""
    known = [(b.C, b.N_star) for b in done if b.N_star and not b.edge]
    if len(known) >= 2:
        slope, icpt = np.polyfit(np.log([c for c, _ in known]), np.log([n for _, n in known]), 1)
        how = f"fit of {len(known)} budgets (a = {slope:.2f})"
        return float(np.exp(icpt + slope * math.log(C))), how
    if known:
        ((C0, N0),) = known
        return N0 * (C / C0) ** s.slope, f"budget {C0:.3g} scaled by (C ratio)^{s.slope:g}"
    first = min(s.budgets)
    if s.pilot_N:
        return s.pilot_N * (C / first) ** s.slope, f"pilot N {s.pilot_N:.3g} at {first:.3g}"
    tpp = s.pilot_tokens_per_param
    return math.sqrt(C / (FLOPS_PER_PARAM_TOKEN * tpp)), f"{tpp:g} tokens/param"


def run_budget(
    C: float,
    done: list[BudgetResult],
    s: Settings,
    evaluate: Callable[[float, list[float]], dict[float, float]],
    limits: tuple[float, float],
) -> BudgetResult:
    """Centre, sample and extend one budget. `evaluate(C, targets)` trains the target sizes (or
    finds them trained) and returns their (exact N, loss); `limits` are the smallest and largest
    N that can be trained at C. Only the sizes this plan asks for count, so a rerun replays it."""
    lo, hi = limits
    centre, how = predict_centre(C, done, s)
    result = BudgetResult(C=C, centre=centre, centre_from=how)
    if hi < lo:
        result.note = f"no size fits: the smallest shape trains fewer than {MIN_STEPS} steps"
        return result
    if hi / lo > s.width:  # keep the whole window inside the sizes that can be trained
        result.centre = float(np.clip(centre, lo * s.width**0.5, hi / s.width**0.5))
        targets = window(result.centre, s.n_sizes, s.width)
    else:  # the trainable sizes span less than one window: sample all of them
        result.centre = math.sqrt(lo * hi)
        targets = list(np.geomspace(lo, hi, s.n_sizes))
    result.points = evaluate(C, targets)
    step = s.width ** (1 / max(1, s.n_sizes - 1))
    while True:
        result.N_star, result.edge = minimum(result.points)
        if result.N_star is None:
            result.note = "no run of this budget finished with a finite loss"
        if not result.edge:
            return result
        if result.extensions == s.max_extensions:
            result.note = (
                f"minimum still at the {result.edge} edge after {s.max_extensions} extensions"
            )
            return result
        sizes = sorted(result.points)
        if result.edge == "small":
            more = [t for t in (sizes[0] / step, sizes[0] / step**2) if t >= lo]
            why = f"no smaller shape than N={lo:,.0f}"
        else:
            more = [t for t in (sizes[-1] * step, sizes[-1] * step**2) if t <= hi]
            why = f"a larger size would train fewer than {MIN_STEPS} steps at C={C:.3g}"
        before = set(result.points)
        if more:
            result.points.update(evaluate(C, more))
        if set(result.points) == before:
            result.note = f"minimum at the {result.edge} edge and cannot extend: {why}"
            return result
        result.extensions += 1


def run_budgets(
    s: Settings,
    evaluate: Callable[[float, list[float]], dict[float, float]],
    limits: Callable[[float], tuple[float, float]],
    say: Callable[[str], None] = lambda line: None,
    after: Callable[[list[BudgetResult]], None] = lambda done: None,
    replicate: Callable[[float, list[float]], None] = lambda C, sizes: None,
) -> list[BudgetResult]:
    """Every budget of `s`, smallest first, each centred by the ones before it; `replicate(C,
    sizes)` trains the extra seeds near its N*; `after` gets the budgets done so far after each
    one (to save progress)."""
    done: list[BudgetResult] = []
    for C in sorted(s.budgets):
        result = run_budget(C, done, s, evaluate, limits(C))
        if s.seeds > 1 and result.N_star is not None:
            result.seeded = nearest_sizes(result.points, result.N_star, s.seed_sizes)
            replicate(C, result.seeded)
        done.append(result)
        if result.N_star is None:
            where = "no minimum"
        elif result.edge:
            where = f"lowest loss at the {result.edge} edge"
        else:
            where = f"N* = {result.N_star:,.0f}"
        say(
            f"budget C={C:.3g}: centred on N={result.centre:,.0f} ({result.centre_from}), "
            f"{len(result.points)} sizes, {result.extensions} extension(s): {where}"
            + (f", {s.seeds} seeds at {len(result.seeded)} sizes" if result.seeded else "")
            + (f"; {result.note}" if result.note else "")
        )
        after(done)
    return done


# ---------------------------------------------------------------- training through `scaling sweep`


def settings_of(cfg) -> Settings | None:
    """The adaptive settings of a composed config, or None when sweep.adaptive.budgets is empty."""
    from omegaconf import OmegaConf

    # sweep.adaptive is the AdaptiveConfig node: a mapping of field names
    a = cast("dict[str, Any]", OmegaConf.to_container(cfg.sweep.adaptive, resolve=True))
    if not a.get("budgets"):
        return None
    s = Settings(**a)
    bad = [
        f
        for f, ok in (
            ("budgets", all(c > 0 for c in s.budgets)),
            ("n_sizes", s.n_sizes >= 3),
            ("width", s.width > 1),
            ("pilot_tokens_per_param", s.pilot_tokens_per_param > 0),
            ("max_extensions", s.max_extensions >= 0),
            ("seeds", s.seeds >= 1),
            ("seed_sizes", s.seed_sizes >= 1),
        )
        if not ok
    ]
    if bad:
        raise ConfigError(
            f"sweep.adaptive.{bad[0]}={getattr(s, bad[0])!r} is out of range; budgets > 0, "
            "n_sizes >= 3, width > 1, pilot_tokens_per_param > 0, max_extensions >= 0, seeds >= 1, "
            "seed_sizes >= 1"
        )
    return s


def budget_name(C: float) -> str:
    """The folder of a budget: C1e12, C2.5e12."""
    mantissa, _, exponent = f"{C:.3g}".partition("e")
    return f"C{mantissa}" + (f"e{int(exponent)}" if exponent else "")


class _Budgets:
    """Trains the planner's sizes through `scaling sweep`, one sweep per budget folder."""

    def __init__(self, argv: list[str], cfg) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        from scaling.experiment.config import resolve_run
        from scaling.experiment.models.sizing import smallest_N
        from scaling.experiment.sweep import override_line

        spec = resolve_run(cfg)  # validates the shared settings once; its N and D are not used
        self.root = Path(cfg.runs_dir) / cfg.sweep.name
        model = OmegaConf.to_container(cfg.model, resolve=True)
        assert isinstance(model, dict)  # the model node is a mapping
        self.model = model
        self.seed = int(cfg.train.seed)
        self.lr_fit = spec.train.lr_fit
        self.tokens_per_step = spec.tokens_per_step
        self.smallest = float(smallest_N(self.model))
        self.keep = [
            override_line(o)
            for o in OverridesParser.create().parse_overrides(argv)
            if o.key_or_group not in SET_PER_ROUND
            and not o.key_or_group.startswith("sweep.adaptive")
        ]

    def names(self, targets: list[float]) -> list[str]:
        """The size names (N<exact count>) of the shapes nearest the target N."""
        from scaling.experiment.models import param_counts, resolve_shape

        shapes = (resolve_shape({**self.model, "size": f"N{t:.6g}"}) for t in targets)
        return [f"N{n}" for n in sorted({param_counts(shape).N for shape in shapes})]

    def train(self, C: float, names: list[str], seeds: list[int]) -> None:
        from scaling.experiment import sweep

        sweep.main(
            self.keep
            + [
                f"runs_dir={self.root}",
                f"sweep.name={budget_name(C)}",
                "train.tokens=null",
                f"train.flops={C:g}",
                f"model.size={','.join(names)}",
                f"train.seed={','.join(map(str, seeds))}",
                "sweep.report=false",
                f"train.lr_fit={self.lr_fit}",
                "sweep.adaptive.budgets=[]",
            ]
        )

    def evaluate(self, C: float, targets: list[float]) -> dict[float, float]:
        """(exact N, loss of the first seed; NaN when not ok) of the target sizes at budget C."""
        from scaling import runs

        names = self.names(targets)
        if not names:
            return {}
        self.train(C, names, [self.seed])
        return {
            float(r["N"]): (float(r["loss"]) if r.get("status") == "ok" else math.nan)
            for r in runs.load_results(self.root / budget_name(C))
            if r["size"] in names and int(r["seed"]) == self.seed
        }

    def replicate(self, C: float, sizes: list[float], seeds: int) -> None:
        """The further seeds of the trained sizes `sizes` at budget C."""
        self.train(C, self.names(sizes), list(range(self.seed, self.seed + seeds)))

    def limits(self, C: float) -> tuple[float, float]:
        return self.smallest, C / (FLOPS_PER_PARAM_TOKEN * MIN_STEPS * self.tokens_per_step)


def run(argv: list[str], cfg, reports) -> int:
    """`scaling sweep` of a preset with sweep.adaptive.budgets: every budget as its own sweep of
    sizes named N<count>, then adaptive.json and (`reports`, a scaling.experiment.sweep.Reports) the
    report of the folder of budgets."""
    from scaling import progress, runs
    from scaling.experiment import sweep

    s = settings_of(cfg)
    assert s is not None, "run() is only called for presets with adaptive budgets"
    job = _Budgets(argv, cfg)
    command = "scaling sweep " + shlex.join(argv)
    progress.say(
        f"adaptive IsoFLOP {job.root}: budgets "
        f"{', '.join(f'{c:.3g}' for c in sorted(s.budgets))}, "
        f"{s.n_sizes} sizes over a factor {s.width:g} each"
    )

    def save(results: list[BudgetResult]) -> None:  # after every budget, so a cut study keeps it
        budgets = [
            {**asdict(r), "points": [{"N": n, "loss": v} for n, v in sorted(r.points.items())]}
            for r in results
        ]
        summary = {"settings": asdict(s), "budgets": budgets, "command": command}
        runs.atomic_write_json(job.root / "adaptive.json", summary)

    def replicate(C: float, sizes: list[float]) -> None:
        job.replicate(C, sizes, s.seeds)

    run_budgets(s, job.evaluate, job.limits, progress.say, save, replicate)
    progress.say(f"summary: {job.root / 'adaptive.json'}")
    if cfg.sweep.report and reports.sweep is not None:
        out = Path(cfg.sweep.report_dir or Path("analysis") / cfg.sweep.name)
        reports.sweep(job.root, out, sweep.REPORT_BOOTSTRAP, None, command)
        progress.say(f"report: {out / 'report.md'}")
    return 0

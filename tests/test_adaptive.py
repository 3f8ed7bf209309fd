"""Self-centring IsoFLOP windows and sizes from a continuous rule: on synthetic losses with a known
optimum the windows reach an interior minimum from a start two decades off; an edge that cannot
move says why; `model.size=N<count>` gives the nearest shape at the ladder's aspect ratio; the
adaptive preset runs end to end on tiny models and a rerun trains nothing."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from scaling import runs
from scaling.cli import main as cli_main
from scaling.errors import ConfigError
from scaling.experiment import adaptive
from scaling.experiment.config import compose, resolve_run
from scaling.experiment.models import param_counts

# Chinchilla's fitted law (Hoffmann et al. 2022), whose compute-optimal N is known in closed form
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
BUDGETS = [1e17, 3e17, 1e18, 3e18]


def true_N_star(C: float) -> float:
    G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    return G * (C / 6) ** (BETA / (ALPHA + BETA))


def synthetic(noise: float = 0.0, seed: int = 0):
    """evaluate(C, targets) on L = E + A/N^alpha + B/D^beta (D = C/6N), remembering every point."""
    rng = np.random.default_rng(seed)
    trained: dict[float, dict[float, float]] = {}

    def evaluate(C, targets):
        pts = trained.setdefault(C, {})
        for N in targets:
            pts.setdefault(
                N, E + A / N**ALPHA + B / (C / (6 * N)) ** BETA + noise * rng.standard_normal()
            )
        return {N: pts[N] for N in targets}

    return evaluate, trained


@pytest.mark.parametrize("off", [100.0, 0.01])
def test_windows_reach_an_interior_minimum_from_two_decades_off(off):
    s = adaptive.Settings(budgets=BUDGETS, pilot_N=off * true_N_star(BUDGETS[0]), max_extensions=10)
    evaluate, trained = synthetic()
    results = adaptive.run_budgets(s, evaluate, lambda C: (1.0, 1e15))
    for r in results:
        assert r.edge == "" and r.note == ""
        assert abs(math.log(r.N_star / true_N_star(r.C))) < math.log(1.3)
    assert results[0].extensions >= 3  # the first window had to walk two decades
    assert results[-1].extensions == 0  # later budgets are centred by the earlier ones
    assert all(len(trained[C]) <= 2 * s.n_sizes for C in BUDGETS[1:])


def test_noisy_losses_still_centre_the_later_budgets():
    s = adaptive.Settings(budgets=BUDGETS, pilot_tokens_per_param=2000.0, max_extensions=10)
    evaluate, _ = synthetic(noise=0.002, seed=1)
    results = adaptive.run_budgets(s, evaluate, lambda C: (1.0, 1e15))
    assert all(r.edge == "" for r in results)
    assert all(abs(math.log(r.N_star / true_N_star(r.C))) < math.log(2.0) for r in results)


def test_an_edge_that_cannot_move_says_why():
    C = BUDGETS[0]
    s = adaptive.Settings(budgets=[C], pilot_N=true_N_star(C) * 30)
    evaluate, _ = synthetic()
    (r,) = adaptive.run_budgets(s, evaluate, lambda _: (true_N_star(C) * 3, 1e15))
    assert r.edge == "small" and "cannot extend" in r.note and "smaller shape" in r.note
    s = adaptive.Settings(budgets=[C], pilot_N=true_N_star(C) * 1e4, max_extensions=1)
    (r,) = adaptive.run_budgets(s, evaluate, lambda _: (1.0, 1e15))
    assert r.edge == "small" and r.extensions == 1 and "after 1 extensions" in r.note


def test_a_budget_too_small_for_any_shape_or_a_narrow_range_is_handled():
    evaluate, trained = synthetic()
    s = adaptive.Settings(budgets=[1e17])
    (r,) = adaptive.run_budgets(s, evaluate, lambda C: (1e6, 1e5))
    assert r.N_star is None and "no size fits" in r.note and not trained
    (r,) = adaptive.run_budgets(s, evaluate, lambda C: (1e8, 3e8))  # narrower than one window
    assert min(trained[1e17]) == pytest.approx(1e8) and max(trained[1e17]) == pytest.approx(3e8)


def test_seeds_go_to_the_sizes_nearest_the_minimum_and_leave_decisions_alone():
    evaluate, _ = synthetic()
    asked: list[tuple[float, list[float]]] = []
    plain = adaptive.Settings(budgets=BUDGETS)
    seeded = adaptive.Settings(budgets=BUDGETS, seeds=3, seed_sizes=3)
    without = adaptive.run_budgets(plain, evaluate, lambda C: (1.0, 1e15))
    results = adaptive.run_budgets(
        seeded, evaluate, lambda C: (1.0, 1e15), replicate=lambda C, s: asked.append((C, s))
    )
    assert [b.N_star for b in results] == [b.N_star for b in without]
    assert [C for C, _ in asked] == sorted(BUDGETS)
    for b, (_, sizes) in zip(results, asked):
        assert sizes == b.seeded and len(sizes) == 3 and set(sizes) <= set(b.points)
        others = set(b.points) - set(sizes)  # every size left out lies farther from N* in log N
        far = max(abs(math.log(N / b.N_star)) for N in sizes)
        assert all(abs(math.log(N / b.N_star)) >= far for N in others)
    assert adaptive.nearest_sizes({1.0: 0, 10.0: 0, 100.0: 0}, 8.0, 2) == [1.0, 10.0]


def test_minimum_reads_the_vertex_of_the_local_parabola():
    pts = {N: (math.log(N) - math.log(3e4)) ** 2 for N in (1e4, 2e4, 4e4, 8e4)}
    N_star, edge = adaptive.minimum(pts)
    assert edge == "" and N_star == pytest.approx(3e4, rel=0.02)
    assert adaptive.minimum({1e4: 1.0, 2e4: 2.0, 4e4: 3.0}) == (1e4, "small")
    assert adaptive.budget_name(1e12) == "C1e12" and adaptive.budget_name(2.5e12) == "C2.5e12"


@pytest.mark.parametrize("target", [5e3, 2e4, 5e4, 3e5, 1e6])
def test_size_rule_gives_the_nearest_shape_at_the_ladder_aspect(target):
    spec = resolve_run(compose([f"model.size=N{target:g}"]))
    assert spec.counts.N == param_counts(spec.shape).N
    assert abs(math.log(spec.counts.N / target)) < math.log(1.45)
    if target >= 5e4:  # past the smallest widths the aspect stays near the ladder's 16
        assert 10 <= spec.shape.d_model / spec.shape.n_layers <= 24
    assert spec.shape.d_model % spec.shape.n_heads == 0


def test_size_rule_rejects_a_target_outside_the_shapes():
    with pytest.raises(ConfigError, match="outside the shapes"):
        resolve_run(compose(["model.size=N100"]))
    with pytest.raises(ConfigError, match="N<count>"):
        resolve_run(compose(["model.size=s99"]))


TINY = [
    "model.ctx=16",
    "train.batch_size=4",
    "data.val_tokens=256",
    "train.precision=fp32",
    "train.device=cpu",
    "train.checkpoint_every=0",
    "train.n_evals=2",
    "sweep.report=false",
    "train.lr=3e-3",
]


def test_adaptive_preset_end_to_end_and_rerun_trains_nothing(tmp_path, capsys):
    argv = [
        "sweep",
        "sweep=isoflop_adaptive",
        f"runs_dir={tmp_path}",
        *TINY,
        "sweep.adaptive.budgets=[4e7,8e7]",
        "sweep.adaptive.n_sizes=3",
        "sweep.adaptive.width=3",
        "sweep.adaptive.max_extensions=1",
    ]
    assert cli_main(argv) == 0
    root = tmp_path / "isoflop_adaptive"
    summary = json.loads((root / "adaptive.json").read_text())
    assert [b["C"] for b in summary["budgets"]] == [4e7, 8e7]
    for b, folder in zip(summary["budgets"], ("C4e7", "C8e7")):
        results = runs.load_results(root / folder)
        assert len(results) == len(b["points"]) >= 2
        assert all(r["size"] == f"N{r['N']}" for r in results)  # exact N recorded in the name
        assert b["edge"] == "" or b["note"]  # interior, or it says why not
    capsys.readouterr()
    assert cli_main(argv) == 0
    out = capsys.readouterr()
    counts = re.findall(r"(\d+) to train", out.out + out.err)
    assert counts and set(counts) == {"0"}
    assert json.loads((root / "adaptive.json").read_text())["budgets"] == summary["budgets"]


def test_adaptive_seeds_train_near_the_minimum_and_replay(tmp_path, capsys):
    base = [
        "sweep",
        "sweep=isoflop_adaptive",
        f"runs_dir={tmp_path}",
        *TINY,
        "sweep.adaptive.budgets=[4e7]",
        "sweep.adaptive.n_sizes=3",
        "sweep.adaptive.width=3",
        "sweep.adaptive.max_extensions=0",
    ]
    assert cli_main(base) == 0
    first = json.loads((tmp_path / "isoflop_adaptive" / "adaptive.json").read_text())["budgets"]
    argv = [*base, "sweep.adaptive.seeds=2", "sweep.adaptive.seed_sizes=2"]
    assert cli_main(argv) == 0
    (budget,) = json.loads((tmp_path / "isoflop_adaptive" / "adaptive.json").read_text())["budgets"]
    assert budget["points"] == first[0]["points"]  # the seed-0 runs were found, not retrained
    results = runs.load_results(tmp_path / "isoflop_adaptive" / "C4e7")
    by_seed = {s: sorted(r["N"] for r in results if r["seed"] == s) for s in (0, 1)}
    assert len(by_seed[0]) == len(first[0]["points"])
    assert by_seed[1] == sorted(budget["seeded"]) and len(by_seed[1]) == 2

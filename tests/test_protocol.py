"""Kaplan's protocol against Chinchilla's (conf/protocol/, docs/study.md): the lr schedule, the
evaluation points, curve points for the fit, run ids, and the reference study's presets."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from omegaconf import OmegaConf

from scaling import runs
from scaling.analysis.tables import load_points
from scaling.cli import main as cli_main
from scaling.errors import ConfigError, DataError
from scaling.experiment.config import CONF_DIR, compose, resolve_run
from scaling.experiment.schedule import eval_steps, lr_at, schedule_steps
from scaling.experiment.train import train_run

# ctx 16 x batch 8 = 128 tokens per step; a 1-layer d_model=16 model: well under a second per run
TINY = [
    "model.size=null",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.ctx=16",
    "train.batch_size=8",
    "data.val_tokens=256",
    "train.threads=1",
    "train.precision=fp32",
    "train.compile=false",
    "train.device=cpu",
    "sweep=single",
    "sweep.name=proto",
]
HORIZON = 12800  # 100 steps: past every run below
KAPLAN = ["protocol=kaplan", f"protocol.horizon_tokens={HORIZON}"]


def cfg(root, *extra):
    return compose([f"runs_dir={root}", *TINY, "model.d_model=16", *extra])


@pytest.fixture(scope="module")
def kaplan_sweep(tmp_path_factory):
    """Three Kaplan runs in one sweep folder: d_model 16 at D = 30 and 60 steps, d_model 32 at
    30."""
    root = tmp_path_factory.mktemp("runs")
    configs = [
        cfg(root, *KAPLAN, "train.tokens=3840"),
        cfg(root, *KAPLAN, "train.tokens=7680"),
        cfg(root, *KAPLAN, "train.tokens=3840", "model.d_model=32", "model.n_heads=2"),
    ]
    results = [train_run(c) for c in configs]
    assert [r["status"] for r in results] == ["ok"] * 3
    specs = [resolve_run(c) for c in configs]
    return root / "proto", specs, results


def test_kaplan_schedule_does_not_depend_on_D_and_runs_share_their_prefix(kaplan_sweep):
    folder, (short, long_, _), _ = kaplan_sweep
    assert short.steps == 30 and long_.steps == 60
    assert schedule_steps(short) == schedule_steps(long_) == HORIZON // 128
    t = short.train
    lrs_short = [lr_at(s, schedule_steps(short), t) for s in range(short.steps)]
    assert lrs_short == [lr_at(s, schedule_steps(long_), t) for s in range(short.steps)]
    assert lrs_short[-1] > t.lr * t.min_lr_ratio * 2  # nowhere near the floor at the run's own end
    # same seed, same data order, same lr per step: the shorter run IS the prefix of the longer one
    m_short = {m["step"]: m for m in runs.read_metrics(short.run_dir)}
    m_long = {m["step"]: m for m in runs.read_metrics(long_.run_dir)}
    common = sorted(set(m_short) & set(m_long))
    assert len(common) >= 5
    for s in common:
        assert m_short[s]["lr"] == m_long[s]["lr"]
        assert m_short[s]["loss_val"] == m_long[s]["loss_val"]


def test_chinchilla_cosine_ends_exactly_at_D(tmp_path):
    specs = [resolve_run(cfg(tmp_path, f"train.tokens={d}")) for d in (3840, 7680)]
    for spec in specs:
        t = spec.train
        assert schedule_steps(spec) == spec.steps
        assert lr_at(spec.steps, schedule_steps(spec), t) == pytest.approx(t.lr * t.min_lr_ratio)
    # the schedule follows D: at step 29 the 30-step run is nearly at its floor, the 60-step not
    assert lr_at(29, schedule_steps(specs[0]), specs[0].train) < lr_at(
        29, schedule_steps(specs[1]), specs[1].train
    )


def test_kaplan_runs_log_exactly_the_requested_evaluations(kaplan_sweep):
    _, specs, _ = kaplan_sweep
    for spec in specs:
        assert spec.train.n_evals == 20  # conf/protocol/kaplan.yaml
        steps = [m["step"] for m in runs.read_metrics(spec.run_dir)]
        assert len(steps) == 20 and steps == sorted(set(steps)) and steps[-1] == spec.steps
    for total, n in ((30, 20), (200, 20), (1000, 20), (12, 20), (5000, 7)):
        points = eval_steps(total, n, exact=True)
        assert len(points) == min(n, total) and points == sorted(set(points))
        assert points[-1] == total and points[0] >= 1
    # where no two points collide, the exact points are the default log-spaced ones
    assert eval_steps(1000, 10, exact=True) == eval_steps(1000, 10)


def test_curve_points_turn_every_evaluation_into_an_N_D_C_point(kaplan_sweep):
    folder, specs, results = kaplan_sweep
    pts = load_points(folder, curves_as_points=True)
    assert len(pts) == 3 * 20 and pts.curves is None
    f = pts.frame
    for spec, result in zip(specs, results):
        rows = f[f["run_id"] == spec.run_id].sort_values("D")
        metrics = runs.read_metrics(spec.run_dir)
        assert rows["D"].tolist() == [m["tokens"] for m in metrics]
        assert rows["loss"].tolist() == [m["loss_val"] for m in metrics]
        assert (rows["N"] == result["N"]).all()
        assert rows["C"].to_numpy() == pytest.approx(6.0 * result["N"] * rows["D"].to_numpy())
    # Kaplan's counting: N without embeddings, FLOPs scaled to each evaluation's tokens
    kap = load_points(
        folder, curves_as_points=True, n="N_nonembed", c="C_kaplan", query="D >= 1000"
    )
    assert kap.frame["D"].min() >= 1000 and len(kap) < len(pts)
    r = results[0]
    rows = kap.frame[kap.frame["run_id"] == r["run_id"]]
    assert (rows["N"] == r["N_nonembed"]).all()
    assert rows["C"].to_numpy() == pytest.approx(r["C_kaplan"] * rows["D"].to_numpy() / r["D"])
    # without the option, one point per run (its final loss)
    assert len(load_points(folder)) == 3


def test_curve_points_need_sweep_folders(tmp_path):
    table = tmp_path / "t.csv"
    pd.DataFrame({"N": [1e4, 2e4], "D": [1e5, 1e5], "loss": [3.0, 2.9]}).to_csv(table, index=False)
    with pytest.raises(DataError, match="curve points need sweep folders"):
        load_points(table, curves_as_points=True)


def test_scaling_fit_curve_points(kaplan_sweep, capsys):
    folder, _, _ = kaplan_sweep
    assert (
        cli_main(["fit", str(folder), "--curve-points", "--n", "N_nonembed", "--bootstrap", "0"])
        == 0
    )
    out = capsys.readouterr().out
    assert "== 60 points ==" in out and "N <- N_nonembed" in out


def test_chinchilla_run_id_is_unchanged_and_kaplan_has_its_own(tmp_path):
    base = cfg(tmp_path, "train.tokens=3840")
    spec = resolve_run(base)
    # the committed code composed no protocol block: resolving the config without it is the old id
    without = OmegaConf.to_container(base, resolve=True)
    del without["protocol"]
    assert resolve_run(OmegaConf.create(without)).run_id == spec.run_id
    assert (
        resolve_run(cfg(tmp_path, "train.tokens=3840", "protocol=chinchilla")).run_id == spec.run_id
    )
    assert not any(word in spec.run_id for word in ("protocol", "chinchilla", "kaplan"))
    kaplan = resolve_run(cfg(tmp_path, "train.tokens=3840", *KAPLAN)).run_id
    other_horizon = resolve_run(
        cfg(
            tmp_path,
            "train.tokens=3840",
            "protocol=kaplan",
            f"protocol.horizon_tokens={2 * HORIZON}",
        )
    ).run_id
    assert kaplan.startswith("kaplan-") and len({spec.run_id, kaplan, other_horizon}) == 3


@pytest.mark.parametrize(
    "extra, field",
    [
        (["protocol.name=kaplun"], "protocol.name"),
        (
            ["protocol.horizon_tokens=1e6"],
            "protocol.horizon_tokens",
        ),  # chinchilla ignores it: say so
        (["protocol=kaplan", "protocol.horizon_tokens=1000"], "protocol.horizon_tokens"),  # < D
        (["protocol=kaplan", "protocol.horizon_tokens=null"], "protocol.horizon_tokens"),
    ],
)
def test_bad_protocol_settings_are_named(tmp_path, extra, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        resolve_run(cfg(tmp_path, "train.tokens=3840", *extra))


def test_reference_presets_compose_into_their_designs():
    from scaling.experiment.sweep import plan

    budgets = sorted(
        p.stem.rsplit("_", 1)[1] for p in (CONF_DIR / "sweep").glob("reference_isoflop_*.yaml")
    )
    assert len(budgets) >= 4
    for b in budgets:  # every budget: its own preset and folder, >= 5 sizes, D = C / (6N)
        c = compose([f"sweep=reference_isoflop_{b}"], return_hydra_config=True)
        assert len(str(c.hydra.sweeper.params["model.size"]).split(",")) >= 5
        assert (
            c.train.flops == float(b)
            and c.train.tokens is None
            and c.sweep.name == f"reference_isoflop_{b}"
        )
    grid = compose(["sweep=reference_grid"], return_hydra_config=True)
    axes = {k: str(v).split(",") for k, v in grid.hydra.sweeper.params.items()}
    assert (
        len(axes["model.size"]) >= 5
        and len(axes["train.tokens"]) >= 4
        and grid.protocol.name == "chinchilla"
    )
    kaplan = plan(["sweep=reference_kaplan"])
    assert sorted(s.size for s in kaplan) == sorted(
        axes["model.size"]
    )  # Kaplan's protocol on the same sizes
    assert {s.train.tokens for s in kaplan} == {max(float(d) for d in axes["train.tokens"])}
    assert all(
        s.config["protocol"]["name"] == "kaplan" and s.run_id.startswith("kaplan-") for s in kaplan
    )
    assert all(math.isclose(s.config["protocol"]["horizon_tokens"], 2e7) for s in kaplan)

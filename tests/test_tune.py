"""`scaling tune` and `train.lr=auto`: the lr finder recovers a planted lr*(N) power law within its
interval, flags minima at the sweep's edge, writes the file lr=auto reads, and the lr preset runs
end to end on tiny models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scaling import runs
from scaling.analysis import tune, tunecli
from scaling.cli import main as cli_main
from scaling.errors import ConfigError, FitError
from scaling.experiment.config import compose, resolve_run

COEF, EXPONENT = 5e-3, -0.35  # the planted lr*(N) = COEF * (N / 1e5)^EXPONENT
SIZES = [1e4, 3e4, 1e5, 3e5, 1e6]
LRS = 1e-4 * 2.0 ** np.arange(11)  # 1e-4 .. 0.1


def planted_rows(
    seed: int = 0, noise: float = 0.003, sizes=SIZES, lrs=LRS, batch: int = 16
) -> list[dict]:
    """Runs whose loss is a parabola in log lr around the planted lr*(N), with relative noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, N in enumerate(sizes):
        best = COEF * (N / 1e5) ** EXPONENT
        for lr in lrs:
            loss = 2.0 + 0.5 * (N / 1e4) ** -0.3 + 0.08 * math.log(lr / best) ** 2
            rows.append(
                {
                    "size": f"s{i}",
                    "N": N,
                    "D": 1e6,
                    "C": 6e6 * N,
                    "lr": float(lr),
                    "batch_size": batch,
                    "loss": loss * (1 + noise * rng.standard_normal()),
                }
            )
    return rows


def test_finder_recovers_a_planted_lr_power_law_within_its_interval():
    result = tunecli.tune_runs(planted_rows(), n_boot=400)
    law = result["lr"]
    assert law["exponent_interval"][0] <= EXPONENT <= law["exponent_interval"][1]
    assert law["coef_interval"][0] <= COEF <= law["coef_interval"][1]
    assert abs(law["exponent"] - EXPONENT) < 0.1 and law["sizes_used"] == len(SIZES)
    assert law["exponent_interval"][1] - law["exponent_interval"][0] < 0.3
    covered = [r["lo"] <= COEF * (r["N"] / 1e5) ** EXPONENT <= r["hi"] for r in result["minima"]]
    assert sum(covered) >= len(SIZES) - 1  # 95% intervals: at most one miss in five


def test_more_noise_gives_wider_intervals():
    quiet = tunecli.tune_runs(planted_rows(noise=0.001), n_boot=300)["lr"]["exponent_interval"]
    loud = tunecli.tune_runs(planted_rows(noise=0.02), n_boot=300)["lr"]["exponent_interval"]
    assert loud[1] - loud[0] > quiet[1] - quiet[0]


def test_minimum_at_the_edge_is_flagged_and_left_out_of_the_fit():
    lrs = LRS[
        LRS <= 7e-3
    ]  # the smallest size's best lr (1.1e-2) lies beyond the largest lr sampled
    result = tunecli.tune_runs(planted_rows(lrs=lrs, sizes=[1e4, 3e5, 1e6, 3e6]), n_boot=200)
    edges = {r["N"]: r["edge"] for r in result["minima"]}
    assert edges[1e4] == "high" and edges[1e6] == "" and result["lr"]["sizes_used"] == 3
    with pytest.raises(FitError, match="edge"):
        tunecli.tune_runs(planted_rows(lrs=LRS[LRS <= 1e-3], sizes=[1e4, 1e5, 3e5]), n_boot=50)


def test_too_few_lrs_is_one_clear_error():
    with pytest.raises(FitError, match="3 or more"):
        tune.find_lr_minimum([1e-3, 2e-3, 2e-3], [2.0, 1.9, 1.95])


def test_batch_axis_gives_a_batch_law():
    rows = planted_rows(batch=16) + [
        dict(r, batch_size=32, loss=r["loss"] + 0.01 * (r["N"] > 1e5) - 0.01 * (r["N"] <= 1e5))
        for r in planted_rows(seed=1, batch=32)
    ]
    result = tunecli.tune_runs(rows, n_boot=100)
    points = {p["N"]: p["batch_size"] for p in result["batch"]["points"]}
    assert points[1e4] == 32 and points[1e6] == 16 and result["batch"]["exponent"] < 0
    assert result["lr"]["batch_size"] == 16


def _write_sweep(folder, rows):
    results = [dict(r, run_id=f"r{i}", status="ok") for i, r in enumerate(rows)]
    runs.atomic_write_text(folder / runs.RUNS_CSV, runs.runs_table_text(results))


def test_tune_writes_the_file_lr_auto_reads(tmp_path, capsys):
    _write_sweep(tmp_path / "lr", planted_rows())
    assert (
        cli_main(
            ["tune", str(tmp_path / "lr"), "--bootstrap", "200", "--figures", str(tmp_path / "fig")]
        )
        == 0
    )
    tuned = json.loads((tmp_path / "lr" / "tuned.json").read_text())
    assert tuned["kind"] == "scaling-tune" and len(tuned["minima"]) == len(SIZES)
    assert (tmp_path / "fig" / "lr_curves.png").stat().st_size > 0 and (
        tmp_path / "fig" / "lr_fit.png"
    ).is_file()

    auto = resolve_run(compose([f"runs_dir={tmp_path}", "train.lr=auto", "model.size=s2"]))
    want = tuned["lr"]["coef"] * (auto.counts.N / 1e5) ** tuned["lr"]["exponent"]
    assert (
        auto.train.lr == pytest.approx(want, rel=1e-3)
        and auto.config["train"]["lr"] == auto.train.lr
    )
    explicit = resolve_run(
        compose([f"runs_dir={tmp_path}", f"train.lr={auto.train.lr}", "model.size=s2"])
    )
    assert explicit.run_id == auto.run_id  # the run is defined by the lr it trains with


def test_lr_auto_without_a_file_uses_the_rule_and_a_bad_file_is_one_line(tmp_path):
    spec = resolve_run(
        compose(
            [
                f"runs_dir={tmp_path}",
                "train.lr=auto",
                "model.size=s1",
                "train.lr_rule_coef=4e-3",
                "train.lr_rule_exponent=-0.5",
            ]
        )
    )
    assert spec.train.lr == pytest.approx(4e-3 * (spec.counts.N / 1e5) ** -0.5, rel=1e-3)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="scaling tune") as err:
        resolve_run(compose(["train.lr=auto", f"train.lr_fit={bad}"]))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="train.lr"):
        resolve_run(compose(["train.lr=fast"]))


def test_warmup_auto_is_N_tokens():
    spec = resolve_run(compose(["model.size=s1", "train.tokens=1e6", "train.warmup_frac=auto"]))
    assert spec.train.warmup_frac == pytest.approx(spec.counts.N / spec.D, rel=1e-3)
    assert (
        resolve_run(
            compose(["model.size=s4", "train.tokens=1e5", "train.warmup_frac=auto"])
        ).train.warmup_frac
        == 0.5
    )


TINY = [
    "model.size=null",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.ctx=16",
    "train.batch_size=8",
    "data.val_tokens=256",
    "train.threads=1",
    "train.precision=fp32",
    "train.device=cpu",
    "train.checkpoint_every=0",
    "train.tokens=2560",
    "train.n_evals=2",
]


def test_lr_preset_end_to_end_then_tune_then_auto(tmp_path, capsys):
    argv = [
        "sweep",
        "sweep=lr",
        f"runs_dir={tmp_path}",
        "sweep.report=false",
        *TINY,
        "model.d_model=8,16",
        "train.lr=1e-3,1e-2,1e-1",
    ]
    assert cli_main(argv) == 0
    assert len(runs.load_results(tmp_path / "lr")) == 6
    code = cli_main(["tune", str(tmp_path / "lr"), "--bootstrap", "50"])
    out = capsys.readouterr()
    if code == 0:  # two interior minima: the file is written and lr=auto reads it
        assert (tmp_path / "lr" / "tuned.json").is_file()
        spec = resolve_run(
            compose([f"runs_dir={tmp_path}", "train.lr=auto", *TINY, "model.d_model=16"])
        )
        assert 1e-3 <= spec.train.lr <= 1e-1
    else:  # too few steps for a minimum inside the range: one line naming the edges, no file
        assert code == 2 and "edge" in out.err and not (tmp_path / "lr" / "tuned.json").exists()

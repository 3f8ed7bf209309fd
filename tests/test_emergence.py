"""`scaling emergence`: the abruptness measure, the verdicts, and the figures and statement
from a real (tiny) sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from scaling import runs
from scaling.analysis.emergence import analyse, jump, report
from scaling.cli import main as cli_main


def test_jump_is_one_for_a_step_and_even_for_a_straight_line():
    x = np.array([1e3, 1e4, 1e5, 1e6, 1e7])
    assert jump(x, np.array([0, 0, 0, 1, 1.0]), 0.1).score == 1.0
    line = jump(x, np.array([0, 0.25, 0.5, 0.75, 1.0]), 0.1)
    assert line.score == pytest.approx(0.25) and (line.x0, line.x1) == (1e3, 1e4)
    assert math.isnan(
        jump(x, np.array([0, 0.01, 0, 0.02, 0.01]), 0.1).score
    )  # no real rise: no verdict
    # duplicates (seeds) are averaged and the order of the rows does not matter
    shuffled = jump(np.r_[x, x][::-1], np.r_[[0, 0, 0, 1, 1.0], [0, 0, 0, 1, 1.0]][::-1], 0.1)
    assert shuffled.score == 1.0 and shuffled.x0 == 1e5


def _table(acc_of_logp, logp_of_n):
    """A fake sweep: 6 sizes x 2 budgets, a per-token log p that is linear in log N, and an
    accuracy derived from it."""
    rows = []
    for d in (1e6, 4e6):
        for i, n in enumerate(np.geomspace(1e4, 1e7, 6)):
            lp = logp_of_n(i) + (0.1 if d > 1e6 else 0.0)
            rows.append(
                {
                    "run_id": f"r{i}-{d:g}",
                    "N": n,
                    "D": d,
                    "C": 6 * n * d,
                    "status": "ok",
                    "icl_acc": acc_of_logp(lp),
                    "icl_logp": lp,
                }
            )
    return pd.DataFrame(rows)


def test_exact_match_over_many_tokens_looks_emergent_while_log_p_grows_smoothly():
    # the mirage: a 10-token answer is right with p^10: a smooth per-token log p, a sharp accuracy
    df = _table(lambda lp: math.exp(10 * lp), lambda i: -1.0 + 0.19 * i)
    e = analyse(df)["icl"]
    assert e["acc"]["N"]["score"] > 0.5 and e["cont"]["N"]["score"] < 0.3
    assert e["verdict"] == "emergent-acc-smooth-cont" and "Schaeffer" in e["statement"]
    # one answer token: accuracy follows log p gradually and nothing looks emergent
    e = analyse(_table(lambda lp: math.exp(lp), lambda i: -1.0 + 0.19 * i))["icl"]
    assert e["verdict"] == "gradual"
    # accuracy that jumps from 0 only up to chance is the answer format, not the ability
    df = _table(lambda lp: 0.0 if lp < -0.3 else 0.16, lambda i: -1.0 + 0.19 * i).assign(
        icl_chance=1 / 6
    )
    e = analyse(df)["icl"]
    assert e["verdict"] == "at-chance" and "no better than chance (0.17" in e["statement"]
    assert analyse(df.drop(columns="icl_chance"))["icl"]["verdict"] != "at-chance"
    # a genuine jump in log p itself is reported as sharp under both metrics
    e = analyse(_table(lambda lp: math.exp(10 * lp), lambda i: -1.0 if i < 3 else -0.05))["icl"]
    assert e["verdict"] == "abrupt-both"


# probes shrunk to fit ctx 32; 3 tiny models, 32 steps each (a few seconds per run)
PROBES = [
    "data.synthetic.probes.fraction=0.5",
    "data.synthetic.probes.icl_pairs=3",
    "data.synthetic.probes.icl_queries=3",
    "data.synthetic.probes.value_len=1",
    "data.synthetic.probes.reasoning_symbols=3",
    "data.synthetic.probes.reasoning_steps=2",
    "data.synthetic.probes.reasoning_queries=2",
    "data.synthetic.probes.knowledge_facts=16",
    "data.synthetic.probes.knowledge_key_len=2",
    "data.synthetic.probes.eval_rows=8",
]
TINY = [
    "model.size=null",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.ctx=32",
    "train.batch_size=16",
    "data.val_tokens=512",
    "train.threads=1",
    "train.n_evals=3",
    "train.lr=1e-2",
    "train.tokens=16384",
    "train.device=cpu",
    "train.precision=fp32",
    "train.compile=false",
    "sweep.name=tiny",
    *PROBES,
]
PROBE_KEYS = {
    "icl_acc",
    "icl_logp",
    "reasoning_acc",
    "reasoning_logp",
    "reasoning1_acc",
    "reasoning2_logp",
    "knowledge_acc",
    "knowledge_logp",
    "icl_late_minus_early",
    "induction_loss",
    "induction_acc",
}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    from scaling.experiment.config import compose
    from scaling.experiment.train import (
        train_run,
    )  # the real pipeline: trainer, run store, runs.csv

    root = tmp_path_factory.mktemp("runs")
    for d_model in (8, 16, 24):
        assert (
            train_run(compose([f"runs_dir={root}", *TINY, f"model.d_model={d_model}"]))["status"]
            == "ok"
        )
    return root / "tiny"


def test_a_real_sweep_gives_the_emergence_figures_and_statement(tiny_sweep, tmp_path, capsys):
    table = pd.read_csv(tiny_sweep / runs.RUNS_CSV)
    assert len(table) == 3 and PROBE_KEYS <= set(table.columns)
    for run_id in table["run_id"]:
        metrics = runs.read_metrics(tiny_sweep / run_id)
        assert len(metrics) == 3 and all(PROBE_KEYS <= set(m) for m in metrics)
        # the runs learned the answer format: far above a uniform byte (-5.55), better than at start
        for kind in ("icl", "reasoning", "knowledge"):
            assert metrics[-1][f"{kind}_logp"] > -math.log(256) + 1.0
            assert metrics[-1][f"{kind}_logp"] > metrics[0][f"{kind}_logp"]
    out = tmp_path / "em"
    assert cli_main(["emergence", str(tiny_sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "emergence.json").read_text())
    names = {"icl", "reasoning", "reasoning1", "reasoning2", "knowledge", "induction", "icl_any"}
    assert set(result["abilities"]) == names and result["runs"] == 3
    for name in names:
        png = out / f"emergence_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        entry = result["abilities"][name]
        assert entry["statement"] in (out / "emergence.md").read_text()
        assert entry["statement"].replace("**", "") in printed
    # the N curve of icl log p runs from the smallest to the largest model of the sweep
    icl = result["abilities"]["icl"]["cont"]["N"]
    by_n = table.sort_values("N")["icl_logp"].to_numpy()
    assert (icl["lo"], icl["hi"], icl["n"]) == (pytest.approx(by_n[0]), pytest.approx(by_n[-1]), 3)
    assert (out / "emergence.png").is_file()


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    assert cli_main(["emergence", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere" in err and "\n" not in err
    sweep = tmp_path / "plain"
    sweep.mkdir()
    pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "N": [1e4, 1e5],
            "D": [1e6, 1e6],
            "C": [6e10, 6e11],
            "loss": [2.0, 1.5],
            "status": ["ok", "ok"],
        }
    ).to_csv(sweep / runs.RUNS_CSV, index=False)
    assert cli_main(["emergence", str(sweep)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no probe scores" in err and "\n" not in err


def test_a_score_that_is_nan_in_every_run_is_left_out(tmp_path):
    """A probe longer than the context scores NaN everywhere: the others are still analysed and
    drawn."""
    sweep = tmp_path / "short_ctx"
    sweep.mkdir()
    n = [1e4, 3e4, 1e5]
    pd.DataFrame(
        {
            "run_id": list("abc"),
            "N": n,
            "D": [1e6] * 3,
            "C": [6e10, 1.8e11, 6e11],
            "status": ["ok"] * 3,
            "icl_acc": [math.nan] * 3,
            "icl_logp": [math.nan] * 3,
            "knowledge_acc": [0.0, 0.1, 0.9],
            "knowledge_logp": [-3.0, -2.0, -0.5],
        }
    ).to_csv(sweep / runs.RUNS_CSV, index=False)
    result = report([str(sweep)], tmp_path / "out")
    assert set(result["abilities"]) == {"knowledge"}
    assert (tmp_path / "out" / "emergence_knowledge.png").is_file()

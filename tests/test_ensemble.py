"""Ensembles: members follow their separate runs, resume exactly, diverge alone; sweep grouping."""

from __future__ import annotations

import json

import pytest

from scaling import runs
from scaling.experiment.config import compose, resolve_run
from scaling.experiment.ensemble import AUTO_MAX_PARAMS, plan_ensembles, train_ensemble
from scaling.experiment.train import train_run

# 30 steps of 8 rows x 16 tokens on a 2-layer d_model=16 model: about a second per run
TINY = [
    "model.size=null",
    "model.d_model=16",
    "model.n_layers=2",
    "model.n_heads=2",
    "model.ctx=16",
    "train.batch_size=8",
    "train.tokens=3840",
    "data.val_tokens=256",
    "train.threads=1",
    "train.precision=fp32",
    "train.compile=false",
    "train.device=cpu",
    "sweep=single",
]
MEMBERS = [["train.seed=0"], ["train.seed=1"], ["train.seed=2", "train.lr=1e-3"]]


def cfg(root, *extra):
    return compose([f"runs_dir={root}", *TINY, *extra])


def curve(spec):
    metrics = runs.read_metrics(spec.run_dir)
    return [(m["step"], m["loss_train"], m["loss_val"], m["lr"]) for m in metrics]


def test_members_follow_their_separate_runs_in_fp32(tmp_path):
    together = train_ensemble([cfg(tmp_path / "ens", *m) for m in MEMBERS])
    assert [r["status"] for r in together] == ["ok"] * 3
    for member, extra in zip(together, MEMBERS):
        alone = train_run(cfg(tmp_path / "alone", *extra))
        assert member["run_id"] == alone["run_id"]
        a = resolve_run(cfg(tmp_path / "ens", *extra))
        b = resolve_run(cfg(tmp_path / "alone", *extra))
        ca, cb = curve(a), curve(b)
        assert [c[0] for c in ca] == [c[0] for c in cb] and len(ca) >= 5
        assert [c[3] for c in ca] == [c[3] for c in cb]  # the member's own lr schedule
        for x, y in zip(ca, cb):
            assert x[1:3] == pytest.approx(y[1:3], rel=1e-5, abs=0)
        assert member["loss"] == pytest.approx(alone["loss"], rel=1e-5)
        files = [sorted(p.name for p in run.run_dir.iterdir()) for run in (a, b)]
        assert files[0] == files[1]
    # seeds and lrs matter: the members are not copies of one another
    assert len({r["loss"] for r in together}) == 3
    csv = runs.read_runs_csv(tmp_path / "ens" / "single" / runs.RUNS_CSV)
    assert sorted(r["run_id"] for r in csv) == sorted(r["run_id"] for r in together)


def test_ensemble_resume_from_checkpoints_is_exact(tmp_path, cut_after):
    extra = ["train.checkpoint_every=10"]
    whole = train_ensemble([cfg(tmp_path / "whole", *m, *extra) for m in MEMBERS])
    with cut_after(20):
        train_ensemble([cfg(tmp_path / "cut", *m, *extra) for m in MEMBERS])
    resumed = train_ensemble([cfg(tmp_path / "cut", *m, *extra) for m in MEMBERS])
    assert [r["resumed_from_step"] for r in resumed] == [20] * 3
    for a, b in zip(whole, resumed):
        assert a["loss"] == b["loss"] and a["loss_train"] == b["loss_train"]  # bit for bit
    # a member's checkpoint is a separate run's: one run cut in an ensemble resumes alone
    with cut_after(20):
        train_run(cfg(tmp_path / "mixed", *MEMBERS[0], *extra))
    mixed = train_ensemble([cfg(tmp_path / "mixed", *m, *extra) for m in MEMBERS])
    assert mixed[0]["resumed_from_step"] == 20 and mixed[0]["loss"] == whole[0]["loss"]
    assert [r["loss"] for r in mixed[1:]] == pytest.approx([r["loss"] for r in whole[1:]], rel=1e-5)


def test_a_diverging_member_is_marked_and_the_others_finish(tmp_path):
    members = [["train.seed=0"], ["train.seed=1", "train.lr=1e6"], ["train.seed=2"]]
    results = train_ensemble([cfg(tmp_path, *m) for m in members])
    assert [r["status"] for r in results] == ["ok", "diverged", "ok"]
    alone = train_run(cfg(tmp_path / "alone", "train.seed=2"))
    assert results[2]["loss"] == pytest.approx(alone["loss"], rel=1e-5)
    folder = resolve_run(cfg(tmp_path, *members[1])).run_dir
    diverged = json.loads((folder / runs.RESULT).read_text())
    assert diverged["status"] == "diverged" and diverged["loss"] is None


def test_finished_and_claimed_members_are_left_alone(tmp_path):
    first = train_run(cfg(tmp_path, *MEMBERS[0]))
    lock = runs.claim(resolve_run(cfg(tmp_path, *MEMBERS[1])).run_dir)
    try:
        results = train_ensemble([cfg(tmp_path, *m) for m in MEMBERS])
    finally:
        lock.release(unlink=True)
    assert [r["status"] for r in results] == ["skipped", "busy", "ok"]
    assert results[0]["loss"] == first["loss"]


def test_plan_groups_runs_differing_only_in_seed_or_lr(tmp_path):
    specs = [resolve_run(cfg(tmp_path, *m, "train.ensemble_max=3")) for m in MEMBERS]
    other = resolve_run(cfg(tmp_path, "model.n_layers=1", "model.n_heads=1"))
    encoder = resolve_run(cfg(tmp_path, "model.arch=encoder"))
    jobs = plan_ensembles([specs[0], other, specs[1], encoder, specs[2]])
    assert [[s.run_id for s in job] for job in jobs] == [
        [specs[0].run_id, specs[1].run_id, specs[2].run_id],
        [other.run_id],
        [encoder.run_id],
    ]
    capped = plan_ensembles(
        [resolve_run(cfg(tmp_path, *m, "train.ensemble_max=2")) for m in MEMBERS]
    )
    default = plan_ensembles([resolve_run(cfg(tmp_path, *m)) for m in MEMBERS])  # cap 4
    big = [
        resolve_run(cfg(tmp_path, "model.d_model=64", f"train.seed={seed}")) for seed in (0, 1)
    ]  # N > AUTO_MAX_PARAMS: auto finds it too large to gain
    assert all(s.counts.N > AUTO_MAX_PARAMS for s in big)
    assert [len(j) for j in plan_ensembles(big)] == [1, 1]
    assert [len(j) for j in capped] == [2, 1] and [len(j) for j in default] == [3]
    off = plan_ensembles([resolve_run(cfg(tmp_path, *m, "train.ensemble=off")) for m in MEMBERS])
    assert [len(j) for j in off] == [1, 1, 1]


SWEEP = [
    "sweep.name=seeds",
    "model.d_model=16,32",
    "train.seed=0,1,2",
    "train.ensemble_max=3",
    "sweep.report=false",
    "train.checkpoint_every=0",
]


def test_a_seed_sweep_trains_ensembles_as_joblib_jobs_like_separate_runs(
    tmp_path, capsys, monkeypatch
):
    from scaling.cli import main as cli_main

    monkeypatch.chdir(tmp_path)
    tiny = [a for a in TINY if a not in ("sweep=single",)]
    argv = ["sweep", *tiny, *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    assert cli_main([*argv, f"runs_dir={tmp_path / 'ens'}"]) == 0
    assert "6 runs train in 2 ensemble(s)" in capsys.readouterr().out
    assert cli_main([*argv, f"runs_dir={tmp_path / 'off'}", "train.ensemble=off"]) == 0
    assert "ensemble" not in capsys.readouterr().out

    def table(root):
        rows = runs.read_runs_csv(tmp_path / root / "seeds" / runs.RUNS_CSV)
        return {r["run_id"]: r for r in rows}

    together, alone = table("ens"), table("off")
    assert len(together) == 6 and set(together) == set(alone)
    for run_id, row in together.items():
        assert row["status"] == "ok"
        assert float(row["loss"]) == pytest.approx(float(alone[run_id]["loss"]), rel=1e-5)

    victim = sorted(together)[0]  # an interrupted sweep: only the missing run trains, alone
    (tmp_path / "ens" / "seeds" / victim / runs.RESULT).unlink()
    assert cli_main([*argv, f"runs_dir={tmp_path / 'ens'}"]) == 0
    out = capsys.readouterr().out
    assert "5 finished, 1 to train" in out and "ensemble" not in out
    redone = table("ens")
    assert float(redone[victim]["loss"]) == pytest.approx(float(alone[victim]["loss"]), rel=1e-5)


def test_a_seed_sweep_stopped_by_sigterm_resumes_every_member_exactly(tmp_path, slow_steps):
    import os
    import signal
    import subprocess
    import sys
    import time

    argv = [
        *[a for a in TINY if a != "sweep=single"],
        "sweep.name=seeds",
        "train.seed=0,1,2",
        "train.ensemble_max=3",
        "sweep.report=false",
        "train.checkpoint_every=0",
        "train.tokens=7680",
    ]  # 60 steps
    whole = train_ensemble(
        [
            cfg(tmp_path / "whole", *m, "train.tokens=7680")
            for m in (["train.seed=0"], ["train.seed=1"], ["train.seed=2"])
        ]
    )
    folder = tmp_path / "cut" / "seeds"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **slow_steps(0.05)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaling.cli", "sweep", *argv, f"runs_dir={tmp_path / 'cut'}"],
        env=env,
        text=True,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while len(list(folder.glob(f"*/{runs.METRICS}"))) < 3:  # every member has logged a point
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert len(list(folder.glob(f"*/{runs.CHECKPOINT}"))) == 3 and not runs.load_results(folder)
    resumed = {
        r["run_id"]: r
        for r in train_ensemble(
            [
                compose(
                    [
                        *[a for a in argv if a != "train.seed=0,1,2"],
                        f"runs_dir={tmp_path / 'cut'}",
                        f"train.seed={seed}",
                    ]
                )
                for seed in range(3)
            ]
        )
    }
    for result in whole:
        again = resumed[result["run_id"]]
        assert 0 < again["resumed_from_step"] < 60 and again["loss"] == result["loss"]

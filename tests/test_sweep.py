"""`scaling sweep`: presets span the grid they promise, a sweep trains every point once, a rerun
trains nothing, an interrupted sweep trains only what is missing, and Hydra's own folders stay
inside the run store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny import TINY_MODEL

from scaling import runs
from scaling.cli import main as cli_main
from scaling.errors import ConfigError
from scaling.experiment.sweep import grid_overrides, plan

TINY = [
    *TINY_MODEL,
    "data.val_tokens=256",
    "train.threads=1",
    "train.precision=fp32",
    "train.device=cpu",
    "train.checkpoint_every=0",
]
GRID = ["sweep.name=tiny", "model.d_model=16,32", "train.tokens=1280,2560"]


def test_quick_preset_spans_8x_in_N_and_D(tmp_path):
    specs = plan([f"runs_dir={tmp_path}"])
    Ns = {s.counts.N for s in specs}
    Ds = {s.D for s in specs}
    assert len(specs) >= 16 and len({s.run_id for s in specs}) == len(specs)
    assert max(Ns) / min(Ns) >= 8 and max(Ds) / min(Ds) >= 8
    assert {s.sweep for s in specs} == {"quick"} and not tmp_path.joinpath("quick").exists()


def test_isoflop_preset_trains_each_size_on_C_over_6N(tmp_path):
    specs = plan([f"runs_dir={tmp_path}", "sweep=isoflop"])
    budgets = {s.train.flops for s in specs}
    assert len(budgets) >= 3 and len({s.counts.N for s in specs}) >= 5
    for s in specs:
        assert s.train.tokens is None
        assert abs(6 * s.counts.N * s.D - s.train.flops) <= 6 * s.counts.N * s.tokens_per_step / 2


def test_grid_preset_is_a_full_product(tmp_path):
    specs = plan([f"runs_dir={tmp_path}", "sweep=grid"])
    Ns, Ds = {s.counts.N for s in specs}, {s.D for s in specs}
    assert len(specs) == len(Ns) * len(Ds) and len(Ns) >= 4 and len(Ds) >= 3


def test_a_preset_without_a_grid_is_one_run_and_takes_command_line_axes(tmp_path):
    assert grid_overrides(["sweep=single"]) == [["sweep=single"]]
    specs = plan(["sweep=single", f"runs_dir={tmp_path}", *TINY, "train.seed=0,1"])
    assert sorted(s.train.seed for s in specs) == [0, 1]
    assert {s.run_dir.parent.name for s in specs} == {"single"}


def test_command_line_axes_add_to_or_replace_the_preset():
    jobs = grid_overrides(["model.size=s1,s2", "train.seed=0,1"])
    assert len(jobs) == 2 * 4 * 2  # size replaced (2), the preset's tokens kept (4), seed added (2)
    assert all(any(o.startswith("model.size=") for o in job) for job in jobs)


def test_one_bad_grid_point_stops_the_sweep_before_training(tmp_path, capsys):
    rc = cli_main(["sweep", f"runs_dir={tmp_path}", *TINY, *GRID, "model.n_heads=1,3"])
    err = capsys.readouterr().err
    assert (
        rc == 2
        and "does not divide" in err
        and "grid point" in err
        and len(err.strip().splitlines()) == 1
    )
    assert not tmp_path.joinpath("tiny").exists()
    with pytest.raises(ConfigError):
        plan([f"runs_dir={tmp_path}", *TINY, *GRID, "model.n_heads=1,3"])


def _mtimes(folder):
    return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("*/result.json")}


def test_sweep_trains_all_then_nothing_then_only_what_is_missing(tmp_path, capsys, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    argv = ["sweep", f"runs_dir={tmp_path / 'runs'}", *TINY, *GRID, "sweep.report=false"]
    assert cli_main(argv) == 0
    folder = tmp_path / "runs" / "tiny"
    rows = runs.read_runs_csv(folder / "runs.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert len({r["N"] for r in rows}) == 2 and len({r["D"] for r in rows}) == 2
    assert os.listdir(cwd) == []  # no outputs/ or multirun/ from Hydra in the working directory
    first = _mtimes(folder)
    out, err = capsys.readouterr()
    assert (
        "%|" not in out + err and out.count(": ok ") == 4
    )  # one line per run, no bars off a terminal

    assert cli_main(argv) == 0  # a finished sweep: nothing trains, the skipped runs are named
    out, err = capsys.readouterr()
    assert "%|" not in out + err  # no progress bars when the output is not a terminal
    assert "4 finished, 0 to train" in out and all(rid in out for rid in first)
    assert _mtimes(folder) == first

    victim = sorted(first)[0]  # simulate an interruption: one run never finished
    (folder / victim / runs.RESULT).unlink()
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "3 finished, 1 to train" in out
    after = _mtimes(folder)
    assert {k for k in after if after[k] != first.get(k)} == {victim}
    assert len(runs.read_runs_csv(folder / "runs.csv")) == 4


def test_a_diverged_run_does_not_stop_the_sweep(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [
        "sweep",
        f"runs_dir={tmp_path}",
        *TINY,
        "sweep.name=div",
        "train.tokens=1280",
        "train.grad_clip=0",
        "train.warmup_frac=0",
        "train.lr=3e-3,1e6",
        "sweep.report=false",
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert ": diverged " in out and ": ok " in out
    assert "run_id " not in out  # sweep.report=false: runs.csv only, no table
    statuses = sorted(r["status"] for r in runs.read_runs_csv(tmp_path / "div" / "runs.csv"))
    assert statuses == ["diverged", "ok"]
    assert not (tmp_path / "analysis").exists()  # sweep.report=false: no report either


def test_a_sweep_ends_by_writing_its_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # encoder runs carry no probe scores: the report is the fits and figures alone (faster)
    argv = ["sweep", f"runs_dir={tmp_path / 'runs'}", *TINY, *GRID, "model.arch=encoder"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    report = tmp_path / "analysis" / "tiny" / "report.md"
    assert f"report: {Path('analysis') / 'tiny' / 'report.md'}" in out
    text = report.read_text()
    assert (
        "comparison.png" in text and "scaling sweep " + " ".join(argv[1:3]) in text
    )  # provenance: the command
    assert (tmp_path / "analysis" / "tiny" / "comparison.png").is_file()
    assert len(runs.read_runs_csv(tmp_path / "runs" / "tiny" / "runs.csv")) == 4
    # elsewhere on request; a finished sweep is reported again without training
    assert cli_main([*argv, f"sweep.report_dir={tmp_path / 'elsewhere'}"]) == 0
    assert (
        "0 to train" in capsys.readouterr().out and (tmp_path / "elsewhere" / "report.md").is_file()
    )


def test_a_sweep_whose_data_cannot_be_fitted_warns_and_keeps_runs_csv(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    argv = [
        "sweep",
        f"runs_dir={tmp_path / 'runs'}",
        *TINY,
        "sweep.name=one",
        "model.arch=encoder",
        "train.tokens=1280,2560",
    ]  # 2 runs of one size: too few for any law
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith("warning: no report written")]
    assert (
        len(warning) == 1 and "only 2 point(s)" in warning[0]
    )  # the fit's own reason, on one line
    assert len(runs.read_runs_csv(tmp_path / "runs" / "one" / "runs.csv")) == 2
    assert not (tmp_path / "analysis").exists()


def test_launcher_threads_share_the_cores_between_parallel_runs():
    from scaling.experiment.config import compose
    from scaling.experiment.sweep import launcher_threads

    def launcher(*overrides):
        return compose(list(overrides), return_hydra_config=True).hydra.launcher

    assert (
        launcher_threads(launcher(), 16, cores=8) is None
    )  # basic launcher: one run at a time, in-process
    assert (
        launcher_threads(launcher("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), 16, cores=8)
        == 4
    )
    assert (
        launcher_threads(launcher("hydra/launcher=joblib"), 16, cores=8) == 1
    )  # n_jobs=-1: one per core
    assert (
        launcher_threads(launcher("hydra/launcher=joblib", "hydra.launcher.n_jobs=-2"), 16, cores=8)
        == 1
    )
    assert (
        launcher_threads(launcher("hydra/launcher=joblib", "hydra.launcher.n_jobs=4"), 2, cores=8)
        == 4
    )  # 2 runs
    assert (
        launcher_threads(launcher("hydra/launcher=submitit_local"), 4, cores=8) == 2
    )  # all jobs at once
    assert (
        launcher_threads(
            launcher("hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=6"), 16, cores=2
        )
        == 6
    )
    assert launcher_threads(launcher("hydra/launcher=submitit_slurm"), 16, cores=64) == 1
    slurm = launcher(
        "hydra/launcher=slurm", "hydra.launcher.partition=cpu"
    )  # our preset, on the plugin's schema
    assert (
        slurm._target_.endswith("SlurmLauncher")
        and slurm.partition == "cpu"
        and slurm.max_num_timeout > 0
    )
    assert launcher_threads(slurm, 16, cores=2) == slurm.cpus_per_task
    ray = {
        "_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
        "ray": {"remote": {"num_cpus": 3}},
    }
    assert launcher_threads(ray, 16, cores=2) == 3


def test_a_sweep_over_architectures_is_reported_one_family_at_a_time(tmp_path):
    """Three objectives are three losses: the sweep's report fits each arch on its own."""
    from scaling.experiment.sweep import report_group

    folder = tmp_path / "arch"
    runs.atomic_write_text(
        folder / runs.RUNS_CSV, "run_id,arch,status\nr0,decoder,ok\nr1,encoder,ok\n"
    )
    assert report_group(folder) == "arch"
    runs.atomic_write_text(
        folder / runs.RUNS_CSV, "run_id,arch,status\nr0,decoder,ok\nr1,decoder,ok\n"
    )
    assert report_group(folder) is None

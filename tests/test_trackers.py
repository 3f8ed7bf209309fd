"""logger=tensorboard|mlflow|wandb: each run's metrics and config are mirrored to the tracker and
read back through that tracker's own reader; runs/ is unchanged and stays the source of truth."""

from __future__ import annotations

import pytest
from tiny import TINY_MODEL

from scaling import runs
from scaling.errors import ConfigError
from scaling.experiment.config import compose
from scaling.experiment.train import train_run

TINY = [
    *TINY_MODEL,
    "train.tokens=2048",
    "data.val_tokens=256",
    "train.threads=1",
    "train.n_evals=3",
    "sweep=single",
]


def train(tmp_path, *extra):
    result = train_run(compose([f"runs_dir={tmp_path / 'runs'}", *TINY, *extra]))
    run_dir = runs.run_dir(tmp_path / "runs", "single", result["run_id"])
    return result, run_dir, runs.read_metrics(run_dir)


def test_tensorboard_mirror_reads_back_with_its_reader(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, run_dir, metrics = train(tmp_path, "logger=tensorboard")
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    got = [(e.step, e.value) for e in acc.Scalars("loss_val")]
    assert got == [(m["step"], pytest.approx(m["loss_val"], rel=1e-6)) for m in metrics]
    assert "tokens" in acc.Tags()["scalars"] and result["status"] == "ok"


def test_mlflow_mirror_reads_back_through_its_client(tmp_path):
    import mlflow

    result, _, metrics = train(tmp_path, "logger=mlflow")
    client = mlflow.MlflowClient(tracking_uri=f"file:{tmp_path / 'runs' / 'mlruns'}")
    (run,) = client.search_runs([client.get_experiment_by_name("single").experiment_id])
    assert run.info.run_name == result["run_id"] and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "loss_val")
    assert [(h.step, h.value) for h in history] == [
        (m["step"], pytest.approx(m["loss_val"])) for m in metrics
    ]
    assert run.data.params["model/d_model"] == "16" and run.data.metrics[
        "final/loss"
    ] == pytest.approx(result["loss"])


def test_wandb_offline_mirror_writes_its_files(tmp_path):
    """W&B 0.31 keeps an offline run in one record file for `wandb sync` and ships no reader for
    it: check the file's magic and that the run name, config and metric keys are in it."""
    result, _, metrics = train(tmp_path, "logger=wandb")
    (run_dir,) = (tmp_path / "runs" / "wandb").glob("offline-run-*")
    (record,) = run_dir.glob("run-*.wandb")
    data = record.read_bytes()
    assert data.startswith(b":W&B") and result["run_id"].encode() in data
    assert all(key.encode() in data for key in ("loss_val", "tokens", "model/d_model"))
    assert len(metrics) == 3


def test_unknown_logger_stops_before_training(tmp_path):
    with pytest.raises(
        ConfigError, match=r"logger='comet': choose one of none, tensorboard, mlflow, wandb"
    ):
        train(tmp_path, "logger.name=comet")
    assert not list((tmp_path / "runs").glob("single/*/metrics.jsonl"))


def test_every_ensemble_member_is_mirrored_like_a_separate_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from scaling.experiment.ensemble import train_ensemble

    root = tmp_path / "runs"
    cfgs = [
        compose([f"runs_dir={root}", *TINY, "logger=tensorboard", f"train.seed={s}"])
        for s in (0, 1)
    ]
    results = train_ensemble(cfgs)
    for result in results:
        run_dir = runs.run_dir(root, "single", result["run_id"])
        acc = EventAccumulator(str(run_dir / "tensorboard"))
        acc.Reload()
        logged = [(e.step, e.value) for e in acc.Scalars("loss_val")]
        metrics = runs.read_metrics(run_dir)
        assert logged == [(m["step"], pytest.approx(m["loss_val"], rel=1e-6)) for m in metrics]

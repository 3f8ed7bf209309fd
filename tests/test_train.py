"""One run: schedule, evaluation points, determinism, exact resume, divergence, logs, claims."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys

import pytest
import torch
from tiny import TINY_MODEL

from scaling import runs
from scaling.cli import main as cli_main
from scaling.experiment.config import TrainConfig, compose, resolve_run
from scaling.experiment.schedule import eval_steps, lr_at
from scaling.experiment.train import train_run

# 30 steps of 8 rows x 16 tokens on a 1-layer d_model=16 model: well under a second per run
TINY = [
    *TINY_MODEL,
    "train.tokens=3840",
    "data.val_tokens=256",
    "train.threads=1",
    "train.precision=fp32",
    "train.compile=false",
    "train.device=cpu",
    "sweep=single",
]


def cfg(root, *extra):
    return compose([f"runs_dir={root}", *TINY, *extra])


def test_schedule_warms_up_linearly_then_cosine_decays_to_the_floor_at_D():
    t = TrainConfig(lr=1.0, min_lr_ratio=0.1, warmup_frac=0.1)
    steps = 100
    lrs = [lr_at(s, steps, t) for s in range(steps)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # linear warmup to the peak
    assert lrs[10] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:]))  # strictly decreasing after warmup
    assert lr_at(steps, steps, t) == pytest.approx(0.1)  # the floor is reached exactly at D
    assert lrs[-1] > 0.1
    # a longer run stretches the same cosine: the schedule follows the run's own D
    assert lr_at(100, 200, t) == pytest.approx(lr_at(50, 100, t), rel=0.02)


def test_eval_points_are_about_ten_log_spaced_and_end_at_D():
    points = eval_steps(1000, 10)
    assert points[-1] == 1000 and len(points) == 10 and points[0] == 10
    ratios = [b / a for a, b in zip(points, points[1:])]
    assert max(ratios) / min(ratios) < 1.1  # equal ratios: log-spaced
    assert eval_steps(3, 10) == [1, 2, 3]
    assert eval_steps(50, 1) == [50]


def test_run_writes_config_metrics_result_and_csv(tmp_path):
    result = train_run(cfg(tmp_path))
    spec = resolve_run(cfg(tmp_path))
    assert result["status"] == "ok" and result["run_id"] == spec.run_id
    folder = spec.run_dir
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.yaml",
        "metrics.jsonl",
        "result.json",
    ]
    metrics = runs.read_metrics(folder)
    assert [m["step"] for m in metrics] == eval_steps(spec.steps, 10)
    for m in metrics:
        assert {"step", "tokens", "flops", "loss_train", "loss_val", "lr", "wall_s"} <= set(m)
        assert m["tokens"] == m["step"] * 128 and m["flops"] == 6.0 * result["N"] * m["tokens"]
    assert metrics[-1]["tokens"] == result["D"] == 3840
    assert metrics[-1]["loss_val"] == result["loss"]
    assert metrics[-1]["loss_val"] < metrics[0]["loss_val"]  # it learned something
    assert result["loss"] > result["entropy_floor"] > 0  # no model beats the true distribution
    assert result["C"] == result["C_6ND"] == 6.0 * result["N"] * result["D"]
    assert json.loads((folder / "result.json").read_text())["loss"] == result["loss"]
    assert "tokens: 3840.0" in (folder / "config.yaml").read_text()
    rows = runs.read_runs_csv(tmp_path / "single" / "runs.csv")
    assert len(rows) == 1 and rows[0]["run_id"] == spec.run_id and rows[0]["status"] == "ok"
    assert "epochs" not in rows[0] and "unique_tokens" not in result  # synthetic: never repeats


def test_a_stdlib_run_past_one_epoch_records_its_epochs(tmp_path):
    """A finite source repeats its tokens: the result and runs.csv say how often (D / U_D)."""
    result = train_run(cfg(tmp_path, "data=stdlib", "data.max_bytes=3000", "data.val_fraction=0.3"))
    assert 0 < result["unique_tokens"] < result["D"] == 3840
    assert result["epochs"] == result["D"] / result["unique_tokens"] > 1
    row = runs.read_runs_csv(tmp_path / "single" / "runs.csv")[0]
    assert float(row["epochs"]) == result["epochs"]
    assert int(row["unique_tokens"]) == result["unique_tokens"]


def test_same_seed_same_loss_other_seed_other_loss(tmp_path):
    a = train_run(cfg(tmp_path / "a"))
    b = train_run(cfg(tmp_path / "b"))
    c = train_run(cfg(tmp_path / "c", "train.seed=1"))
    assert a["loss"] == b["loss"] and a["loss_train"] == b["loss_train"]
    assert c["loss"] != a["loss"]


def test_finished_run_is_skipped(tmp_path):
    first = train_run(cfg(tmp_path))
    result_file = resolve_run(cfg(tmp_path)).run_dir / runs.RESULT
    stamp = result_file.stat().st_mtime_ns
    again = train_run(cfg(tmp_path))
    assert again["status"] == "skipped" and again["loss"] == first["loss"]
    assert result_file.stat().st_mtime_ns == stamp


def test_resume_from_checkpoint_ends_with_exactly_the_uninterrupted_loss(tmp_path, cut_after):
    whole = train_run(cfg(tmp_path / "whole"))
    interrupted = cfg(tmp_path / "cut", "train.checkpoint_every=5")
    with cut_after(13):  # dies after step 13; last checkpoint at 10
        train_run(interrupted)
    folder = resolve_run(interrupted).run_dir
    assert (folder / runs.CHECKPOINT).is_file() and not runs.is_finished(folder)
    resumed = train_run(interrupted)
    assert resumed["status"] == "ok" and resumed["resumed_from_step"] == 10
    assert resumed["loss"] == whole["loss"] and resumed["loss_train"] == whole["loss_train"]
    assert not (folder / runs.CHECKPOINT).exists()  # deleted once the run is finished
    steps = lambda m: [(r["step"], r["loss_val"], r["lr"]) for r in m]  # noqa: E731
    assert steps(runs.read_metrics(folder)) == steps(
        runs.read_metrics(resolve_run(cfg(tmp_path / "whole")).run_dir)
    )


def test_nan_loss_ends_the_run_as_diverged(tmp_path):
    result = train_run(cfg(tmp_path, "train.lr=1e6", "train.grad_clip=0", "train.warmup_frac=0"))
    assert result["status"] == "diverged" and math.isnan(result["loss"])
    folder = resolve_run(
        cfg(tmp_path, "train.lr=1e6", "train.grad_clip=0", "train.warmup_frac=0")
    ).run_dir
    saved = runs.read_result(folder)
    assert saved["status"] == "diverged" and saved["loss"] is None
    assert runs.read_runs_csv(tmp_path / "single" / "runs.csv")[0]["status"] == "diverged"


def test_other_architectures_train_on_their_objective_with_unknown_floor(tmp_path):
    result = train_run(cfg(tmp_path, "model.arch=encoder"))
    assert (
        result["status"] == "ok"
        and result["arch"] == "encoder"
        and result["run_id"].startswith("encoder-")
    )
    assert result["entropy_floor"] is None and "not computed" in result["entropy_floor_note"]
    assert (
        0
        < result["loss"]
        < runs.read_metrics(tmp_path / "single" / result["run_id"])[0]["loss_val"]
    )


def test_a_claimed_run_is_not_trained_twice(tmp_path):
    folder = resolve_run(cfg(tmp_path)).run_dir
    held = runs.claim(folder)  # another process is training this run
    try:
        assert train_run(cfg(tmp_path))["status"] == "busy"
        assert not runs.is_finished(folder) and not (folder / runs.METRICS).exists()
    finally:
        held.release(unlink=True)


def test_scaling_train_cli_trains_then_skips(tmp_path, capsys):
    argv = ["train", f"runs_dir={tmp_path}", *TINY]
    assert cli_main(argv) == 0
    assert ": ok " in capsys.readouterr().out
    assert cli_main(argv) == 0
    assert "already finished, skipped" in capsys.readouterr().out
    assert len(runs.load_results(tmp_path / "single")) == 1


MMAP_PROBE = """
import ctypes, sys, torch
from scaling.experiment.config import compose, resolve_run
from scaling.experiment.train import build_engine  # build_engine on a CPU keeps freed memory

class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h)
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "engine":
    overrides = ["runs_dir=" + sys.argv[2], "train.threads=1", *sys.argv[3:]]
    build_engine(resolve_run(compose(overrides)))
before = libc.mallinfo2().hblkhd  # bytes in mmap'd blocks
t = torch.ones(30 << 18)  # 30 MiB: an activation of a large step
print(libc.mallinfo2().hblkhd - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's mallopt",
)
def test_a_cpu_engine_keeps_freed_memory_instead_of_faulting_it_in_every_step(tmp_path):
    """After build_engine on a CPU, a 30 MiB tensor comes from the heap, whose freed pages the
    process keeps; in a plain process glibc maps it afresh (the control: the probe measures
    something), and a mapping is handed back to the OS when freed, to be faulted in again."""

    def mapped(*argv):
        out = subprocess.run(
            [sys.executable, "-c", MMAP_PROBE, *argv], capture_output=True, text=True, check=True
        )
        return int(out.stdout.split()[-1])

    assert mapped("plain") >= 30 << 20
    assert mapped("engine", str(tmp_path), *TINY_MODEL) == 0


def test_auto_attention_and_precision_pick_the_fast_pair_per_device(monkeypatch):
    """bf16 autocast goes with explicit matmul attention on a CPU (fused SDPA is slower in bf16
    there), fp32 keeps SDPA, CUDA keeps SDPA; an explicit choice is never overridden."""
    from scaling.experiment import hardware

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert hardware.pick_attention("auto", "bf16", cpu) == "matmul"
    assert hardware.pick_attention("auto", "fp32", cpu) == "sdpa"
    assert hardware.pick_attention("auto", "bf16", cuda) == "sdpa"
    assert hardware.pick_attention("sdpa", "bf16", cpu) == "sdpa"
    for native in (True, False):
        monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda native=native: native)
        attention = hardware.pick_attention("auto", "auto", cpu)
        assert (attention, hardware.pick_dtype("auto", cpu, attention)) == (
            ("matmul", torch.bfloat16) if native else ("sdpa", torch.float32)
        )
        # a narrow model stays in fp32 (with SDPA) on a CPU, where its casts cost more than bf16
        # saves; from CPU_BF16_MIN_D_MODEL on it takes what the CPU offers
        for d_model, wide in ((16, False), (32, False), (48, True), (64, True)):
            attention = hardware.pick_attention("auto", "auto", cpu, d_model)
            bf16 = native and wide
            assert (attention, hardware.pick_dtype("auto", cpu, attention, d_model)) == (
                ("matmul", torch.bfloat16) if bf16 else ("sdpa", torch.float32)
            )
        assert hardware.pick_dtype("bf16", cpu, "matmul", 16) == torch.bfloat16  # asked for

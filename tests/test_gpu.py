"""GPU readiness: train.device=auto, the CUDA paths (bf16 autocast, SDPA, fused AdamW, compile) and
checkpoints that move between CPU and GPU. The CUDA tests run where CUDA exists and skip with one
line where it does not (benchmarks/gpu_check.sh runs them on a GPU machine); the CPU side of a
cross-device resume runs everywhere."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from scaling import runs
from scaling.cli import main as cli_main
from scaling.experiment.config import compose, resolve_run
from scaling.experiment.sweep import job_device
from scaling.experiment.train import build_engine, train_run

TINY = [
    "model.size=null",
    "model.d_model=32",
    "model.n_layers=2",
    "model.n_heads=2",
    "model.ctx=16",
    "train.batch_size=8",
    "data.val_tokens=256",
    "train.threads=1",
    "sweep.name=gpu",
    "train.tokens=7680",
    "train.checkpoint_every=5",
]  # 60 steps of 8 x 16
CPU = ["train.device=cpu", "train.precision=fp32", "train.compile=false"]
# Tests that need a GPU carry the `gpu` marker, deselected by default (pyproject addopts) so a CPU
# run has no skips; benchmarks/gpu_check.sh selects them with -m gpu and fails on any skip.


def _run(tmp_path, *overrides: str) -> dict:
    return train_run(compose([f"runs_dir={tmp_path}", *TINY, *overrides]))


def test_auto_device_trains_on_cuda_exactly_when_cuda_exists(tmp_path):
    result = _run(tmp_path, "train.device=auto", "train.compile=false")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert result["status"] == "ok" and result["device"] == expected


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(tmp_path, cut_after):
    """A GPU run's checkpoint also holds CUDA RNG states; a CPU resume maps the tensors to the CPU
    (torch.load map_location) and leaves the CUDA states aside, ending at the uninterrupted loss."""
    whole = _run(tmp_path / "whole", *CPU)
    cut = tmp_path / "cut"
    with cut_after(13):
        _run(cut, *CPU)
    path = resolve_run(compose([f"runs_dir={cut}", *TINY, *CPU])).run_dir / runs.CHECKPOINT
    state = torch.load(path, weights_only=True)
    state["rng"]["cuda"] = [torch.get_rng_state()]  # what _rng_states adds on a GPU machine
    torch.save(state, path)
    resumed = _run(cut, *CPU)
    assert resumed["resumed_from_step"] == 10 and resumed["loss"] == whole["loss"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_trains_in_bf16_autocast_with_sdpa_and_fused_adamw(tmp_path):
    cfg = compose(
        [
            f"runs_dir={tmp_path}",
            *TINY,
            "train.device=cuda",
            "train.precision=auto",
            "model.attention=auto",
            "train.compile=false",
        ]
    )
    engine = build_engine(resolve_run(cfg))
    assert engine.device.type == "cuda" and engine.attention == "sdpa"
    assert engine.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    assert engine.optimizer_kind == "fused"
    result = train_run(cfg)
    reference = _run(tmp_path / "cpu", *CPU)
    assert result["status"] == "ok" and result["device"] == "cuda"
    # bf16 against fp32: near, not equal
    assert abs(result["loss"] - reference["loss"]) / reference["loss"] < 0.02


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_compiled_run_matches_the_eager_run(tmp_path):
    gpu = ["train.device=cuda", "train.precision=fp32"]
    eager = _run(tmp_path / "eager", *gpu, "train.compile=false")
    compiled = _run(tmp_path / "compiled", *gpu, "train.compile=true")
    assert compiled["status"] == "ok"
    assert math.isclose(compiled["loss"], eager["loss"], rel_tol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_a_run_moves_cpu_to_gpu_to_cpu_through_its_checkpoint(tmp_path, cut_after):
    """Stopped on the CPU, resumed on the GPU, stopped again, finished on the CPU: the checkpoint
    loads on either device, and the run ends near the CPU-only loss (kernels differ: not bit for
    bit)."""
    reference = _run(tmp_path / "whole", *CPU)
    gpu = ["train.device=cuda", "train.precision=fp32", "train.compile=false"]
    with cut_after(13):
        _run(tmp_path, *CPU)
    with cut_after(33):
        _run(tmp_path, *gpu)
    result = _run(tmp_path, *CPU)
    assert result["status"] == "ok" and result["resumed_from_step"] == 30
    assert math.isclose(result["loss"], reference["loss"], rel_tol=1e-3)


def test_jobs_that_see_several_gpus_take_them_in_turn():
    assert [job_device("auto", k, 2) for k in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert job_device("cuda", 5, 4) == "cuda:1"
    assert job_device("auto", 3, 1) == "auto"  # one GPU (e.g. SLURM gave the job its own): keep it
    assert job_device("cpu", 1, 2) == "cpu"  # explicit choices stay
    assert job_device("cuda:1", 0, 4) == "cuda:1"


def test_each_job_of_a_sweep_that_sees_two_gpus_takes_one(tmp_path, monkeypatch):
    """The wiring on any machine: Hydra's job number picks the GPU of each job."""
    from scaling.experiment import sweep

    seen: list[str] = []
    monkeypatch.setattr(sweep.torch.cuda, "device_count", lambda: 2)

    def train_run(cfg) -> dict:
        seen.append(cfg.train.device)
        return {"run_id": "r", "status": "busy"}

    monkeypatch.setattr(sweep, "train_run", train_run)
    argv = [
        "sweep",
        f"runs_dir={tmp_path}",
        *TINY,
        "train.device=auto",
        "sweep.report=false",
        "train.seed=0,1,2",
        "train.ensemble=off",
    ]
    assert cli_main(argv) == 0
    assert seen == ["cuda:0", "cuda:1", "cuda:0"]


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="fewer than 2 CUDA devices here")
def test_a_parallel_sweep_puts_its_runs_on_different_gpus(tmp_path):
    argv = [
        "sweep",
        f"runs_dir={tmp_path}",
        *TINY,
        "train.device=auto",
        "train.compile=false",
        "sweep.report=false",
        "train.seed=0,1",
        "train.ensemble=off",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    ]
    assert cli_main(argv) == 0
    configs = (tmp_path / "gpu").glob(f"*/{runs.CONFIG}")
    devices = {OmegaConf.load(p)["train"]["device"] for p in configs}
    assert devices == {"cuda:0", "cuda:1"}
    assert {r["device"] for r in runs.load_results(tmp_path / "gpu")} == {"cuda"}

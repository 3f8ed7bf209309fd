"""Config composition and validation: every impossible config stops before training, with one
line naming the field and the fix, a non-zero exit and nothing written under runs_dir."""

from __future__ import annotations

import pytest
from tiny import TINY_MODEL

from scaling.cli import main as cli_main
from scaling.errors import ConfigError
from scaling.experiment.config import compose, resolve_run

TINY = [
    *TINY_MODEL,
    "train.tokens=2048",
    "data.val_tokens=256",
    "train.threads=1",
]


def spec(tmp_path, *extra):
    return resolve_run(compose([f"runs_dir={tmp_path / 'runs'}", *TINY, *extra]))


def test_defaults_compose_and_resolve(tmp_path):
    s = resolve_run(compose([f"runs_dir={tmp_path}"]))
    assert s.sweep == "quick" and s.shape.arch == "decoder"
    assert (
        s.D == s.steps * s.tokens_per_step and s.tokens_per_step == s.train.batch_size * s.shape.ctx
    )
    assert s.run_dir == tmp_path / "quick" / s.run_id
    assert s.config["train"]["tokens"] == s.D  # the saved config records the D actually trained


def test_tokens_round_to_whole_steps(tmp_path):
    s = spec(tmp_path, "train.tokens=1000")  # 128 tokens per step: 7.8 steps -> 8
    assert (s.steps, s.D) == (8, 1024)


def test_isoflop_budget_resolves_D_from_C_over_6N(tmp_path):
    s = spec(tmp_path, "train.tokens=null", "train.flops=1e9")
    assert s.D == s.steps * s.tokens_per_step
    # D = C / (6 N) up to the rounding to whole steps (half a step either way)
    assert abs(s.D - 1e9 / (6 * s.counts.N)) <= s.tokens_per_step / 2


def test_run_id_ignores_execution_knobs_but_not_the_experiment(tmp_path):
    base = spec(tmp_path).run_id
    assert (
        spec(
            tmp_path,
            "train.threads=2",
            "train.checkpoint_every=3",
            "train.precision=bf16",
            "model.attention=matmul",
        ).run_id
        == base
    )
    assert spec(tmp_path, "train.seed=1").run_id != base
    assert spec(tmp_path, "train.lr=1e-3").run_id != base
    assert spec(tmp_path, "train.tokens=4096").run_id != base


BAD = [
    # (overrides, text the one-line message must contain)
    (["model.d_model=0"], "model.d_model"),
    (["model.n_layers=-2"], "model.n_layers"),
    (["model.size=s2", "model.n_heads=5"], "n_heads"),
    (["model.n_heads=3"], "does not divide"),
    (["train.tokens=100"], "less than one batch"),
    (["train.tokens=null", "train.flops=1e3"], "train.flops"),
    (["train.batch_size=0"], "train.batch_size"),
    (["train.lr=-1"], "train.lr"),
    (["train.tokens=null"], "train.flops"),
    (["data.name=nope"], "data.name"),
    (["data=nope"], "data/nope"),
    (["data=text"], "data.paths"),
    (["data=text", "data.paths=[/no/such/file.txt]"], "/no/such/file.txt"),
    (["train.foo=1"], "train.foo"),
    (["train.batch_size=many"], "train.batch_size"),
    (["train.device=tpu"], "train.device"),
    (["model.arch=gpt"], "model.arch"),
    (["train.precision=fp8"], "train.precision"),
    (
        ["train.device=cuda:0"]
        if not __import__("torch").cuda.is_available()
        else ["train.seed=-1"],
        "train.",
    ),
    (["model.size=s1,s2"], "scaling sweep"),
    (["sweep.name=../up"], "sweep.name"),
]


@pytest.mark.parametrize("overrides,needle", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_config_raises_one_line_config_error(tmp_path, overrides, needle):
    with pytest.raises(ConfigError) as err:
        spec(tmp_path, *overrides)
    message = str(err.value)
    assert needle in message and "\n" not in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("overrides,needle", [BAD[0], BAD[3], BAD[4], BAD[9], BAD[12], BAD[13]])
def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, command, overrides, needle):
    rc = cli_main([command, f"runs_dir={tmp_path / 'runs'}", *TINY, *overrides])
    out, err = capsys.readouterr()
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert "Traceback" not in err + out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_help_explains_overrides_and_presets(capsys, command):
    assert cli_main([command, "--help"]) == 0
    out = capsys.readouterr().out
    for text in (
        "key=value",
        "runs_dir",
        "sweep: ",
        "grid",
        "isoflop",
        "quick",
        "train.tokens",
        "model.size",
    ):
        assert text in out

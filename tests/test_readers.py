"""scaling.analysis.readers: logs written by the real libraries (transformers' TrainerState,
tensorboard's SummaryWriter, Lightning's CSVLogger; a documented fixture for W&B's CSV export) fit
through `scaling fit` exactly as the flat table of the same numbers does."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from scaling.analysis import fitcli
from scaling.analysis.tables import load_points
from scaling.errors import DataError

SIZES = [(64, 2), (96, 3), (128, 4), (192, 4)]  # (d_model, n_layers) of GPT-2-style configs
VOCAB = 512
STEPS = (100, 200, 400, 800)  # evaluations; the last is the run's D
BUDGETS = (1, 2, 4)  # each run's length: STEPS x budget
TOKENS_PER_STEP = 2048


def n_params(d: int, layers: int) -> float:
    """GPT-style decoder, tied embeddings, d_ff = 4d: V*d + 12*L*d^2
    (sizes.params_from_architecture)."""
    return VOCAB * d + 12 * layers * d * d


def law(N: float, D: float) -> float:
    return 1.7 + 400.0 / N**0.34 + 1800.0 / D**0.28


def runs():
    """(name, config, N, [(step, tokens, eval loss)]) of a 4 x 3 grid of runs."""
    out = []
    for d, layers in SIZES:
        N = n_params(d, layers)
        for b in BUDGETS:
            evals = [
                (s * b, s * b * TOKENS_PER_STEP, law(N, s * b * TOKENS_PER_STEP)) for s in STEPS
            ]
            out.append((f"d{d}_L{layers}_x{b}", dict(n_embd=d, n_layer=layers), N, evals))
    return out


def flat_table(tmp_path: Path) -> Path:
    rows = [dict(N=N, D=ev[-1][1], loss=ev[-1][2]) for _, _, N, ev in runs()]
    path = tmp_path / "flat.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def fit_json(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"fit{len(list(tmp_path.glob('fit*.json')))}.json"
    assert fitcli.main([*args, "--bootstrap", "0", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def assert_same_fit(tmp_path: Path, logs: Path, *args: str) -> None:
    """The logs' fit gives the same a as the flat table's (Approach 3, Kaplan's law)."""
    flat, from_logs = (
        fit_json(tmp_path, str(flat_table(tmp_path))),
        fit_json(tmp_path, str(logs), *args),
    )
    assert from_logs["n_points"] == flat["n_points"] == len(runs())
    for key in ("approach3", "kaplan"):
        assert from_logs[key]["a"] == pytest.approx(flat[key]["a"], rel=1e-6)  # optimiser tolerance
    assert "a" in from_logs["approach1"]  # the curves reached Approach 1


def write_hf(root: Path) -> Path:
    from transformers import GPT2Config, TrainerState

    for name, arch, _, evals in runs():
        out = root / name
        out.mkdir(parents=True)
        history = []
        for step, tokens, loss in evals:
            history.append(
                {
                    "loss": loss + 0.05,
                    "learning_rate": 1e-3,
                    "step": step,
                    "num_input_tokens_seen": tokens,
                }
            )
            history.append(
                {
                    "eval_loss": loss,
                    "eval_runtime": 0.1,
                    "step": step,
                    "num_input_tokens_seen": tokens,
                }
            )
        TrainerState(global_step=evals[-1][0], log_history=history).save_to_json(
            str(out / "trainer_state.json")
        )
        GPT2Config(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, **arch).to_json_file(
            str(out / "config.json")
        )
    return root


def test_hf_trainer_folders_fit_like_the_flat_table(tmp_path):
    logs = write_hf(tmp_path / "hf")
    pts = load_points(logs)
    assert sorted(pts.frame["N"]) == sorted(N for _, _, N, _ in runs())
    assert len(pts.curves) == len(runs()) * len(STEPS)
    assert pts.notes == ["N of the logs from the architecture in config.json (12 runs)"]
    assert_same_fit(tmp_path, logs)


def test_hf_output_folder_with_checkpoints_only_is_one_run(tmp_path):
    write_hf(tmp_path / "hf")
    run = tmp_path / "hf" / "d64_L2_x1"
    ckpt = run / "checkpoint-800"
    ckpt.mkdir()
    (run / "trainer_state.json").rename(ckpt / "trainer_state.json")
    pts = load_points(run, min_points=1)
    assert len(pts.frame) == 1 and pts.frame["D"][0] == 800 * TOKENS_PER_STEP


def test_tensorboard_event_dirs_fit_like_the_flat_table(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for name, _, N, evals in runs():
        folder = tmp_path / "tb" / name
        with SummaryWriter(str(folder)) as w:
            for step, _tokens, loss in evals:
                w.add_scalar("eval/loss", loss, step)
                w.add_scalar("train/loss", loss + 0.05, step)
        (folder / "config.json").write_text(json.dumps({"num_parameters": N}))
    # no token count logged: tokens = --tokens-per-step x step
    assert_same_fit(tmp_path, tmp_path / "tb", "--tokens-per-step", str(TOKENS_PER_STEP))


def test_lightning_csvlogger_fits_like_the_flat_table(tmp_path):
    from pytorch_lightning.loggers import CSVLogger

    for i, (name, _, N, evals) in enumerate(runs()):
        logger = CSVLogger(str(tmp_path / "pl"), name="lm", version=name)
        logger.log_hyperparams({"n_params": N, "lr": 1e-3 * (i + 1)})
        for step, tokens, loss in evals:
            logger.log_metrics({"train_loss": loss + 0.05}, step=step)
            logger.log_metrics({"val_loss": loss, "tokens": tokens}, step=step)
        logger.save()
    assert_same_fit(tmp_path, tmp_path / "pl")
    assert sorted(load_points(tmp_path / "pl").frame["N"]) == sorted(N for _, _, N, _ in runs())


def write_wandb(root: Path) -> Path:
    """W&B's history export (the run page's CSV, `run.history().to_csv()`) has no writer outside
    W&B's servers: this fixture has its layout, `_step`/`_runtime`/`_timestamp` plus one column
    per logged key, blank where a row did not log that key; the size is in the run's config.json."""
    for name, _, N, evals in runs():
        folder = root / name
        folder.mkdir(parents=True)
        rows, k = [], 0
        for step, tokens, loss in evals:
            rows.append(
                {
                    "_step": k,
                    "_runtime": 1.0 * k,
                    "_timestamp": 1.7e9 + k,
                    "train/global_step": step,
                    "train/loss": loss + 0.05,
                    "train/num_input_tokens_seen": tokens,
                }
            )
            rows.append(
                {
                    "_step": k + 1,
                    "_runtime": 1.0 * k + 0.5,
                    "_timestamp": 1.7e9 + k + 0.5,
                    "train/global_step": step,
                    "eval/loss": loss,
                }
            )
            k += 2
        pd.DataFrame(rows).to_csv(folder / "history.csv", index=False)
        (folder / "config.json").write_text(json.dumps({"num_parameters": N}))
    return root


def test_wandb_history_export_fits_like_the_flat_table(tmp_path):
    assert_same_fit(tmp_path, write_wandb(tmp_path / "wb"))


def test_curve_points_of_logs_match_a_flat_table_of_every_evaluation(tmp_path):
    rows = [dict(N=N, D=t, loss=loss) for _, _, N, ev in runs() for _, t, loss in ev]
    flat = tmp_path / "every.csv"
    pd.DataFrame(rows).to_csv(flat, index=False)
    a = fit_json(tmp_path, str(flat))
    b = fit_json(tmp_path, str(write_wandb(tmp_path / "wb")), "--curve-points")
    assert b["n_points"] == len(rows)
    assert b["approach3"]["a"] == pytest.approx(a["approach3"]["a"], rel=1e-6)


def test_glob_force_format_numeric_n_and_named_metrics(tmp_path):
    write_wandb(tmp_path / "wb")
    pts = load_points(str(tmp_path / "wb" / "d64_*" / "history.csv"), log_format="wandb")
    assert len(pts.frame) == 3 and set(pts.frame["N"]) == {n_params(64, 2)}
    one = tmp_path / "wb" / "d64_L2_x1"
    (one / "config.json").unlink()
    pts = load_points(one, n="12345", loss="train/loss", min_points=1)
    assert pts.notes == ["N of the logs from --n (1 run)"]
    assert pts.frame["N"][0] == 12345 and pts.frame["loss"][0] == pytest.approx(
        runs()[0][3][-1][2] + 0.05
    )


def test_bad_logs_are_one_line_errors(tmp_path):
    write_wandb(tmp_path / "wb")
    one = tmp_path / "wb" / "d64_L2_x1"
    (one / "config.json").unlink()
    with pytest.raises(DataError, match=r"no model size .* pass --n VALUE"):
        load_points(one, min_points=1)
    state = tmp_path / "trainer_state.json"
    state.write_text('{"log_history": [')
    with pytest.raises(DataError, match=r"not a readable trainer_state.json"):
        load_points(state)
    state.write_text(json.dumps({"log_history": [{"eval_loss": 3.0, "step": 10}]}))
    with pytest.raises(DataError, match=r"no token count is logged.*--tokens-per-step"):
        load_points(state, n="1e6", min_points=1)
    with pytest.raises(DataError, match=r"--format 'comet': choose one of"):
        load_points(state, log_format="comet")
    with pytest.raises(DataError, match=r"no metric 'eval/ppl' \(--loss\)"):
        load_points(one, n="1e6", loss="eval/ppl")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"runs.csv \(a sweep\) or run logs"):
        load_points(empty)
    bad = tmp_path / "bad" / "metrics.csv"
    bad.parent.mkdir()
    bad.write_text('step,val_loss\n1,"3.0\n')  # an unclosed quote: not a CSV pandas can parse
    with pytest.raises(DataError, match=r"cannot read it as a Lightning metrics.csv"):
        load_points(bad.parent, n="1e6", log_format="lightning", min_points=1)


def test_one_command_from_hf_trainer_output_folders_to_a_report(tmp_path):
    from scaling.analysis.plotcli import main_report

    logs = write_hf(tmp_path / "hf")
    out = tmp_path / "report"
    assert main_report([str(logs), "--out", str(out), "--bootstrap", "0"]) == 0
    fits = json.loads((out / "fits.json").read_text())
    hashed = {Path(i["path"]).relative_to(logs).as_posix() for i in fits["provenance"]["inputs"]}
    assert hashed == {
        f"{name}/{f}" for name, _, _, _ in runs() for f in ("trainer_state.json", "config.json")
    }
    assert "Approach 3" in (out / "report.md").read_text()


def test_numeric_n_on_a_plain_table_is_its_one_model_size(tmp_path):
    path = tmp_path / "one_model.csv"
    pd.DataFrame({"D": [1e8, 2e8, 4e8], "loss": [3.0, 2.9, 2.85]}).to_csv(path, index=False)
    assert list(load_points(path, n="2e6").frame["N"]) == [2e6] * 3
    pd.DataFrame({"N": [1e6], "D": [1e8], "loss": [3.0]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"--n 2e\+06 would replace its column N"):
        load_points(path, n="2e6", min_points=1)

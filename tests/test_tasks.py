"""Task probes (scaling/experiment/tasks.py, scaling/experiment/data/tasks.py): each scorer is right
where the answer is known: the exact distribution scores 100% (or the Bayes optimum), a uniform
guesser scores chance, a model that reads the answer from its input scores ~100%."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scaling.errors import DataError
from scaling.experiment import tasks
from scaling.experiment.data import tasks as data_tasks
from scaling.experiment.data.synthetic import Language, SyntheticConfig
from scaling.experiment.data.tasks import TaskSpec
from scaling.experiment.models import ModelShape

SPEC = TaskSpec(
    topic_train=192, topic_test=128, cloze_items=12, gen_rows=32, s2s_train=32, s2s_test=32
)


@pytest.fixture(scope="module")
def lang() -> Language:
    return Language(SyntheticConfig(n_words=1024, topic_words=64))


@pytest.fixture(scope="module")
def data(lang):
    return data_tasks.task_data(lang, SPEC)


class Oracle(torch.nn.Module):
    """A stand-in for a model of family `arch`: logits computed from its input by `fn`."""

    def __init__(self, arch: str, fn):
        super().__init__()
        self.shape = ModelShape(d_model=8, n_layers=1, n_heads=1, ctx=128, arch=arch)
        self.fn = fn

    def forward(self, idx, tgt=None):
        return self.fn(idx) if tgt is None else self.fn(idx, tgt)


def true_lm(lang: Language):
    """Decoder whose logits are the language's exact next-byte log-probabilities."""

    def fn(idx):
        rows = np.concatenate([idx.numpy(), np.full((len(idx), 1), 0x20)], 1).astype(np.uint8)
        with np.errstate(divide="ignore"):
            logp = np.log(np.nan_to_num(lang.walk(rows, full=True), nan=1 / 256))
        out = torch.full((len(idx), idx.shape[1], 256 + 1), -1e9)
        out[:, :, :256] = torch.from_numpy(np.maximum(logp, -1e9)).float()  # t predicts x[t + 1]
        return out

    return fn


def test_topic_posterior_is_exact_and_calibrated(lang, data):
    te = data.topic_test
    ll = lang.topic_log_likelihood(te.rows)
    total = np.logaddexp.reduce(ll, axis=1) - np.log(16)
    first = total - lang.walk(te.rows).sum(1)  # what walk leaves out: log P(x[0])
    for byte in np.unique(te.rows[:, 0]):
        assert np.ptp(first[te.rows[:, 0] == byte]) < 1e-9
    bayes = (te.posterior.argmax(1) == te.topic).mean()
    assert abs(bayes - te.posterior.max(1).mean()) < 0.08  # ~ the expected max posterior
    assert bayes > 0.5


def test_linear_probe_reaches_bayes_chance_and_the_answer(data):
    tr, te = data.topic_train, data.topic_test
    rng = np.random.default_rng(0)
    bayes = (te.posterior.argmax(1) == te.topic).mean()
    log_tr, log_te = np.log(tr.posterior + 1e-12), np.log(te.posterior + 1e-12)
    exact = tasks.linear_probe(log_tr, tr.topic, log_te, 16)
    assert (exact == te.topic).mean() >= bayes - 0.06
    noise = tasks.linear_probe(rng.normal(size=(192, 8)), tr.topic, rng.normal(size=(128, 8)), 16)
    assert abs((noise == te.topic).mean() - 1 / 16) < 0.07
    told = tasks.linear_probe(
        np.eye(16)[tr.topic] + rng.normal(0, 0.1, (192, 16)),
        tr.topic,
        np.eye(16)[te.topic] + rng.normal(0, 0.1, (128, 16)),
        16,
    )
    assert (told == te.topic).mean() == 1.0


def test_cloze_items_need_the_right_context(lang, data):
    c = data.cloze
    items = list(zip(c.left, c.candidates, c.right))
    full = [data_tasks._row_logp(lang, [a + f + b for f in fs]) for a, fs, b in items]
    left = [data_tasks._row_logp(lang, [a + f + b" " for f in fs]) for a, fs, _ in items]
    assert (np.argmax(full, 1) == c.answer).all()  # the exact distribution: 100%
    assert (np.argmax(left, 1) != c.answer).all()  # the left context alone: 0%
    guesses = np.random.default_rng(0).integers(4, size=(2000, len(c.answer)))
    assert abs((guesses == c.answer).mean() - 0.25) < 0.02  # a uniform guesser: chance


def test_decoder_cloze_with_the_true_distribution_picks_every_answer(lang, data):
    scores = tasks.cloze_scores(Oracle("decoder", true_lm(lang)), data)["cloze_acc"]
    assert scores.all()


def test_generation_true_sampler_scores_ceiling_uniform_scores_floor(lang, data):
    true = tasks.generate_scores(Oracle("decoder", true_lm(lang)), data, lang)["generate_score"]
    lo, hi = tasks.interval(true)
    assert lo < 1.0 < hi or abs(true.mean() - 1) < 0.1
    flat = Oracle("decoder", lambda idx: torch.zeros(*idx.shape, 257))
    uniform = tasks.generate_scores(flat, data, lang)
    assert abs(uniform["generate_score"].mean()) < 0.05


def reversal_oracle(arch: str):
    """Each family's model that reads the source in its input and puts all mass on the answer."""

    def answer(src: torch.Tensor, length: int) -> torch.Tensor:
        rows = []
        for s in src.numpy().astype(np.uint8):
            text = bytes(s).rstrip(b" ") + b" "
            rows.append(list(data_tasks.reverse_words(text).ljust(length, b" ")))
        return torch.tensor(rows)

    def logits(target: torch.Tensor, T: int, at: int) -> torch.Tensor:
        out = torch.zeros(len(target), T, 257)
        out[torch.arange(len(target))[:, None], at + torch.arange(target.shape[1]), target] = 10.0
        return out

    def fn(idx, tgt=None):
        if arch == "encoder_decoder":
            return logits(answer(idx, tgt.shape[1]), tgt.shape[1], 0)
        L = int((idx[0] == data_tasks.SEQ_SEP).nonzero()[0])
        return logits(answer(idx[:, :L], L), idx.shape[1], idx.shape[1] - L)

    return fn


@pytest.mark.parametrize("arch", ["decoder", "encoder", "encoder_decoder"])
def test_seq2seq_scores_the_answer_100_and_a_guesser_0(data, arch):
    te = data.s2s_test
    told = tasks.seq2seq_eval(Oracle(arch, reversal_oracle(arch)), te.src, te.tgt, te.length)
    assert told["s2s_exact"].all() and (told["s2s_token"] == 1).all()
    noise = Oracle(
        arch, lambda idx, tgt=None: torch.randn(*(idx if tgt is None else tgt).shape, 257)
    )
    guess = tasks.seq2seq_eval(noise, te.src, te.tgt, te.length)
    assert not guess["s2s_exact"].any() and guess["s2s_token"].mean() < 0.05


def test_every_family_scores_every_task_from_a_checkpointed_run(tmp_path, monkeypatch):
    """A tiny architectures sweep keeps its checkpoints and probes them: tasks.csv and the
    report have every score of every family, each inside its interval."""
    from scaling.workflows import sweep as sweep_main

    monkeypatch.setattr(tasks, "SPEC", SPEC)
    monkeypatch.chdir(tmp_path)
    rc = sweep_main(
        [
            "sweep=architectures",
            f"runs_dir={tmp_path}",
            "model.size=s1",
            "train.tokens=4096",
            "data.val_tokens=512",
            "train.batch_size=4",
            "sweep.report_dir=report",
        ]
    )
    assert rc == 0
    table = tmp_path / "arch" / tasks.TASKS_CSV
    import pandas as pd

    df = pd.read_csv(table)
    assert sorted(df["arch"]) == ["decoder", "encoder", "encoder_decoder"]
    for key in tasks.SCORES:
        assert df[key].notna().all()
        assert (df[f"{key}_lo"] <= df[key]).all() and (df[key] <= df[f"{key}_hi"]).all()
    assert "Textbook" in (tmp_path / "report_tasks" / "tasks.md").read_text()
    run = next(p for p in (tmp_path / "arch").iterdir() if (p / "checkpoint.pt").is_file())
    monkeypatch.setattr(tasks, "MIN_CTX", 1024)
    with pytest.raises(DataError, match="model.ctx >= 1024"):
        tasks.probe_run(run)
    (run / "checkpoint.pt").unlink()
    with pytest.raises(DataError, match="train.keep_checkpoint=true"):
        tasks.probe_run(run)

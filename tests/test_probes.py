"""Probe documents (exact probabilities, E* accounting) and probe scoring on models right or
wrong by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scaling.errors import ConfigError
from scaling.experiment.data import DataConfig, ProbeConfig, SyntheticConfig, build_source
from scaling.experiment.data.probes import KINDS, MARKERS, Probes
from scaling.experiment.data.synthetic import Language
from scaling.experiment.probe_scores import (
    icl_score,
    induction_rows,
    induction_score,
    probe_scores,
    token_scores,
)

CTX = 128


def _source(fraction=0.1, val_tokens=8192, **probe):
    return build_source(
        DataConfig(
            val_tokens=val_tokens,
            synthetic=SyntheticConfig(probes=ProbeConfig(fraction=fraction, **probe)),
        ),
        CTX,
    )


@pytest.fixture(scope="module")
def source():
    return _source()


def _true_logits(source):
    """logits_fn of the true distribution: log p_true(. | prefix) at every position of idx."""

    def fn(idx):
        rows = torch.cat(
            [idx, torch.full((len(idx), 1), ord(" "))], 1
        )  # the target column is never read
        return source.true_probs(rows).log().float()

    return fn


def _close(actual, expected, atol):
    np.testing.assert_allclose(actual, np.broadcast_to(expected, np.shape(actual)), atol=atol)


def test_probe_bytes_have_the_probabilities_of_their_generator():
    probes = Probes(ProbeConfig(), seed=0)
    rng = np.random.default_rng(5)
    # icl: the i-th key is any unused letter (1/(26-i)), values uniform letters, answers certain
    rows = probes.sample(rng, "icl", 50, 62)
    lp = probes.walk(rows)
    keys = np.arange(6) * 5  # prediction columns of the 6 definition keys ("k:vv," items)
    _close(lp[:, keys], -np.log(26 - np.arange(6)), atol=1e-12)
    _close(lp[:, keys + 2], -np.log(26), atol=1e-12)
    queries = 30 + np.arange(6) * 5
    _close(lp[:, queries], -np.log(6), atol=1e-12)  # one of the 6 defined keys
    _close(lp[:, queries + 2], 0.0, atol=1e-12)  # the answer is determined
    # reasoning: hop digits uniform over 1..3; the answer is f^h(start) exactly
    rows = probes.sample(rng, "reasoning", 50, 56)
    lp = probes.walk(rows)
    q = 24 + np.arange(6) * 5
    _close(lp[:, q + 1], -np.log(3), atol=1e-12)
    _close(lp[:, q + 3], 0.0, atol=1e-12)
    # knowledge: the key letters' probabilities multiply to the fact's corpus frequency
    k = probes.kinds["knowledge"]
    rows = probes.sample(rng, "knowledge", 50, 8)
    lp = probes.walk(rows)
    ids = np.searchsorted(k.codes, ((rows[:, 1:4].astype(np.int64) - 97) * [676, 26, 1]).sum(1))
    _close(lp[:, :3].sum(1), np.log(k.weight[ids]), atol=1e-12)
    assert (lp[:, 3:] == 0).all()  # "=", the value and "," follow from the key


@pytest.mark.parametrize("kind", KINDS)
def test_sampled_probe_documents_are_calibrated(kind):
    probes = Probes(ProbeConfig(), seed=0)
    rows = probes.sample(np.random.default_rng(3), kind, 300, 97)
    p = probes.walk(rows, full=True)
    assert np.allclose(p.sum(-1), 1.0, atol=1e-12)
    assert np.isfinite(probes.walk(rows)).all()  # the generator never makes an impossible byte
    p = p.reshape(-1, 256)
    hit = np.zeros_like(p, dtype=bool)
    hit[np.arange(len(p)), rows[:, 1:].ravel()] = True
    for lo, hi in zip([1e-3, 0.02, 0.1, 0.3, 0.6], [0.02, 0.1, 0.3, 0.6, 0.999]):
        sel = (p >= lo) & (p < hi)
        expected, var = p[sel].sum(), (p[sel] * (1 - p[sel])).sum()
        assert abs(hit[sel].sum() - expected) < 5 * np.sqrt(var) + 1, (lo, hi)
    # a wrong byte anywhere (e.g. "#") makes the rest of the row impossible, as for word rows
    bad = rows.copy()
    bad[:, 20] = ord("#")
    lp = probes.walk(bad)
    assert np.isfinite(lp[:, :19]).all() and np.isinf(lp[:, 19:]).all()


def test_entropy_floor_includes_the_probe_rows():
    src = _source(fraction=0.5)
    val = src.val_batch()
    kinds = {int(m) for m in val[:, 0]}
    assert set(MARKERS.values()) <= kinds and any(m >= ord("a") for m in kinds)
    lp = src.true_log_probs(val)
    assert torch.isfinite(lp).all()
    assert src.entropy_floor == pytest.approx(float(-lp.mean()), rel=1e-12)
    probe_rows = val[:, 0] < 4
    # probe rows are scored by the probe rules, word rows by the language, and both enter E*
    assert src.entropy_floor != pytest.approx(float(-lp[~probe_rows].mean()), rel=1e-3)


def test_fraction_zero_turns_probes_off_and_leaves_the_word_language():
    off = _source(fraction=0.0)
    assert off.probes is None
    spec = SyntheticConfig(probes=ProbeConfig(fraction=0.0))
    rows = Language(spec).sample(np.random.default_rng([0x7EA, 0, 3]), 8, CTX + 1)
    assert torch.equal(off.train_batch(3, 8, 0), torch.from_numpy(rows.astype(np.int64)))
    assert int(off.val_batch()[:, 0].min()) >= ord("a")
    scores = probe_scores(lambda idx: torch.zeros(*idx.shape, 256), off)
    assert (
        "icl_acc" not in scores and "induction_loss" in scores and "icl_late_minus_early" in scores
    )


def test_eval_sets_are_held_out_and_fixed(source):
    rows, answers = source.probe_eval("icl")
    again, _ = _source().probe_eval("icl")
    assert torch.equal(rows, again) and rows.shape == (32, CTX + 1)
    train = torch.cat([source.train_batch(s, 64, 0) for s in range(20)])
    train_icl = train[train[:, 0] == MARKERS["icl"]]
    assert len(train_icl) > 0
    assert (
        not (rows[:, None, :40] == train_icl[None, :, :40]).all(-1).any()
    )  # fresh maps, never trained on
    assert answers.keep.sum() == 32 * 12  # 2 whole episodes of 6 queries fit in 128 bytes
    _, kn = source.probe_eval("knowledge")
    assert (
        kn.keep.sum() < kn.keep.size
    )  # a fact repeated within a row is scored only the first time


def test_true_distribution_scores_100_percent_and_exact_log_probs(source):
    scores = probe_scores(_true_logits(source), source)
    for kind in KINDS + ("reasoning1", "reasoning2", "reasoning3"):
        assert scores[f"{kind}_acc"] == 1.0
        assert scores[f"{kind}_logp"] == pytest.approx(0.0, abs=1e-6)

    # a half-true half-uniform mixture: still right, answer log p exactly log(1/2 + 1/512)
    def mixed(idx):
        return (0.5 * _true_logits(source)(idx).exp() + 0.5 / 256).log()

    scores = probe_scores(mixed, source)
    for kind in KINDS:
        assert scores[f"{kind}_acc"] == 1.0
        assert scores[f"{kind}_logp"] == pytest.approx(math.log(0.5 + 0.5 / 256), abs=1e-6)


def test_uniform_and_guessing_models_score_chance(source):
    scores = probe_scores(lambda idx: torch.zeros(*idx.shape, 256), source)
    for kind in KINDS:
        assert scores[f"{kind}_acc"] == 0.0  # ties go to byte 0, never an answer
        assert scores[f"{kind}_logp"] == pytest.approx(-math.log(256), abs=1e-6)
    # a model that guesses uniformly among the 6 reasoning letters: about 1/6 right per query
    gen = torch.Generator().manual_seed(0)

    def guess(idx):
        logits = torch.full((*idx.shape, 256), -30.0)
        logits[..., 97:103] = torch.rand((*idx.shape, 6), generator=gen)
        return logits

    rows, answers = source.probe_eval("reasoning")
    n = int(answers.keep.sum())
    acc = probe_scores(guess, source)["reasoning_acc"]
    assert abs(acc - 1 / 6) < 4 * math.sqrt(1 / 6 * 5 / 6 / n)
    # that guesser is exactly the chance level the scores report for reasoning
    chance = probe_scores(guess, source)
    assert chance["reasoning_chance"] == chance["reasoning1_chance"] == pytest.approx(1 / 6)
    assert probe_scores(guess, source)["icl_acc"] < 0.05  # two letters from 6 when 26 are possible


def test_icl_score_is_zero_without_context_and_negative_with_it():
    src = build_source(
        DataConfig(val_tokens=65536), CTX
    )  # 512 rows: the score's noise is ~0.02 nats
    val = src.val_batch()
    counts = torch.bincount(src.train_batch(0, 2000, 0).flatten(), minlength=256).double() + 0.5
    unigram = (counts / counts.sum()).log().float()
    logp, _ = token_scores(lambda idx: unigram.expand(*idx.shape, 256), val, batch_size=256)
    assert abs(icl_score(logp)) < 0.02
    true = src.true_log_probs(val).numpy()
    assert icl_score(true) < -0.05  # topic inference and copying make late tokens cheaper


def test_induction_score_separates_copying_from_context_free_models():
    val = build_source(DataConfig(val_tokens=4096), CTX).val_batch()
    rows = induction_rows(val)
    half = (CTX + 2) // 2  # 65: rows of 129 tokens are r (65 tokens) then the first 64 of r again
    assert torch.equal(rows, induction_rows(val)) and torch.equal(
        rows[:, : CTX + 1 - half], rows[:, half:]
    )

    def copy(idx):  # a perfect induction head: x[t + 1] = x[t + 1 - half] once the copy has begun
        logits = torch.zeros(*idx.shape, 256)
        logits[:, half - 1 :].scatter_(2, idx[:, : idx.shape[1] - half + 1, None], 50.0)
        return logits

    loss, acc = induction_score(*token_scores(copy, rows))
    assert loss < 1e-6 and acc == 1.0
    constant = lambda idx: torch.zeros(*idx.shape, 256)  # noqa: E731
    loss, acc = induction_score(*token_scores(constant, rows))
    assert loss == pytest.approx(math.log(256)) and acc == 0.0


@pytest.mark.parametrize(
    "probe, field",
    [
        ({"fraction": 1.5}, "probes.fraction"),
        ({"icl_pairs": 27}, "probes.icl_pairs"),
        ({"reasoning_steps": 0}, "probes.reasoning_steps"),
        ({"knowledge_facts": 400, "knowledge_key_len": 2}, "probes.knowledge_facts"),
        ({"w_icl": 0, "w_reasoning": 0, "w_knowledge": 0}, "probes.w_icl"),
        ({"colour": 1}, "probes.colour"),
    ],
)
def test_bad_probe_config_raises_one_line_config_error(probe, field):
    with pytest.raises(ConfigError) as err:
        build_source({"synthetic": {"probes": probe}}, CTX)
    assert field in str(err.value) and "\n" not in str(err.value)

"""The synthetic language: determinism, a fixed validation set and an exact entropy floor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from scaling.errors import ConfigError
from scaling.experiment.data import DataConfig, SyntheticConfig, build_source
from scaling.experiment.data.ngram import NGram
from scaling.experiment.data.synthetic import Corpus, Language

CTX = 64


@pytest.fixture(scope="module")
def source():
    return build_source(DataConfig(val_tokens=4096), CTX)


def test_train_batch_is_a_pure_function_of_seed_and_step(source):
    a = source.train_batch(step=7, batch_size=8, seed=3)
    assert a.shape == (8, CTX + 1) and a.dtype == torch.int64
    assert torch.equal(a, source.train_batch(step=7, batch_size=8, seed=3))
    assert torch.equal(a, build_source(DataConfig(val_tokens=4096), CTX).train_batch(7, 8, 3))
    assert not torch.equal(a, source.train_batch(step=7, batch_size=8, seed=4))
    assert not torch.equal(a, source.train_batch(step=8, batch_size=8, seed=3))
    assert int(a.min()) >= 0 and int(a.max()) < source.vocab_size


def test_val_set_is_fixed_by_the_data_config_alone(source):
    val = source.val_batch()
    assert val.shape == (4096 // CTX, CTX + 1)
    source.train_batch(0, 4, seed=99)  # drawing training rows must not move the validation set
    assert torch.equal(val, source.val_batch())
    fresh = build_source(
        OmegaConf.structured(DataConfig(val_tokens=4096)), CTX
    )  # DictConfig accepted
    assert torch.equal(val, fresh.val_batch())
    assert not torch.equal(
        val, build_source(DataConfig(val_tokens=4096, val_seed=5), CTX).val_batch()
    )
    assert not any(torch.equal(val[:8], source.train_batch(s, 8, 0)) for s in range(3))


def test_entropy_floor_is_the_mean_true_nll_of_val(source):
    nll = -source.true_log_probs(source.val_batch())
    assert nll.shape == (4096 // CTX, CTX) and torch.isfinite(nll).all()
    assert source.entropy_floor == pytest.approx(float(nll.mean()), rel=1e-12)
    assert 0.3 < source.entropy_floor < 2.0  # well below a byte unigram (~3.2 nats)


def test_true_distribution_is_normalised_and_consistent(source):
    rows = source.train_batch(0, 16, seed=1)
    p = source.true_probs(rows)
    assert torch.allclose(p.sum(-1), torch.ones(16, CTX, dtype=p.dtype), atol=1e-10)
    picked = torch.gather(p, 2, rows[:, 1:, None])[..., 0].log()
    assert torch.allclose(picked, source.true_log_probs(rows), atol=1e-10)
    corrupt = rows.clone()
    corrupt[:, 10] = ord("#")  # a byte the language never produces: log p = -inf from there on
    lp = source.true_log_probs(corrupt)
    assert torch.isfinite(lp[:, :9]).all() and torch.isinf(lp[:, 9:]).all()


TINY = SyntheticConfig(seed=3, n_words=40, max_len=5, n_topics=3, topic_words=6, n_successors=3)


def _brute_force_next(lang: Language, row: bytes) -> np.ndarray:
    """p(next byte | row) by enumerating the lexicon and topics directly (no trie, no prefix
    sums)."""
    words = [bytes(lang.lex.spell[i, : lang.lex.length[i] - 1]) for i in range(lang.lex.n_words)]
    *done, prefix = row.split(b" ")
    ids = [words.index(w) for w in done]
    a, b, c, d = lang.weights

    def p_word(j: int, z: int) -> np.ndarray:  # P(each word | the first j words, topic z)
        hist, prev = ids[:j], (ids[j - 1] if j else lang.bos)
        wa, wb, wc, wd = (a, b, c, 0.0) if j == 0 else (a, b, c, d)
        norm = 1.0 if j else a + b + c
        p = wa * lang.unigram + wb * lang.topic[z]
        for s, ps in zip(lang.succ[prev], lang.succ_p):
            p[s] += wc * ps
        for h in hist:
            p[h] += wd / len(hist)
        return p / norm

    post = np.array(
        [
            np.prod([p_word(j, z)[ids[j]] for j in range(len(ids))])
            for z in range(lang.spec.n_topics)
        ]
    )
    mix = sum(post[z] * p_word(len(ids), z) for z in range(lang.spec.n_topics)) / post.sum()
    out = np.zeros(256)
    for w, pw in zip(words, mix):
        if w.startswith(prefix):
            out[w[len(prefix)] if len(w) > len(prefix) else ord(" ")] += pw
    return out / out.sum()


def test_exact_probabilities_match_a_brute_force_enumeration():
    lang = Language(TINY)
    rows = lang.sample(np.random.default_rng(0), 3, 40)
    p = lang.walk(rows, full=True)
    for r in range(3):
        for t in range(1, 40, 3):
            np.testing.assert_allclose(
                p[r, t - 1], _brute_force_next(lang, rows[r, :t].tobytes()), atol=1e-12
            )


def _entropy_gap(p: np.ndarray, rows: np.ndarray) -> float:
    """(mean NLL of sampled tokens - mean entropy of the predicted distributions p) / std. error."""
    p = p.reshape(-1, 256)
    x = rows[:, 1:].ravel()
    nll = -np.log(p[np.arange(len(x)), x])
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    diff = nll - ent  # mean zero iff the tokens are drawn from exactly these probabilities
    return float(diff.mean() / (diff.std() / np.sqrt(len(diff))))


def test_sampled_text_follows_the_exact_probabilities():
    spec = dataclasses.replace(SyntheticConfig(), n_words=2048)
    lang = Language(spec)
    rows = lang.sample(np.random.default_rng(12), 800, 96)
    p = lang.walk(rows, full=True)
    assert abs(_entropy_gap(p, rows)) < 4
    # the same check catches a predictor that is slightly off (ignores copying from the document)
    no_cache = dict(w_unigram=0.35 / 0.85, w_topic=0.25 / 0.85, w_bigram=0.25 / 0.85, w_cache=0.0)
    assert (
        _entropy_gap(Language(dataclasses.replace(spec, **no_cache)).walk(rows, full=True), rows)
        > 6
    )
    # calibration: among (position, byte) pairs given probability in a bin, the hit rate matches
    p = p.reshape(-1, 256)
    hit = np.zeros_like(p, dtype=bool)
    hit[np.arange(len(p)), rows[:, 1:].ravel()] = True
    edges = [1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5, 0.8, 0.95, 0.999, 1.0 + 1e-9]
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (p >= lo) & (p < hi)
        expected, var = p[sel].sum(), (p[sel] * (1 - p[sel])).sum()
        assert abs(hit[sel].sum() - expected) < 5 * np.sqrt(var) + 1, (lo, hi)


def test_more_capacity_and_more_data_keep_paying_and_stay_above_the_floor(source):
    val = source.val_batch().numpy()
    loss = {}
    for tokens in (40_000, 400_000):
        train = source.train_batch(0, tokens // CTX, seed=0).numpy()
        model = NGram(train, 5)
        for order in (2, 5):
            loss[order, tokens] = -model.log_probs(val, order).mean()
    assert loss[5, 400_000] < loss[5, 40_000] - 0.1  # more data helps the bigger model
    assert loss[5, 400_000] < loss[2, 400_000] - 0.5  # more capacity helps at fixed data
    assert abs(loss[2, 400_000] - loss[2, 40_000]) < 0.05  # a small model saturates early
    assert min(loss.values()) > source.entropy_floor + 0.2
    # an exact predictor knowing only the lexicon and unigram (and the probe rules) stays above E*
    unigram_only = dataclasses.replace(
        SyntheticConfig(), w_unigram=1.0, w_topic=0.0, w_bigram=0.0, w_cache=0.0
    )
    loss = -Corpus(unigram_only).walk(val)
    assert np.isfinite(loss).all() and loss.mean() > source.entropy_floor + 0.1


@pytest.mark.parametrize(
    "cfg, field",
    [
        ({"name": "wikipedia"}, "data.name"),
        ({"name": "synthetic", "vocab": 3}, "data.vocab"),
        ({"synthetic": {"w_cache": 0.5}}, "sum to"),
        ({"synthetic": {"n_words": -1}}, "data.synthetic.n_words"),
        ({"synthetic": {"colour": 1}}, "data.synthetic.colour"),
        ({"val_tokens": 0}, "data.val_tokens"),
    ],
)
def test_bad_config_raises_one_line_config_error(cfg, field):
    with pytest.raises(ConfigError) as err:
        build_source(cfg, CTX)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_language_seed_changes_the_language():
    a = build_source(DataConfig(val_tokens=1024, synthetic=SyntheticConfig(seed=1)), CTX)
    b = build_source(DataConfig(val_tokens=1024, synthetic=SyntheticConfig(seed=2)), CTX)
    assert not torch.equal(a.val_batch(), b.val_batch())
    assert a.entropy_floor != b.entropy_floor


def test_one_config_class_is_both_the_hydra_schema_and_the_generators_input(tmp_path):
    from omegaconf import OmegaConf

    from scaling.experiment.config import compose, resolve_run
    from scaling.experiment.data.probes import ProbeConfig

    cfg = compose(
        [
            f"runs_dir={tmp_path}",
            "data.synthetic.n_words=512",
            "data.synthetic.probes.fraction=0",
            "data.val_tokens=256",
        ]
    )
    data = OmegaConf.to_object(cfg.data)
    assert type(data.synthetic) is SyntheticConfig and type(data.synthetic.probes) is ProbeConfig
    source = build_source(resolve_run(cfg).data, CTX)
    assert source.language.spec == dataclasses.replace(data.synthetic, probes=ProbeConfig())
    assert source.probes is None  # fraction 0 reached the generator

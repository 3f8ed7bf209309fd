"""Held-out data of the task probes (scaling/experiment/tasks.py, docs/tasks.md), drawn from the
synthetic language with exact answers: a pure function of the language and a fixed seed, so every
run of a sweep is scored on the same items.

    topic      documents and their hidden topic, with the exact topic posterior (Bayes optimum)
    cloze      a word blanked out between its left context and the next word; four candidate
               fillers, the answer being the exact argmax of P(filler | left, right)
    generate   document prefixes, their true continuations (the ceiling) and the byte unigram
               distribution (the floor)
    seq2seq    a word sequence and the same words in reverse order (a transduction)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from scaling.experiment.data.synthetic import SEP, Language

SEQ_SEP = ord("|")  # separates source and target where both share one sequence (never in documents)
_TAG = 0x7A5C  # keeps the task probes' random streams apart from the data's


@dataclass(frozen=True)
class TaskSpec:
    """Sizes of the task probes; every family at every size is scored on the same items."""

    topic_train: int = 512  # documents the linear probe is fitted on
    topic_test: int = 256  # held-out documents it is scored on
    topic_len: int = 64  # bytes per document
    cloze_items: int = 96  # cloze items (kept after the right-context filter)
    cloze_len: int = 64  # bytes of document an item is cut from
    gen_rows: int = 64  # prefixes continued
    gen_prefix: int = 32  # bytes of document given
    gen_len: int = 16  # bytes generated
    s2s_words: int = 2  # words per transduction source
    s2s_train: int = 1024  # pairs the families are fine-tuned on (steps x batch)
    s2s_test: int = 256  # held-out pairs
    s2s_steps: int = 64  # fine-tuning steps, the same for every family
    s2s_batch: int = 16  # pairs per step
    s2s_lr: float = 1e-3  # AdamW learning rate of the fine-tuning (constant)


def _rng(kind: str, split: int = 0) -> np.random.Generator:
    return np.random.default_rng([_TAG, sum(kind.encode()), split])


def _words(row: np.ndarray) -> list[bytes]:
    """The complete words of a row (its last, possibly cut, word dropped), without separators."""
    return bytes(row).split(b" ")[:-1]


# ---------------------------------------------------------------- topic


@dataclass(frozen=True)
class TopicData:
    rows: np.ndarray  # (n, topic_len) uint8 documents
    topic: np.ndarray  # (n,) the hidden topic each was drawn from
    posterior: np.ndarray  # (n, K) exact P(topic | row)


def topic_data(lang: Language, n: int, length: int, split: int) -> TopicData:
    rows, z = lang.sample_with_topics(_rng("topic", split), n, length)
    ll = lang.topic_log_likelihood(rows)
    post = np.exp(ll - ll.max(1, keepdims=True))
    return TopicData(rows, z, post / post.sum(1, keepdims=True))


# ---------------------------------------------------------------- cloze


@dataclass(frozen=True)
class ClozeData:
    left: list[bytes]  # the document up to the blank (ends with a space)
    right: list[bytes]  # what follows the blank: " " + next word + " "
    candidates: list[list[bytes]]  # four fillers per item
    exact: np.ndarray  # (n, 4) exact P(filler | left, right) renormalised over the four
    answer: np.ndarray  # (n,) index of the exact argmax


def _row_logp(lang: Language, texts: list[bytes]) -> np.ndarray:
    """Exact log P(text[1:] | text[0]) of byte strings of any lengths (the first byte is shared
    by all rows of one item, so it cancels in every comparison made here)."""
    width = max(map(len, texts))
    rows = np.full((len(texts), width), SEP, dtype=np.uint8)
    for i, t in enumerate(texts):
        rows[i, : len(t)] = np.frombuffer(t, dtype=np.uint8)
    with np.errstate(divide="ignore"):
        lp = lang.walk(rows)
    keep = np.arange(1, width)[None, :] < np.array([len(t) for t in texts])[:, None]
    return np.where(keep, lp, 0.0).sum(1)


def _pool(
    lang: Language, spell: list[bytes], ids: dict[bytes, int], words: list[bytes], t: int
) -> list[bytes]:
    """Fillers worth scoring exactly for a blank at word t: every word likely from the left
    (the 16 most frequent, the successors of word t-1, earlier words), every word that makes the
    next word likely (its predecessors in the successor table, the next word itself), the truth."""
    nxt = ids[words[t + 1]]
    pool = set(np.argsort(-lang.unigram)[:16].tolist()) | set(lang.succ[ids[words[t - 1]]].tolist())
    pool |= {ids[w] for w in words[:t]} | {nxt, ids[words[t]]}
    pool |= set(np.nonzero((lang.succ[: lang.bos] == nxt).any(1))[0].tolist())
    return [spell[i] for i in sorted(pool)]


def cloze_data(lang: Language, n: int, length: int) -> ClozeData:
    """`n` items whose exact best filler differs from the best one given the left context alone:
    each needs the word after the blank. The blank is the second-to-last whole word of a row."""
    spell = [bytes(lang.lex.spell[i, : lang.lex.length[i] - 1]) for i in range(lang.lex.n_words)]
    ids = {w: i for i, w in enumerate(spell)}
    rng = _rng("cloze")
    left: list[bytes] = []
    right: list[bytes] = []
    cands: list[list[bytes]] = []
    exact: list[np.ndarray] = []
    while len(exact) < n:
        docs = map(_words, lang.sample(rng, 2 * n, length))
        items = [(w, len(w) - 2) for w in docs if len(w) >= 4]
        pools = [_pool(lang, spell, ids, w, t) for w, t in items]
        texts = [
            b" ".join(w[:t]) + b" " + c + b" " + w[t + 1] + b" "
            for (w, t), pool in zip(items, pools)
            for c in pool
        ]
        full = np.split(_row_logp(lang, texts), np.cumsum([len(p) for p in pools])[:-1])
        tops = [np.argsort(-f, kind="stable")[:4] for f in full]
        only_left = _row_logp(
            lang,
            [
                b" ".join(w[:t]) + b" " + pool[i] + b" "
                for (w, t), pool, top in zip(items, pools, tops)
                for i in top
            ],
        ).reshape(-1, 4)
        for (w, t), pool, f, top, ol in zip(items, pools, full, tops, only_left):
            if np.argmax(ol) == 0 or len(exact) >= n:
                continue  # the left context alone finds the best filler: not a right-context item
            left.append(b" ".join(w[:t]) + b" ")
            right.append(b" " + w[t + 1] + b" ")
            cands.append([pool[i] for i in top])
            p = np.exp(f[top] - f[top].max())
            exact.append(p / p.sum())
    order = _rng("cloze", 1).permuted(np.tile(np.arange(4), (n, 1)), axis=1)  # answer anywhere
    probs = np.take_along_axis(np.array(exact), order, axis=1)
    shuffled = [[c[j] for j in o] for c, o in zip(cands, order)]
    return ClozeData(left, right, shuffled, probs, probs.argmax(1))


# ---------------------------------------------------------------- generation


@dataclass(frozen=True)
class GenerateData:
    prefix: np.ndarray  # (n, gen_prefix) uint8
    truth: np.ndarray  # (n, gen_len) the documents' own continuations: samples of the true language
    unigram: np.ndarray  # (256,) byte frequencies of documents (the floor's sampler)


def generate_data(lang: Language, n: int, prefix: int, length: int) -> GenerateData:
    rows = lang.sample(_rng("generate"), n, prefix + length)
    counts = np.bincount(lang.sample(_rng("generate", 1), 256, 128).ravel(), minlength=256)
    return GenerateData(rows[:, :prefix], rows[:, prefix:], counts / counts.sum())


def continuation_logp(lang: Language, prefix: np.ndarray, cont: np.ndarray) -> np.ndarray:
    """(n,) mean exact log p per continuation byte given the prefix and the bytes before it, each
    byte's log p floored at -log(256) (a uniform byte guess): once a continuation leaves the
    language (a byte it cannot produce) every later byte scores the floor."""
    with np.errstate(divide="ignore"):
        lp = lang.walk(np.concatenate([prefix, cont], axis=1))[:, prefix.shape[1] - 1 :]
    return np.maximum(lp, -np.log(256.0)).mean(1)


# ---------------------------------------------------------------- sequence to sequence


@dataclass(frozen=True)
class Seq2SeqData:
    src: np.ndarray  # (n, L) uint8, words and a trailing space, padded with spaces to L
    tgt: np.ndarray  # (n, L) the same words in reverse order, padded alike
    length: np.ndarray  # (n,) bytes of each pair's source (= its target's)


def reverse_words(text: bytes) -> bytes:
    """The transduction: "a bc d " -> "d bc a "."""
    return b" ".join(text.split(b" ")[:-1][::-1]) + b" "


def seq2seq_data(lang: Language, n: int, n_words: int, split: int) -> Seq2SeqData:
    docs = lang.sample(_rng("seq2seq", split), n, 96)
    texts = [b" ".join(_words(r)[:n_words]) + b" " for r in docs]
    L = max(map(len, texts))
    src = np.full((n, L), SEP, dtype=np.uint8)
    tgt = src.copy()
    for i, t in enumerate(texts):
        src[i, : len(t)] = np.frombuffer(t, dtype=np.uint8)
        tgt[i, : len(t)] = np.frombuffer(reverse_words(t), dtype=np.uint8)
    return Seq2SeqData(src, tgt, np.array([len(t) for t in texts]))


# ---------------------------------------------------------------- all of them, once per language


@dataclass(frozen=True)
class TaskData:
    topic_train: TopicData
    topic_test: TopicData
    cloze: ClozeData
    generate: GenerateData
    s2s_train: Seq2SeqData
    s2s_test: Seq2SeqData
    gen_ceiling: np.ndarray  # (n,) continuation_logp of the true continuations
    gen_floor: np.ndarray  # (n,) continuation_logp of byte-unigram samples


@functools.lru_cache(maxsize=2)
def task_data(lang: Language, spec: TaskSpec = TaskSpec()) -> TaskData:
    """Every task's items for one language (cached: a sweep's runs share them)."""
    gen = generate_data(lang, spec.gen_rows, spec.gen_prefix, spec.gen_len)
    floor = _rng("generate", 2).choice(256, size=gen.truth.shape, p=gen.unigram).astype(np.uint8)
    return TaskData(
        topic_data(lang, spec.topic_train, spec.topic_len, 0),
        topic_data(lang, spec.topic_test, spec.topic_len, 1),
        cloze_data(lang, spec.cloze_items, spec.cloze_len),
        gen,
        seq2seq_data(lang, spec.s2s_train, spec.s2s_words, 0),
        seq2seq_data(lang, spec.s2s_test, spec.s2s_words, 1),
        continuation_logp(lang, gen.prefix, gen.truth),
        continuation_logp(lang, gen.prefix, floor),
    )

"""Probe documents woven into the synthetic corpus, each with an exact next-byte distribution.

Three kinds of document measure three abilities (docs/emergence.md); a marker byte at x[0]
(never predicted) names the kind, so the true state stays a function of the visible prefix:

    icl        "k:vv," x pairs then "k=vv," x queries, "\\n"   a fresh random key -> value map per
               episode: only reading the context answers a query (associative recall)
    reasoning  "s>t," x symbols then "a2=c," x queries, "\\n"  a fresh random permutation f stated
               pair by pair; query "a h =" asks for f^h(a), h in 1..steps hops (difficulty knob)
    knowledge  "key=vv," repeated                            a fixed key -> value map of the whole
               corpus (Zipf over facts): only memorised facts answer it

A document is a run of independent fixed-length episodes (for knowledge, one fact each), so every
byte's probability depends on its own episode alone: it is either fixed by the prefix (the answer
after "=" is exactly determined) or uniform over a known set, which keeps E* exact.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

A = 97  # byte of "a": probe symbols are lower-case letters
COLON, EQ, COMMA, GT, NL, DIGIT0 = (ord(c) for c in ":=,>\n0")
KINDS = ("icl", "reasoning", "knowledge")
MARKERS = {"icl": 0x01, "reasoning": 0x02, "knowledge": 0x03}  # x[0] of a probe document
KIND_OF_MARKER = {m: k for k, m in MARKERS.items()}


@dataclass(unsafe_hash=True)
class ProbeConfig:
    """Every probe knob: the schema of `data.synthetic.probes` (Hydra) and the generator's input.
    Hashable, so sources built from equal configs share one cache entry; treat it as read-only."""

    fraction: float = 0.1  # share of documents (rows) that are probe documents; 0 turns probes off
    w_icl: float = 1.0  # relative share of each probe kind among probe documents
    w_reasoning: float = 1.0
    w_knowledge: float = 1.0
    value_len: int = 2  # letters per answer of icl and knowledge (exact match needs all of them)
    icl_pairs: int = 6  # key -> value definitions per icl episode (distinct one-letter keys)
    icl_queries: int = 6  # queries per icl episode
    reasoning_symbols: int = 6  # letters a.. permuted by each reasoning episode's relation f
    reasoning_steps: int = 3  # queries chain 1..reasoning_steps stated relations
    reasoning_queries: int = 6  # queries per reasoning episode
    knowledge_facts: int = 128  # size of the corpus-wide fact table
    knowledge_key_len: int = 3  # letters per fact key
    knowledge_zipf: float = 0.5  # fact frequency ~ rank^-zipf (0: all facts equally often)
    eval_rows: int = 32  # held-out rows per probe kind scored at each evaluation point

    def chance(self, kind: str) -> float:
        """Exact-match accuracy of a guesser that knows the answer format but not the content:
        one of the episode's values (icl), one of its letters (reasoning), one of the corpus's
        facts (knowledge). Accuracy at this level is the format learned, not the ability."""
        return {
            "icl": 1 / self.icl_pairs,
            "reasoning": 1 / self.reasoning_symbols,
            "knowledge": 1 / self.knowledge_facts,
        }[kind]


class _Kind:
    """One probe kind: fixed-length episodes, a sampler and an exact per-episode scorer."""

    name: str
    E: int  # bytes per episode
    answer_offsets: np.ndarray  # (queries, answer_len) offsets of answer bytes inside an episode

    def sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """(m, E) uint8: m independent episodes."""
        raise NotImplementedError

    def probs(self, ep: np.ndarray) -> np.ndarray:
        """(m, E, 256): p(ep[:, o] | ep[:, :o]) for every offset o (episodes are independent)."""
        raise NotImplementedError

    def groups(self, ep: np.ndarray) -> np.ndarray:
        """(m, queries) int label of each query (hops for reasoning, fact id for knowledge)."""
        return np.zeros((len(ep), len(self.answer_offsets)), dtype=np.int64)


def _put(out: np.ndarray, o: int, byte: int | np.ndarray) -> None:
    """A byte fixed by the prefix: probability 1 at `byte` (one per episode) at offset o."""
    out[np.arange(len(out)), o, byte] = 1.0


def _letters(ep: np.ndarray, cols, n: int) -> np.ndarray:
    """Letter indices 0..n-1 of the bytes at `cols` (clipped: a non-letter row is dead anyway)."""
    return np.clip(ep[:, cols].astype(np.int64) - A, 0, n - 1)


class ICL(_Kind):
    name = "icl"

    def __init__(self, spec: ProbeConfig):
        self.K, self.Q, self.V = spec.icl_pairs, spec.icl_queries, spec.value_len
        self.item = self.V + 3  # "k:vv," / "k=vv,"
        self.E = (self.K + self.Q) * self.item + 1
        q0 = self.K * self.item
        self.answer_offsets = q0 + np.arange(self.Q)[:, None] * self.item + 2 + np.arange(self.V)

    def sample(self, rng, m):
        K, Q, V = self.K, self.Q, self.V
        keys = np.argsort(rng.random((m, 26)), axis=1)[:, :K]  # a uniform random ordered K-subset
        vals = rng.integers(26, size=(m, K, V))
        pick = rng.integers(K, size=(m, Q))
        rows = np.arange(m)[:, None]
        defs = np.concatenate(
            [A + keys[..., None], np.full((m, K, 1), COLON), A + vals, np.full((m, K, 1), COMMA)], 2
        )
        qry = np.concatenate(
            [
                A + keys[rows, pick][..., None],
                np.full((m, Q, 1), EQ),
                A + vals[rows, pick],
                np.full((m, Q, 1), COMMA),
            ],
            2,
        )
        return np.concatenate(
            [defs.reshape(m, -1), qry.reshape(m, -1), np.full((m, 1), NL)], 1
        ).astype(np.uint8)

    def probs(self, ep):
        m, K, V, it = len(ep), self.K, self.V, self.item
        out = np.zeros((m, self.E, 256))
        used = np.zeros((m, 26), dtype=bool)
        r = np.arange(m)
        for i in range(
            K
        ):  # definitions: a key not used yet in this episode, then V uniform letters
            o = i * it
            out[:, o, A : A + 26] = ~used / (26 - i)
            used[r, _letters(ep, o, 26)] = True
            _put(out, o + 1, COLON)
            out[:, o + 2 : o + 2 + V, A : A + 26] = 1 / 26
            _put(out, o + 2 + V, COMMA)
        keys = _letters(ep, np.arange(K) * it, 26)  # (m, K)
        table = np.zeros((m, 26, V), dtype=np.int64)
        table[r[:, None], keys] = _letters(
            ep, np.arange(K)[:, None] * it + 2 + np.arange(V), 26
        ).reshape(m, K, V)
        for j in range(self.Q):  # queries: one of the K defined keys, then its value exactly
            o = K * it + j * it
            np.add.at(out, (r[:, None], o, A + keys), 1.0 / K)
            _put(out, o + 1, EQ)
            q = _letters(ep, o, 26)
            for v in range(V):
                _put(out, o + 2 + v, A + table[r, q, v])
            _put(out, o + 2 + V, COMMA)
        _put(out, self.E - 1, NL)
        return out


class Reasoning(_Kind):
    name = "reasoning"

    def __init__(self, spec: ProbeConfig):
        self.R, self.H, self.Q = (
            spec.reasoning_symbols,
            spec.reasoning_steps,
            spec.reasoning_queries,
        )
        self.E = self.R * 4 + self.Q * 5 + 1  # "s>t," per relation, "a2=c," per query, "\n"
        self.answer_offsets = (self.R * 4 + np.arange(self.Q) * 5 + 3)[:, None]

    def sample(self, rng, m):
        R, H, Q = self.R, self.H, self.Q
        src = np.argsort(rng.random((m, R)), axis=1)  # statement order over the sources
        tgt = np.argsort(rng.random((m, R)), axis=1)  # f(src[i]) = tgt[i]: a uniform permutation
        rows = np.arange(m)[:, None]
        f = np.empty((m, R), dtype=np.int64)
        f[rows, src] = tgt
        start, hops = rng.integers(R, size=(m, Q)), rng.integers(1, H + 1, size=(m, Q))
        ans = start.copy()
        for s in range(1, H + 1):
            ans = np.where(hops >= s, f[rows, ans], ans)
        stm = np.stack([A + src, np.full((m, R), GT), A + tgt, np.full((m, R), COMMA)], 2)
        qry = np.stack(
            [A + start, DIGIT0 + hops, np.full((m, Q), EQ), A + ans, np.full((m, Q), COMMA)], 2
        )
        return np.concatenate(
            [stm.reshape(m, -1), qry.reshape(m, -1), np.full((m, 1), NL)], 1
        ).astype(np.uint8)

    def probs(self, ep):
        m, R, H = len(ep), self.R, self.H
        out = np.zeros((m, self.E, 256))
        r = np.arange(m)
        free_src, free_tgt = np.ones((m, R), dtype=bool), np.ones((m, R), dtype=bool)
        for i in range(R):  # statements: an unused source, ">", an unused target, ","
            o = 4 * i
            out[:, o, A : A + R] = free_src / (R - i)
            free_src[r, _letters(ep, o, R)] = False
            _put(out, o + 1, GT)
            out[:, o + 2, A : A + R] = free_tgt / (R - i)
            free_tgt[r, _letters(ep, o + 2, R)] = False
            _put(out, o + 3, COMMA)
        f = np.zeros((m, R), dtype=np.int64)
        f[r[:, None], _letters(ep, np.arange(R) * 4, R)] = _letters(ep, np.arange(R) * 4 + 2, R)
        for j in range(self.Q):  # queries: any start, any hop count, then f^h(start) exactly
            o = 4 * R + 5 * j
            out[:, o, A : A + R] = 1 / R
            out[:, o + 1, DIGIT0 + 1 : DIGIT0 + H + 1] = 1 / H
            _put(out, o + 2, EQ)
            cur, hops = _letters(ep, o, R), np.clip(ep[:, o + 1].astype(np.int64) - DIGIT0, 1, H)
            for s in range(1, H + 1):
                cur = np.where(hops >= s, f[r, cur], cur)
            _put(out, o + 3, A + cur)
            _put(out, o + 4, COMMA)
        _put(out, self.E - 1, NL)
        return out

    def groups(self, ep):
        return ep[:, self.R * 4 + np.arange(self.Q) * 5 + 1].astype(np.int64) - DIGIT0


class Knowledge(_Kind):
    name = "knowledge"

    def __init__(self, spec: ProbeConfig, seed: int):
        self.F, self.L, self.V = spec.knowledge_facts, spec.knowledge_key_len, spec.value_len
        rng = np.random.default_rng([0xFAC7, seed])  # the facts are part of the language
        self.codes = np.sort(rng.choice(26**self.L, self.F, replace=False))  # keys, base 26, sorted
        self.values = rng.integers(26, size=(self.F, self.V))
        weight = np.zeros(self.F)
        weight[rng.permutation(self.F)] = 1.0 / np.arange(1, self.F + 1) ** spec.knowledge_zipf
        self.weight = weight / weight.sum()
        self.cum = np.concatenate([[0.0], np.cumsum(self.weight)])  # prefix sums over sorted keys
        self.cdf = np.cumsum(self.weight)
        self.E = self.L + self.V + 2  # "key=vv,"
        self.answer_offsets = (self.L + 1 + np.arange(self.V))[None, :]

    def key_letters(self, ids: np.ndarray) -> np.ndarray:
        return (self.codes[ids][..., None] // 26 ** np.arange(self.L - 1, -1, -1)) % 26

    def sample(self, rng, m):
        ids = np.minimum(np.searchsorted(self.cdf, rng.random(m), side="right"), self.F - 1)
        cols = [
            A + self.key_letters(ids),
            np.full((m, 1), EQ),
            A + self.values[ids],
            np.full((m, 1), COMMA),
        ]
        return np.concatenate(cols, 1).astype(np.uint8)

    def _ids(self, ep: np.ndarray) -> np.ndarray:
        code = (_letters(ep, np.arange(self.L), 26) * 26 ** np.arange(self.L - 1, -1, -1)).sum(1)
        return np.minimum(np.searchsorted(self.codes, code), self.F - 1)

    def probs(self, ep):
        m = len(ep)
        out = np.zeros((m, self.E, 256))
        code = np.zeros(m, dtype=np.int64)
        for j in range(self.L):  # key letters: the fact mass under each one-letter extension
            span = 26 ** (self.L - j - 1)
            lo = (code[:, None] * 26 + np.arange(26)) * span
            mass = (
                self.cum[np.searchsorted(self.codes, lo + span)]
                - self.cum[np.searchsorted(self.codes, lo)]
            )
            total = mass.sum(
                1, keepdims=True
            )  # 0 only past the row end or after an impossible byte
            out[:, j, A : A + 26] = mass / np.where(total > 0, total, 1.0)
            code = code * 26 + _letters(ep, j, 26)
        _put(out, self.L, EQ)
        ids = self._ids(ep)
        for v in range(self.V):
            _put(out, self.L + 1 + v, A + self.values[ids, v])
        _put(out, self.E - 1, COMMA)
        return out

    def groups(self, ep):
        return self._ids(ep)[:, None]


@dataclass(frozen=True)
class Answers:
    """Where the answers of a batch of probe rows are: cols (n, V) prediction columns (t - 1) of
    the answer bytes of each query slot, group (B, n) its label, keep (B, n) whether it is
    scored."""

    cols: np.ndarray
    group: np.ndarray
    keep: np.ndarray


class Probes:
    """The probe kinds of one language: mixture sampling, exact scoring, held-out eval sets."""

    def __init__(self, spec: ProbeConfig, seed: int):
        self.spec = spec
        self.kinds: dict[str, _Kind] = {
            "icl": ICL(spec),
            "reasoning": Reasoning(spec),
            "knowledge": Knowledge(spec, seed),
        }
        w = np.array([spec.w_icl, spec.w_reasoning, spec.w_knowledge], dtype=np.float64)
        self.mix = w / w.sum()

    def _episodes(self, kind: str, rows: np.ndarray) -> np.ndarray:
        """(B, n_ep, E) episodes of rows (B, L) after the marker, zero-padded past the row end."""
        k = self.kinds[kind]
        B, L = rows.shape
        n_ep = -(-(L - 1) // k.E)
        body = np.zeros((B, n_ep * k.E), dtype=rows.dtype)
        body[:, : L - 1] = rows[:, 1:]
        return body.reshape(B, n_ep, k.E)

    def sample(self, rng: np.random.Generator, kind: str, n: int, length: int) -> np.ndarray:
        """(n, length) uint8 probe documents of one kind (marker byte, then whole episodes)."""
        k = self.kinds[kind]
        n_ep = -(-(length - 1) // k.E)
        body = k.sample(rng, n * n_ep).reshape(n, n_ep * k.E)[:, : length - 1]
        return np.concatenate([np.full((n, 1), MARKERS[kind], dtype=np.uint8), body], 1)

    def walk(self, rows: np.ndarray, full: bool = False) -> np.ndarray:
        """Exact log p(x[t] | x[:t]) (B, L-1) of probe rows (all of the kind named by x[0]), or with
        full=True p over all bytes (B, L-1, 256); an impossible byte gives -inf from there on (NaN
        distributions after it), as `Language.walk` does."""
        rows = np.asarray(rows)
        B, L = rows.shape
        kinds = {KIND_OF_MARKER.get(int(m)) for m in rows[:, 0]}
        kind = kinds.pop() if len(kinds) == 1 else None
        if kind is None:
            raise ValueError("walk needs rows that all start with the same probe marker byte")
        ep = self._episodes(kind, rows)
        p = self.kinds[kind].probs(ep.reshape(-1, ep.shape[2])).reshape(B, -1, 256)[:, : L - 1]
        picked = np.take_along_axis(p, rows[:, 1:, None].astype(np.int64), 2)[..., 0]
        dead = np.cumsum(picked <= 0, axis=1) > 0
        if full:
            before = np.concatenate([np.zeros((B, 1), dtype=bool), dead[:, :-1]], 1)
            p[before] = np.nan
            return p
        with np.errstate(divide="ignore"):
            return np.where(dead, -np.inf, np.log(np.where(dead, 1.0, picked)))

    def eval_rows(self, kind: str, length: int, seed: int) -> np.ndarray:
        """The held-out evaluation rows of a kind: `spec.eval_rows` rows from their own RNG stream
        (fresh maps and relations for icl and reasoning; the corpus facts for knowledge)."""
        rng = np.random.default_rng([0xE7A1, seed, KINDS.index(kind)])
        return self.sample(rng, kind, self.spec.eval_rows, length)

    def answers(self, kind: str, rows: np.ndarray) -> Answers:
        """The answer positions of every complete query in rows of one kind (see `Answers`)."""
        k = self.kinds[kind]
        ep = self._episodes(kind, np.asarray(rows))
        B, n_ep, E = ep.shape
        cols = (np.arange(n_ep)[:, None, None] * E + k.answer_offsets[None]).reshape(
            -1, k.answer_offsets.shape[1]
        )
        inside = cols.max(1) < rows.shape[1] - 1
        group = k.groups(ep.reshape(B * n_ep, E)).reshape(B, -1)
        keep = np.broadcast_to(inside, group.shape).copy()
        if (
            kind == "knowledge"
        ):  # score a fact only at its first occurrence in the row (memory, not copying)
            for b in range(B):
                _, first = np.unique(group[b], return_index=True)
                seen_first = np.zeros(group.shape[1], dtype=bool)
                seen_first[first] = True
                keep[b] &= seen_first
        return Answers(cols[inside], group[:, inside], keep[:, inside])


@functools.lru_cache(maxsize=8)
def probes_for(spec: ProbeConfig, seed: int) -> Probes:
    """Probes are immutable: build each (spec, language seed) once per process."""
    return Probes(spec, seed)

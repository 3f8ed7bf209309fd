"""Task probes: which family suits which task (docs/tasks.md). Pure evaluation of a trained
model (its kept checkpoint), on items of the synthetic language with exact answers
(scaling/experiment/data/tasks.py); each family is asked in the way natural to it:

    topic     linear probe (softmax regression) on frozen mean-pooled final features, fitted on
              a train split, accuracy on held-out documents; the exact posterior's accuracy beside
    cloze     pick the exact best of four fillers of a blanked word that needs the next word:
              decoder log P(filler + rest | left); encoder P(filler | both sides), its masks
              revealed left to right; encoder-decoder its decoder writing the span after <s0>
    generate  continue a prefix by sampling (temperature 1): decoder left to right, encoder by
              unmasking a row of <mask>s left to right, encoder-decoder from the encoded prefix
              + <s0>; scored by the exact log p per byte, 0 = byte-unigram sampler, 1 = true text
    seq2seq   reverse a sentence's words after the same short fine-tuning of every family
              (steps, pairs, lr); exact match and per-byte accuracy on held-out pairs

`scaling tasks RUN_DIR|SWEEP_DIR ...` writes tasks.json into each run folder and tasks.csv into
each sweep folder; `scaling sweep` runs it after training when the preset sets sweep.tasks.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy import optimize, stats

from scaling import progress, runs
from scaling.errors import DataError
from scaling.experiment.config import token_source
from scaling.experiment.data.tasks import SEQ_SEP, TaskData, TaskSpec, continuation_logp, task_data
from scaling.experiment.models import Transformer, resolve_shape

TASKS_JSON = "tasks.json"
TASKS_CSV = "tasks.csv"
SCORES = ("topic_acc", "topic_bayes", "cloze_acc", "generate_score", "s2s_exact", "s2s_token")
N_BOOT = 1000
SPEC = TaskSpec()  # the probes' sizes (scaling/experiment/data/tasks.py)
MIN_CTX = 96  # the longest probe input: a 64-byte cloze row with a longer filler and the next word


def interval(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of per-item scores."""
    values = np.asarray(values, dtype=float)
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    res = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=N_BOOT,
        method="percentile",
        random_state=np.random.default_rng(seed),
        vectorized=True,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _pad(texts: list[bytes], fill: int = 0x20) -> tuple[torch.Tensor, np.ndarray]:
    """Byte strings as one (n, longest) id tensor padded with `fill`, and their lengths."""
    width = max(map(len, texts))
    out = np.full((len(texts), width), fill, dtype=np.int64)
    for i, t in enumerate(texts):
        out[i, : len(t)] = np.frombuffer(t, dtype=np.uint8)
    return torch.from_numpy(out), np.array([len(t) for t in texts])


def _batched(fn, *tensors: torch.Tensor, size: int = 256) -> torch.Tensor:
    """fn over row chunks of the tensors (bounded memory), concatenated."""
    starts = range(0, len(tensors[0]), size)
    return torch.cat([fn(*(t[i : i + size] for t in tensors)) for i in starts])


# ---------------------------------------------------------------- topic


@torch.no_grad()
def features(model: Transformer, rows: np.ndarray) -> np.ndarray:
    """(B, d) mean over positions of the final representation: the last LayerNorm's output
    (decoder, encoder) or the encoder's output that cross-attention reads (encoder-decoder)."""
    shape, grabbed = model.shape, []
    layer = model.ln_enc if shape.arch == "encoder_decoder" else model.ln_f
    hook = layer.register_forward_hook(lambda _m, _i, out: grabbed.append(out.mean(1)))
    try:
        idx = torch.from_numpy(rows.astype(np.int64))
        for i in range(0, len(idx), 256):
            chunk = idx[i : i + 256]
            if shape.arch == "encoder_decoder":
                model(chunk, torch.full((len(chunk), 1), shape.vocab_size + shape.n_spans))
            else:
                model(chunk)
    finally:
        hook.remove()
    return torch.cat(grabbed).double().numpy()


def linear_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, n_classes: int, l2: float = 1e-2
) -> np.ndarray:
    """Predicted classes of test_x from an L2-regularised softmax regression fitted on the
    standardised train_x (L-BFGS, deterministic)."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-8
    X = np.hstack([(train_x - mu) / sd, np.ones((len(train_x), 1))])
    Y = np.eye(n_classes)[train_y]
    shape = (X.shape[1], n_classes)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        W = w.reshape(shape)
        z = X @ W
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        grad = X.T @ (np.exp(logp) - Y) / len(X) + l2 * W
        return float(-(Y * logp).sum() / len(X) + 0.5 * l2 * (W**2).sum()), grad.ravel()

    w = optimize.minimize(
        loss, np.zeros(shape).ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 500}
    ).x.reshape(shape)
    return (np.hstack([(test_x - mu) / sd, np.ones((len(test_x), 1))]) @ w).argmax(1)


def topic_scores(model: Transformer, data: TaskData) -> dict[str, np.ndarray]:
    tr, te = data.topic_train, data.topic_test
    K = tr.posterior.shape[1]
    pred = linear_probe(features(model, tr.rows), tr.topic, features(model, te.rows), K)
    return {"topic_acc": pred == te.topic, "topic_bayes": te.posterior.argmax(1) == te.topic}


# ---------------------------------------------------------------- cloze


def _logp_at(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), -1).gather(-1, targets[..., None])[..., 0]


@torch.no_grad()
def cloze_choice_scores(
    model: Transformer, left: list[bytes], right: list[bytes], fillers: list[bytes]
) -> np.ndarray:
    """(n,) log-score of each (left, filler, right) in the family's own way (module doc)."""
    shape, V = model.shape, model.shape.vocab_size
    if shape.arch == "decoder":
        idx, lens = _pad([a + f + b for a, f, b in zip(left, fillers, right)])
        lp = _batched(lambda x: _logp_at(model(x[:, :-1]), x[:, 1:]), idx)
        start = np.array([len(a) for a in left]) - 1  # prediction column of the filler's first byte
        cols = np.arange(idx.shape[1] - 1)[None, :]
        keep = (cols >= start[:, None]) & (cols < lens[:, None] - 1)
        return (lp.double().numpy() * keep).sum(1)
    if shape.arch == "encoder":  # a row per filler byte: the bytes before it shown, the rest masked
        rows, where, owner = [], [], []
        for k, (a, f, b) in enumerate(zip(left, fillers, right)):
            for j in range(len(f)):
                rows.append(a + f[:j] + b"\x00" * (len(f) - j) + b)
                where.append((len(a) + j, f[j]))
                owner.append(k)
        idx, _ = _pad(rows)
        idx[idx == 0] = V  # the <mask>s
        pos = torch.tensor([w[0] for w in where])
        tgt = torch.tensor([w[1] for w in where])
        lp = _batched(lambda x, p, t: _logp_at(model(x)[torch.arange(len(x)), p], t), idx, pos, tgt)
        return np.bincount(owner, weights=lp.double().numpy(), minlength=len(left))
    s0, s1, start = V, V + 1, V + shape.n_spans  # sentinels and the decoder's start token
    src, _ = _pad([a + b"\x00" + b for a, b in zip(left, right)])
    src[src == 0] = s0
    tgt, lens = _pad([f for f in fillers])
    n, width = tgt.shape
    dec_in = torch.cat([torch.full((n, 1), start), torch.full((n, 1), s0), tgt], 1)
    target = torch.cat([torch.full((n, 1), s0), tgt, torch.zeros(n, 1, dtype=torch.long)], 1)
    target[torch.arange(n), torch.from_numpy(lens) + 1] = s1  # the span ends where <s1> begins
    logp = _batched(lambda s, d, t: _logp_at(model(s, d), t), src, dec_in, target).double().numpy()
    cols = np.arange(width + 2)[None, :]
    return (logp * ((cols >= 1) & (cols <= lens[:, None] + 1))).sum(1)


def cloze_scores(model: Transformer, data: TaskData) -> dict[str, np.ndarray]:
    c = data.cloze
    n = len(c.left)
    four = [(a, b, f) for a, b, fs in zip(c.left, c.right, c.candidates) for f in fs]
    flat = cloze_choice_scores(model, *map(list, zip(*four)))
    return {"cloze_acc": flat.reshape(n, 4).argmax(1) == c.answer}


# ---------------------------------------------------------------- generation


@torch.no_grad()
def generate(model: Transformer, prefix: np.ndarray, length: int, seed: int = 0) -> np.ndarray:
    """(n, length) bytes sampled at temperature 1 after each prefix, special ids excluded."""
    shape, V = model.shape, model.shape.vocab_size
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(prefix.astype(np.int64))
    n, P = x.shape

    def draw(logits: torch.Tensor) -> torch.Tensor:
        return torch.multinomial(torch.softmax(logits[:, :V].float(), -1), 1, generator=gen)[:, 0]

    if shape.arch == "decoder":
        for _ in range(length):
            x = torch.cat([x, draw(model(x)[:, -1])[:, None]], 1)
        return x[:, P:].numpy().astype(np.uint8)
    if shape.arch == "encoder":
        x = torch.cat([x, torch.full((n, length), V)], 1)
        for j in range(P, P + length):
            x[:, j] = draw(model(x)[:, j])
        return x[:, P:].numpy().astype(np.uint8)
    src = torch.cat([x, torch.full((n, 1), V)], 1)  # the continuation is the span after <s0>
    dec = torch.tensor([[V + shape.n_spans, V]]).expand(n, 2)
    for _ in range(length):
        dec = torch.cat([dec, draw(model(src, dec)[:, -1])[:, None]], 1)
    return dec[:, 2:].numpy().astype(np.uint8)


def generate_scores(model: Transformer, data: TaskData, lang) -> dict[str, np.ndarray]:
    g = data.generate
    logp = continuation_logp(lang, g.prefix, generate(model, g.prefix, g.truth.shape[1]))
    ceiling, floor = data.gen_ceiling.mean(), data.gen_floor.mean()
    return {"generate_score": (logp - floor) / (ceiling - floor)}


# ---------------------------------------------------------------- sequence to sequence


def s2s_batch(
    shape, src: np.ndarray, tgt: np.ndarray, length: np.ndarray
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """(model inputs, targets (B, L), which positions count (B, L)) of one family on pairs: the
    decoder reads source "|" target, the encoder source "|" <mask>s, the encoder-decoder the
    source in its encoder and the target after its start token."""
    V = shape.vocab_size
    s, t = torch.from_numpy(src.astype(np.int64)), torch.from_numpy(tgt.astype(np.int64))
    B, L = t.shape
    real = torch.arange(L)[None, :] < torch.from_numpy(length)[:, None]
    sep = torch.full((B, 1), SEQ_SEP)
    if shape.arch == "decoder":
        return {"idx": torch.cat([s, sep, t[:, :-1]], 1)}, t, real
    if shape.arch == "encoder":
        return {"idx": torch.cat([s, sep, torch.full((B, L), V)], 1)}, t, real
    start = torch.full((B, 1), V + shape.n_spans)
    return {"idx": s, "tgt": torch.cat([start, t[:, :-1]], 1)}, t, real


def _target_logits(model: Transformer, inputs: dict, L: int) -> torch.Tensor:
    """Logits (B, L, vocab) at the target positions (teacher forcing for the decoders)."""
    return model(**inputs)[:, -L:, : model.shape.vocab_size]


def finetune_seq2seq(model: Transformer, data: TaskData, spec: TaskSpec) -> Transformer:
    """A copy of `model` trained on the transduction: spec.s2s_steps AdamW steps of s2s_batch
    pairs each, the same pairs in the same order for every family."""
    tuned = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(tuned.parameters(), lr=spec.s2s_lr, weight_decay=0.0)
    tr = data.s2s_train
    for step in range(spec.s2s_steps):
        sel = np.arange(step * spec.s2s_batch, (step + 1) * spec.s2s_batch) % len(tr.src)
        inputs, t, real = s2s_batch(tuned.shape, tr.src[sel], tr.tgt[sel], tr.length[sel])
        logits = _target_logits(tuned, inputs, t.shape[1])
        loss = F.cross_entropy(logits[real].float(), t[real])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return tuned.eval()


@torch.no_grad()
def seq2seq_eval(
    model: Transformer, src: np.ndarray, tgt: np.ndarray, length: np.ndarray
) -> dict[str, np.ndarray]:
    """Per pair: every target byte the argmax (greedy decoding, for the decoders the same as
    argmax under teacher forcing), and the share of target bytes that are."""
    inputs, t, real = s2s_batch(model.shape, src, tgt, length)
    hit = (_target_logits(model, inputs, t.shape[1]).argmax(-1) == t) | ~real
    token = (hit & real).sum(1) / real.sum(1)
    return {"s2s_exact": hit.all(1).numpy(), "s2s_token": token.numpy()}


def seq2seq_scores(model: Transformer, data: TaskData, spec: TaskSpec) -> dict[str, np.ndarray]:
    te = data.s2s_test
    return seq2seq_eval(finetune_seq2seq(model, data, spec), te.src, te.tgt, te.length)


# ---------------------------------------------------------------- runs


def task_scores(model: Transformer, lang, spec: TaskSpec | None = None) -> dict[str, float]:
    """Every task score of one model, each with its bootstrap interval (_lo, _hi) and item count."""
    spec = spec or SPEC
    data = task_data(lang, spec)
    model.eval()
    per_item = {
        **topic_scores(model, data),
        **cloze_scores(model, data),
        **generate_scores(model, data, lang),
        **seq2seq_scores(model, data, spec),
    }
    out: dict[str, float] = {}
    for key in SCORES:
        lo, hi = interval(per_item[key])
        out.update(
            {
                key: float(np.mean(per_item[key])),
                f"{key}_lo": lo,
                f"{key}_hi": hi,
                f"{key}_n": int(len(per_item[key])),
            }
        )
    out["generate_ceiling"] = float(data.gen_ceiling.mean())
    out["generate_floor"] = float(data.gen_floor.mean())
    return out


def load_run(run_dir: Path) -> tuple[Transformer, object]:
    """The run's model from its kept checkpoint and its synthetic language."""
    ckpt = run_dir / runs.CHECKPOINT
    if not ckpt.is_file():
        raise DataError(
            f"{run_dir}: no {runs.CHECKPOINT} (the final weights); train it with "
            "train.keep_checkpoint=true (conf/sweep/architectures.yaml keeps them)"
        )
    cfg = OmegaConf.to_container(OmegaConf.load(run_dir / runs.CONFIG), resolve=True)
    assert isinstance(cfg, dict)  # a run's config.yaml is a mapping
    shape = resolve_shape(cfg["model"])
    if shape.ctx < MIN_CTX:
        raise DataError(
            f"{run_dir}: the task probes need model.ctx >= {MIN_CTX}, the run has {shape.ctx}"
        )
    source = token_source(cfg["data"], shape.ctx)
    if getattr(source, "language", None) is None:
        raise DataError(
            f"{run_dir}: the task probes need data=synthetic (exact answers), "
            f"got data={source.name}"
        )
    model = Transformer(shape, seed=0)
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["model"])
    return model.eval(), source.language


def probe_run(run_dir: Path, spec: TaskSpec | None = None) -> dict:
    """Score one finished run and write its tasks.json (atomically); returns the row."""
    result = runs.read_result(run_dir)
    start = time.perf_counter()
    model, lang = load_run(run_dir)
    scores = task_scores(model, lang, spec)
    row = {k: result.get(k) for k in ("run_id", "arch", "size", "N", "D", "C", "loss")}
    row.update(scores, tasks_wall_s=time.perf_counter() - start)
    runs.atomic_write_json(run_dir / TASKS_JSON, row)
    return row


def final_runs(sweep_dir: Path) -> list[Path]:
    """The finished run of the largest budget D of each (family, size): one model per size."""
    best: dict[tuple, tuple[float, Path]] = {}
    for d in runs.iter_run_dirs(sweep_dir):
        if runs.is_finished(d):
            r = runs.read_result(d)
            key = (r.get("arch"), r.get("size"), r.get("N"))
            if r.get("status") == "ok" and (key not in best or r["D"] > best[key][0]):
                best[key] = (r["D"], d)
    return sorted(d for _, d in best.values())


def probe_sweep(
    sweep_dir: Path, spec: TaskSpec | None = None, every_budget: bool = False, redo: bool = False
) -> Path:
    """tasks.json for each run of the sweep (the largest budget of each family and size, or
    every finished run) that lacks one, then tasks.csv of them all."""
    import pandas as pd

    from scaling.experiment.hardware import pick_threads

    torch.set_num_threads(pick_threads(0))  # a thread per idle core: a shared one stalls the others
    if every_budget:
        dirs = [d for d in runs.iter_run_dirs(sweep_dir) if runs.is_finished(d)]
    else:
        dirs = final_runs(sweep_dir)
    if not dirs:
        raise DataError(f"{sweep_dir}: no finished runs to probe")
    rows = []
    for d in dirs:
        if (d / TASKS_JSON).is_file() and not redo:
            rows.append(json.loads((d / TASKS_JSON).read_text()))
            continue
        row = probe_run(d, spec)
        progress.say(
            f"{row['run_id']}: "
            + "  ".join(f"{k}={row[k]:.3f}" for k in SCORES)
            + f"  ({row['tasks_wall_s']:.1f}s)"
        )
        rows.append(row)
    out = sweep_dir / TASKS_CSV
    table = pd.DataFrame(rows).sort_values(["arch", "N", "D"])
    runs.atomic_write_text(out, table.to_csv(index=False))
    return out


USAGE = """usage: scaling tasks PATH [PATH ...] [--every-budget] [--redo] [--out DIR]

Task probes (docs/tasks.md) of finished runs that kept their final weights
(train.keep_checkpoint=true): topic probe, cloze, generation, sequence to sequence. PATH is a
run folder (writes its tasks.json) or a sweep folder (its largest budget of each family and
size, or --every-budget every run; then its tasks.csv). Runs already probed are read back
unless --redo. --out DIR: the family x task report (tables, figures) of the sweep(s) there.

examples:
  scaling tasks runs/arch --out analysis/arch_tasks
"""


def main(argv: list[str], report: Callable[[list[Path], Path], Path] | None = None) -> int:
    """`scaling tasks` (USAGE); `report` writes the tables' report for --out
    (scaling/workflows.py gives the analysis wing's)."""
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    out = None
    if "--out" in argv:
        i = argv.index("--out")
        if i + 1 >= len(argv):
            raise DataError("--out needs a folder, e.g. --out analysis/arch_tasks")
        out, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2 :]
    flags = {"--every-budget", "--redo"}
    tables = []
    for arg in (a for a in argv if a not in flags):
        path = Path(arg)
        if (path / runs.RESULT).is_file():
            row = probe_run(path)
            progress.say(f"{path / TASKS_JSON}: " + "  ".join(f"{k}={row[k]:.3f}" for k in SCORES))
        elif path.is_dir():
            every, redo = "--every-budget" in argv, "--redo" in argv
            tables.append(probe_sweep(path, every_budget=every, redo=redo))
            progress.say(f"table: {tables[-1]}")
        else:
            raise DataError(f"{path}: not a run or sweep folder; pass e.g. runs/arch")
    if out is not None and report is not None:
        progress.say(f"report: {report(tables, out)}")
    return 0

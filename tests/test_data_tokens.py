"""data=tokens: a BPE tokenizer trained here on stdlib text, its ids in nanoGPT's .bin layout
and as a saved dataset of text; the model's vocabulary follows the data, and a small sweep on
the tokens trains and fits like a byte-level one."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest

from scaling import runs
from scaling.errors import ConfigError
from scaling.experiment.config import compose, resolve_run
from scaling.experiment.data import build_source
from scaling.experiment.train import train_run

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ("textwrap.py", "string.py", "glob.py", "fnmatch.py", "shlex.py", "difflib.py", "pprint.py")
TINY = [
    "model.size=null",
    "model.n_layers=1",
    "model.n_heads=1",
    "model.ctx=16",
    "train.batch_size=8",
    "data.val_tokens=256",
    "train.threads=1",
    "train.n_evals=3",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(folder, tokenizer.json, texts): a 400-token BPE trained on stdlib modules; the last
    module is the validation text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    root = tmp_path_factory.mktemp("corpus")
    texts = [(STDLIB / f).read_text() for f in FILES]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<|endoftext|>"])
    )
    tok.save(str(root / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    ids = [np.array(tok.encode(t).ids + [eos], dtype=np.uint16) for t in texts]
    np.concatenate(ids[:-1]).tofile(root / "train.bin")
    ids[-1].tofile(root / "val.bin")
    return root, root / "tokenizer.json", texts


def test_bin_memmaps_and_the_model_vocab_follows_the_tokenizer(corpus, tmp_path):
    root, tok, _ = corpus
    spec = resolve_run(
        compose(
            [
                f"runs_dir={tmp_path}",
                *TINY,
                "model.d_model=16",
                "train.tokens=2048",
                "data=tokens",
                f"data.tokens.path={root}",
                f"data.tokens.tokenizer={tok}",
            ]
        )
    )
    assert spec.shape.vocab_size == 400
    src = build_source(spec.config["data"], 16)
    rows = src.val_batch().numpy()
    val = np.fromfile(root / "val.bin", dtype=np.uint16)
    assert rows.shape == (16, 17) and all(np.isin(r, val).all() for r in rows)
    assert (
        src.train_batch(3, 8, 0) == src.train_batch(3, 8, 0)
    ).all()  # a pure function of (seed, step)
    plain = resolve_run(
        compose(
            [
                f"runs_dir={tmp_path}",
                *TINY,
                "model.d_model=16",
                "train.tokens=2048",
                "data=tokens",
                f"data.tokens.path={root}",
            ]
        )
    )
    assert (
        plain.shape.vocab_size
        == int(max(np.fromfile(root / "train.bin", np.uint16).max(), val.max())) + 1
    )
    with pytest.raises(ConfigError, match=r"whole number of uint32 tokens|past the vocabulary"):
        resolve_run(
            compose(
                [
                    f"runs_dir={tmp_path}",
                    *TINY,
                    "model.d_model=16",
                    "data=tokens",
                    f"data.tokens.path={root}",
                    "data.tokens.dtype=uint32",
                    "data.tokens.vocab_size=400",
                ]
            )
        )


def test_saved_dataset_tokenizes_to_the_same_rows(corpus, tmp_path):
    import datasets

    root, tok, texts = corpus
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": texts[:-1]}),
            "validation": datasets.Dataset.from_dict({"text": texts[-1:]}),
        }
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    data = {
        "name": "tokens",
        "val_tokens": 256,
        "tokens": {"path": str(tmp_path / "ds"), "tokenizer": str(tok)},
    }
    from_ds = build_source(data, 16)
    from_bin = build_source({**data, "tokens": {"path": str(root), "tokenizer": str(tok)}}, 16)
    assert from_ds.vocab_size == from_bin.vocab_size == 400
    assert (from_ds.val_batch() == from_bin.val_batch()).all()
    assert (from_ds.train_batch(5, 4, 1) == from_bin.train_batch(5, 4, 1)).all()
    with pytest.raises(ConfigError, match=r"set data.tokens.tokenizer"):
        build_source({**data, "tokens": {"path": str(tmp_path / "ds")}}, 16)


def test_a_sweep_on_bpe_tokens_trains_and_fits(corpus, tmp_path):
    from scaling.analysis.laws.study import FitOptions, fit_study
    from scaling.analysis.tables import load_points

    root, tok, _ = corpus
    for d in (8, 16, 32):
        for tokens in (2048, 4096):
            result = train_run(
                compose(
                    [
                        f"runs_dir={tmp_path}",
                        *TINY,
                        f"model.d_model={d}",
                        f"train.tokens={tokens}",
                        "sweep=single",
                        "data=tokens",
                        f"data.tokens.path={root}",
                        f"data.tokens.tokenizer={tok}",
                    ]
                )
            )
            assert result["status"] == "ok" and result["vocab_size"] == 400
    pts = load_points(runs.sweep_dir(tmp_path, "single"))
    study = fit_study(pts, options=FitOptions(n_boot=0))
    assert len(pts) == 6 and study.approach3 is not None and np.isfinite(study.approach3.law.a)
    assert study.approach1 is not None  # the curves reached Approach 1


def test_tokens_settings_stay_out_of_other_runs_ids(tmp_path, corpus):
    """data.tokens is part of a run's identity only for data=tokens, so the run ids of byte-level
    runs are those they had before the field existed (finished runs are still found)."""
    root, tok, _ = corpus
    base = [f"runs_dir={tmp_path}", *TINY, "model.d_model=16", "train.tokens=2048"]
    plain = resolve_run(compose(base)).run_id
    assert resolve_run(compose([*base, f"data.tokens.path={root}"])).run_id == plain
    mine = [*base, "data=tokens", f"data.tokens.path={root}"]
    assert (
        resolve_run(compose(mine)).run_id
        != resolve_run(compose([*mine, f"data.tokens.tokenizer={tok}"])).run_id
    )

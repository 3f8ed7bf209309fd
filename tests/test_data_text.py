"""Real-text sources: the stdlib split, user paths, determinism and one-line config errors."""

from __future__ import annotations

import pytest
import torch

from scaling.errors import ConfigError
from scaling.experiment.data import DataConfig, build_source
from scaling.experiment.data.text import split_files, stdlib_files

CTX = 32


def _corpus(tmp_path, n_files=40):
    """Files whose lines name their own file, so any window can be traced back to its file."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(n_files):
        (folder / f"doc{i:02d}.txt").write_text(
            "".join(f"<file {i:02d} line {j:03d}>\n" for j in range(60))
        )
    return folder


def _text(paths, **kw):
    return DataConfig(name="text", paths=[str(p) for p in paths], **kw)


def test_stdlib_split_is_deterministic_and_disjoint_by_file():
    files = stdlib_files()
    assert len(files) > 100 and all(key.endswith(".py") for key, _ in files)
    assert not any("site-packages" in key for key, _ in files)
    train, val = split_files(files, 0.1)
    again = split_files(
        list(reversed(files)), 0.1
    )  # the split depends on the paths, not their order
    assert (set(train), set(val)) == (set(again[0]), set(again[1]))
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(files)
    assert 0.05 < len(val) / len(files) < 0.15
    a = build_source(DataConfig(name="stdlib", val_tokens=2048), CTX)
    b = build_source(DataConfig(name="stdlib", val_tokens=2048), CTX)
    assert a.split == "file" and set(a.train_keys).isdisjoint(a.val_keys)
    assert torch.equal(a.val_batch(), b.val_batch()) and a.val_batch().shape == (64, CTX + 1)
    assert torch.equal(a.train_batch(3, 4, seed=1), b.train_batch(3, 4, seed=1))
    assert not torch.equal(a.train_batch(3, 4, seed=1), b.train_batch(3, 4, seed=2))
    assert a.entropy_floor is None and a.vocab_size == 256


def test_text_rows_come_from_their_own_split(tmp_path):
    cfg = _text([_corpus(tmp_path)], val_tokens=256, val_fraction=0.25)
    src = build_source(cfg, CTX)
    assert src.split == "file" and set(src.train_keys).isdisjoint(src.val_keys)
    val_ids = {k.split("doc")[1][:2] for k in src.val_keys}

    def file_ids(rows):
        return {
            tag
            for row in rows
            for tag in bytes(row.tolist()).decode().split("<file ")[1:]
            if len(tag) > 2
        }

    val_tags, train_tags = (
        {t[:2] for t in file_ids(rows)} for rows in (src.val_batch(), src.train_batch(0, 64, 0))
    )
    assert val_tags and train_tags and val_tags <= val_ids and not train_tags & val_ids
    assert torch.equal(src.val_batch(), build_source(cfg, CTX).val_batch())
    assert torch.equal(
        src.train_batch(5, 8, seed=2), build_source(cfg, CTX).train_batch(5, 8, seed=2)
    )


def test_globs_files_and_a_single_file_fallback(tmp_path):
    folder = _corpus(tmp_path, n_files=6)
    by_glob = build_source(_text([folder / "doc0[0-3].txt"], val_tokens=64, val_fraction=0.3), CTX)
    assert {k.rsplit("/", 1)[1] for k in by_glob.train_keys + by_glob.val_keys} <= {
        f"doc0{i}.txt" for i in range(4)
    }
    one = build_source(_text([folder / "doc05.txt"], val_tokens=64, val_fraction=0.2), CTX)
    assert one.split == "bytes"  # one file cannot be split by file: its tail is the validation text
    text = (folder / "doc05.txt").read_bytes()
    tail = text[int(len(text) * 0.8) :]
    assert all(bytes(row.tolist()) in tail for row in one.val_batch())
    assert all(
        bytes(row.tolist()) in text[: int(len(text) * 0.8)] for row in one.train_batch(0, 16, 0)
    )


def test_text_errors_name_the_problem(tmp_path):
    folder = _corpus(tmp_path, n_files=4)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    (tmp_path / "blank.txt").write_text("")
    cases = [
        (DataConfig(name="text"), "data.paths"),
        (_text([tmp_path / "nope.txt"]), "nope.txt"),
        (_text([tmp_path / "*.md"]), "matches no files"),
        (_text([empty_dir]), "no files"),
        (_text([tmp_path / "blank.txt"]), "empty"),
        (_text([folder], val_tokens=10**6), "data.val_tokens"),
        (_text([folder], val_fraction=1.5), "data.val_fraction"),
    ]
    for cfg, needle in cases:
        with pytest.raises(ConfigError) as err:
            build_source(cfg, CTX)
        assert needle in str(err.value) and "\n" not in str(err.value), (needle, str(err.value))

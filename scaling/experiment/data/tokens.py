"""Your own tokens (`data=tokens`): nanoGPT's `train.bin`/`val.bin` memmaps (uint16 or uint32
token ids), or a Hugging Face dataset of text saved with `save_to_disk`, tokenized once through
the `tokenizers` library with a `tokenizer.json`. The vocabulary is the data's, and the model's
`vocab_size` follows it. Rows are windows of the token stream, as for bytes (`text.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.errors import ConfigError
from scaling.experiment.data.windows import FiniteCorpus

DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
VAL_SPLITS = ("validation", "val", "valid", "test")
EOS_NAMES = ("<|endoftext|>", "</s>", "<eos>", "[SEP]")


@dataclass
class TokensConfig:
    """Where the tokens are (conf/data/tokens.yaml)."""

    path: str = ""  # a folder with train.bin + val.bin, or a dataset folder (save_to_disk)
    dtype: str = "uint16"  # of the .bin files: uint16 | uint32 (vocabularies past 65535)
    vocab_size: int | None = None  # None: the tokenizer's, else the largest id + 1
    tokenizer: str = ""  # tokenizer.json: required for a dataset of text, optional for .bin
    text_field: str = "text"  # the dataset column holding the text
    eos: str = ""  # token put between documents ("": the tokenizer's <|endoftext|>, </s>, ...)


def _tokenizer(cfg: TokensConfig):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError(
            "data=tokens with a tokenizer needs the tokenizers package: "
            "pip install 'scaling[tokens]'"
        ) from None
    try:
        return Tokenizer.from_file(str(Path(cfg.tokenizer).expanduser()))
    except Exception as err:  # the Rust side raises its own exception type
        raise ConfigError(
            f"data.tokens.tokenizer={cfg.tokenizer!r}: cannot load it ({err}); "
            "give a tokenizer.json saved by the tokenizers library"
        ) from None


def _bin(path: Path, dtype: str) -> np.ndarray:
    size, item = path.stat().st_size, np.dtype(DTYPES[dtype]).itemsize
    if size == 0 or size % item:
        raise ConfigError(
            f"{path}: {size} bytes is not a whole number of {dtype} tokens; "
            "set data.tokens.dtype to the type it was written with"
        )
    return np.memmap(path, dtype=DTYPES[dtype], mode="r")


def _encode(tok, texts, eos: int | None) -> np.ndarray:
    ids = []
    for start in range(0, len(texts), 1024):
        for enc in tok.encode_batch(list(texts[start : start + 1024])):
            ids.extend(enc.ids)
            if eos is not None:
                ids.append(eos)
    return np.asarray(ids, dtype=np.uint32)


def _dataset(cfg: TokensConfig, folder: Path, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) token streams of a saved dataset: its validation split, else its tail."""
    if not cfg.tokenizer:
        raise ConfigError(
            f"data.tokens.path={str(folder)!r} is a dataset of text: set "
            "data.tokens.tokenizer to a tokenizer.json"
        )
    try:
        from datasets import Dataset, load_from_disk
    except ImportError:
        raise ConfigError(
            "data=tokens on a saved dataset needs the datasets package: "
            "pip install 'scaling[tokens]'"
        ) from None
    try:
        ds = load_from_disk(str(folder))
    except Exception as err:  # datasets raises several types for a folder it cannot read
        raise ConfigError(
            f"data.tokens.path={str(folder)!r}: not a dataset saved by save_to_disk "
            f"({type(err).__name__}); give train.bin/val.bin or such a folder"
        ) from None
    tok = _tokenizer(cfg)
    eos = (
        tok.token_to_id(cfg.eos)
        if cfg.eos
        else next((i for i in map(tok.token_to_id, EOS_NAMES) if i is not None), None)
    )
    if cfg.eos and eos is None:
        raise ConfigError(f"data.tokens.eos={cfg.eos!r} is not in the tokenizer's vocabulary")
    splits = {"train": ds} if isinstance(ds, Dataset) else dict(ds)
    if "train" not in splits:
        raise ConfigError(
            f"data.tokens.path={str(folder)!r}: the dataset has no 'train' split "
            f"(it has {', '.join(splits)})"
        )
    for split in splits.values():
        if cfg.text_field not in split.column_names:
            raise ConfigError(
                f"data.tokens.text_field={cfg.text_field!r} is not a column of the dataset "
                f"(it has {', '.join(split.column_names)})"
            )
    train = _encode(tok, splits["train"][cfg.text_field], eos)
    val_name = next((s for s in VAL_SPLITS if s in splits), None)
    if val_name is not None:
        return train, _encode(tok, splits[val_name][cfg.text_field], eos)
    cut = int(len(train) * (1 - val_fraction))
    return train[:cut], train[cut:]


class TokenArraySource(FiniteCorpus):
    """Token ids as training rows (random windows, a pure function of seed and step) and fixed
    validation rows (non-overlapping windows chosen by the val seed); `entropy_floor` is None."""

    TRAIN_KEY = 0x7EB  # the training rows' random stream

    entropy_floor = None

    def __init__(
        self, cfg: TokensConfig, ctx: int, val_tokens: int, val_seed: int, val_fraction: float
    ):
        self.name, self.ctx = "tokens", ctx
        folder = Path(cfg.path).expanduser()
        if cfg.dtype not in DTYPES:
            raise ConfigError(f"data.tokens.dtype={cfg.dtype!r}: choose uint16 or uint32")
        if (folder / "train.bin").is_file() and (folder / "val.bin").is_file():
            self._train, val = (
                _bin(folder / "train.bin", cfg.dtype),
                _bin(folder / "val.bin", cfg.dtype),
            )
        elif folder.is_dir():
            self._train, val = _dataset(cfg, folder, val_fraction)
        else:
            raise ConfigError(
                f"data.tokens.path={cfg.path!r}: no such folder; give a folder with "
                "train.bin and val.bin, or a dataset saved by save_to_disk"
            )
        top = int(max(self._train.max(), val.max())) if len(self._train) and len(val) else 0
        vocab = cfg.vocab_size or (_tokenizer(cfg).get_vocab_size() if cfg.tokenizer else top + 1)
        if top >= vocab:
            raise ConfigError(
                f"data=tokens: token id {top} is past the vocabulary ({vocab}); set "
                "data.tokens.vocab_size or check data.tokens.dtype"
            )
        self.vocab_size = int(vocab)
        if len(self._train) < ctx + 1:
            raise ConfigError(
                f"data=tokens: the training split has {len(self._train)} tokens, fewer than "
                f"ctx+1={ctx + 1}; add data or lower model.ctx"
            )
        n_rows, n_chunks = -(-val_tokens // ctx), len(val) // (ctx + 1)
        if n_rows > n_chunks:
            raise ConfigError(
                f"data.val_tokens={val_tokens} needs {n_rows} rows of {ctx + 1} tokens but the "
                f"validation split holds {n_chunks}; lower data.val_tokens or add data"
            )
        chunks = np.sort(
            np.random.default_rng([0x70C, val_seed]).choice(n_chunks, n_rows, replace=False)
        )
        self._val = np.asarray(
            val[chunks[:, None] * (ctx + 1) + np.arange(ctx + 1)], dtype=np.int64
        )

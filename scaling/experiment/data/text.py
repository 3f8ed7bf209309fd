"""Real text as byte tokens: the interpreter's own standard library (`stdlib`) or user files
(`text`).

Files are split into train and validation by a hash of their relative path, so the split is
deterministic and disjoint by file; each split is the files' bytes joined by a NUL byte.
Training rows are random windows (a pure function of seed and step); validation rows are
non-overlapping windows chosen once from the validation split by the val seed.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sysconfig

import numpy as np

from scaling.errors import ConfigError
from scaling.experiment.data.windows import FiniteCorpus

FILE_SEP = b"\x00"  # marks the boundary between two files in a split
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_files() -> list[tuple[str, str]]:
    """(relative path, absolute path) of every *.py of the running interpreter's stdlib, sorted."""
    root = sysconfig.get_paths()["stdlib"]
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                out.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    if not out:
        raise ConfigError(
            f"no *.py files under the stdlib folder {root}; use data=text data.paths=[...] instead"
        )
    return out


def collect_paths(paths: list[str]) -> list[tuple[str, str]]:
    """Expand files, folders (recursive, hidden entries skipped) and globs to (key, path)s."""
    found: dict[str, str] = {}
    for entry in paths:
        spec = os.path.expanduser(entry)
        if glob.has_magic(spec):
            matches = sorted(m for m in glob.glob(spec, recursive=True) if os.path.isfile(m))
            if not matches:
                raise ConfigError(
                    f"data.paths entry {entry!r} matches no files; "
                    "fix the glob or the folder it names"
                )
            for m in matches:
                found.setdefault(os.path.normpath(m).replace(os.sep, "/"), m)
        elif os.path.isdir(spec):
            n = len(found)
            for folder, dirs, files in os.walk(spec):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        path = os.path.join(folder, name)
                        key = os.path.join(
                            os.path.basename(os.path.normpath(spec)), os.path.relpath(path, spec)
                        )
                        found.setdefault(key.replace(os.sep, "/"), path)
            if len(found) == n:
                raise ConfigError(
                    f"data.paths entry {entry!r} is a folder with no files; "
                    "add text files or remove it"
                )
        elif os.path.isfile(spec):
            found.setdefault(os.path.normpath(spec).replace(os.sep, "/"), spec)
        else:
            raise ConfigError(
                f"data.paths entry {entry!r} does not exist; fix the path (files, folders or globs)"
            )
    return sorted(found.items())


def _hash_unit(key: str) -> float:
    """A stable number in [0, 1) from a relative path (same on every machine and Python)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2.0**64


def split_files(files: list[tuple[str, str]], val_fraction: float) -> tuple[list, list]:
    """Deterministic disjoint (train, val) split of (key, path) pairs by hash of the key."""
    train = [f for f in files if _hash_unit(f[0]) >= val_fraction]
    val = [f for f in files if _hash_unit(f[0]) < val_fraction]
    return train, val


def _read(files: list[tuple[str, str]], budget: int) -> tuple[list[bytes], list[str]]:
    """Contents of non-empty files (in hash order) until `budget` bytes, and their keys."""
    parts, keys, size = [], [], 0
    for key, path in sorted(files, key=lambda f: _hash_unit(f[0])):
        if size >= budget:
            break
        try:
            with open(path, "rb") as fh:
                data = fh.read(budget - size)
        except OSError as err:
            msg = f"cannot read data file {path!r} ({err.strerror}); fix its permissions or drop it"
            raise ConfigError(msg) from err
        if data:
            parts.append(data)
            keys.append(key)
            size += len(data) + 1
    return parts, keys


class ByteSource(FiniteCorpus):
    """Bytes of real files as tokens; `entropy_floor` is None (unknown for real text)."""

    TRAIN_KEY = 0x7EA  # the training rows' random stream

    vocab_size = 256
    entropy_floor = None

    def __init__(
        self,
        name: str,
        files: list[tuple[str, str]],
        ctx: int,
        val_tokens: int,
        val_seed: int,
        val_fraction: float,
        max_bytes: int,
    ):
        self.name, self.ctx = name, ctx
        train_files, val_files = split_files(files, val_fraction)
        if train_files and val_files:
            self.split = "file"
            train_parts, self.train_keys = _read(train_files, int(max_bytes * (1 - val_fraction)))
            val_parts, self.val_keys = _read(val_files, max(int(max_bytes * val_fraction), 1))
        else:  # too few files to split by file: hold out the tail of every file instead
            self.split = "bytes"
            parts, keys = _read(files, max_bytes)
            cut = [int(len(p) * (1 - val_fraction)) for p in parts]
            train_parts = [p[:c] for p, c in zip(parts, cut)]
            val_parts = [p[c:] for p, c in zip(parts, cut)]
            self.train_keys = self.val_keys = keys
        if not train_parts and not val_parts:
            raise ConfigError(
                f"data={name}: every file is empty; point data.paths at files with text"
            )
        self._train = np.frombuffer(FILE_SEP.join(train_parts), dtype=np.uint8)
        self._val_text = np.frombuffer(FILE_SEP.join(val_parts), dtype=np.uint8)
        if len(self._train) < ctx + 1:
            raise ConfigError(
                f"data={name}: the training split has {len(self._train)} bytes, "
                f"fewer than ctx+1={ctx + 1}; "
                "add text, raise data.max_bytes or lower data.val_fraction"
            )
        n_rows = -(-val_tokens // ctx)
        n_chunks = len(self._val_text) // (ctx + 1)
        if n_rows > n_chunks:
            raise ConfigError(
                f"data.val_tokens={val_tokens} needs {n_rows} rows of {ctx + 1} bytes "
                f"but the validation split of data={name} holds {n_chunks}; "
                "lower data.val_tokens or add text / raise data.val_fraction"
            )
        chunks = np.sort(
            np.random.default_rng([0x7A1, val_seed]).choice(n_chunks, n_rows, replace=False)
        )
        self._val = self._val_text[chunks[:, None] * (ctx + 1) + np.arange(ctx + 1)]

"""`scaling reproduce analysis/<report>`: rerun the command a report's provenance records into a
temporary folder, check that its inputs still have the recorded sha256, and print every value of
`fits.json` that differs (numbers first). Exit 0 when inputs and values are identical, 1 otherwise.

Paths in the recorded command are relative to the folder it ran in (the repository root for the
committed reports), so run it from there. Never imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import shutil
import tempfile
from pathlib import Path

from scaling.errors import ConfigError, DataError

RERUNNABLE = ("report", "plot")
IGNORED = ("provenance",)  # date, Python version: where and when, not what


def read_manifest(folder: Path) -> dict:
    """The report's manifest.json (kind, files, provenance); one-line errors otherwise."""
    path = folder / "manifest.json"
    if not path.is_file():
        raise ConfigError(
            f"{folder}: no manifest.json; give a folder written by scaling report or scaling plot"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path}: not valid JSON ({err.msg}, line {err.lineno}); restore it from git"
        ) from None


def recorded_argv(command: str) -> list[str]:
    """The recorded `scaling report|plot ...` as argv after `scaling`; DataError otherwise."""
    words = shlex.split(command)
    if len(words) < 2 or words[0] != "scaling" or words[1] not in RERUNNABLE:
        raise DataError(
            f"recorded command {command!r} is not a scaling report/plot command; only "
            "those can be rerun (reports written through the Python API record none)"
        )
    return words[1:]


def with_out(argv: list[str], out: Path) -> list[str]:
    """argv with its --out replaced by (or extended with) `out`."""
    res, skip = [], False
    for _i, w in enumerate(argv):
        if skip:
            skip = False
            continue
        if w == "--out":
            skip = True
            continue
        if w.startswith("--out="):
            continue
        res.append(w)
    return res + ["--out", str(out)]


def input_changes(argv: list[str], recorded: list[dict]) -> list[str]:
    """Inputs whose sha256 differs from the recorded one, or that are missing now."""
    from scaling.analysis.fitcli import add_common_arguments
    from scaling.analysis.report import input_hashes

    p = argparse.ArgumentParser(add_help=False)
    add_common_arguments(p)
    paths, _ = p.parse_known_args(argv[1:])
    missing = [x for x in paths.paths if not Path(x).exists()]
    if missing:
        raise DataError(
            f"input {missing[0]} not found; run scaling reproduce from the folder the "
            "report was made in (the repository root for the committed reports)"
        )
    now = {i["path"]: i.get("sha256") for i in input_hashes(paths.paths)}
    out = []
    for item in recorded:
        if "sha256" not in item:
            continue
        cur = now.get(item["path"])
        if cur is None:
            out.append(f"input {item['path']}: recorded but not read now")
        elif cur != item["sha256"]:
            out.append(
                f"input {item['path']}: sha256 {cur[:12]}... now, {item['sha256'][:12]}... recorded"
            )
    return out


def differences(old, new, where: str = "") -> list[tuple[bool, str]]:
    """(is_number, 'path: recorded X, now Y') for every leaf that differs between two JSONs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            if where == "" and k in IGNORED:
                continue
            sub = f"{where}.{k}" if where else str(k)
            if k not in new or k not in old:
                out.append((False, f"{sub}: {'missing now' if k not in new else 'new'}"))
            else:
                out += differences(old[k], new[k], sub)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = enumerate(zip(old, new))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{where}[{i}]")]
    if old == new:
        return []
    number = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    return [(number, f"{where}: recorded {old!r}, now {new!r}")]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scaling reproduce",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="example:\n  scaling reproduce analysis/epoch_chinchilla",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "report", help="a folder written by scaling report or plot (it holds manifest.json)"
    )
    p.add_argument(
        "--keep", metavar="DIR", help="keep the rerun's output in DIR (default: a temporary folder)"
    )
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from scaling.cli import main as scaling_main

    folder = Path(args.report)
    manifest = read_manifest(folder)
    rerun = recorded_argv(manifest.get("command", ""))
    changed = input_changes(rerun, manifest.get("inputs", []))
    for line in changed:
        print(line)
    tmp = Path(tempfile.mkdtemp(prefix="scaling-reproduce-"))
    out = Path(args.keep) if args.keep else tmp / "out"
    try:
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            rc = scaling_main(with_out(rerun, out))
        if rc != 0:
            print(f"the recorded command failed (exit {rc}): scaling {shlex.join(rerun)}")
            return 1
        diffs: list[tuple[bool, str]] = []
        new_files = sorted(read_manifest(out).get("files", []))
        if new_files != sorted(manifest.get("files", [])):
            n_old = len(manifest.get("files", []))
            diffs.append((False, f"files: recorded {n_old}, now {len(new_files)}"))
        if (folder / "fits.json").is_file():
            diffs += differences(
                json.loads((folder / "fits.json").read_text()),
                json.loads((out / "fits.json").read_text()),
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    numbers = [d for is_num, d in diffs if is_num]
    others = [d for is_num, d in diffs if not is_num]
    for line in numbers + others:
        print(line)
    print(
        f"{folder}: {len(numbers)} number(s) and {len(others)} other value(s) differ; "
        f"{len(changed)} input(s) changed" + (" (identical)" if not diffs and not changed else "")
    )
    return 0 if not diffs and not changed else 1

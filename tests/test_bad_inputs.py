"""Bad inputs across `scaling train|sweep|fit|plot|report`: each gets one line naming the
problem and the fix on stderr, exit code 2, and nothing is written (no run folder, no output
folder, no temp files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny import TINY_MODEL

from scaling.cli import main as cli_main

TINY = [
    *TINY_MODEL,
    "train.tokens=1280",
    "data.val_tokens=256",
    "train.precision=fp32",
    "train.device=cpu",
    "train.threads=1",
    "sweep.report=false",
]
GRID = ["sweep.name=tiny", "model.d_model=16,32"]

GOOD = "N,D,loss\n" + "".join(
    f"{n},{d},{1.7 + 400 / n**0.34 + 410 / d**0.28:.5f}\n"
    for n in (1e6, 3e6, 1e7, 3e7)
    for d in (2e7, 6e7, 2e8)
)


def _readonly(tmp: Path) -> Path:
    """A folder this process cannot write into. Root ignores permission bits, so as root it is a
    sysfs folder (the kernel refuses to create files there); otherwise a chmod 555 folder."""
    if os.geteuid() == 0:
        return Path("/sys/kernel")
    folder = tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# (id, argv with {tmp} and {ro} placeholders, what the one-line error must say)
CASES = [
    ("train-unknown-key", ["train", "train.nope=1"], "bad override"),
    ("train-wrong-type", ["train", "train.batch_size=abc"], "bad override"),
    ("train-heads-not-dividing", ["train", "model.n_heads=3"], "does not divide"),
    ("train-less-than-a-batch", ["train", "train.tokens=10"], "less than one batch"),
    ("train-nan-lr", ["train", "train.lr=nan"], "train.lr"),
    ("train-missing-preset", ["train", "data=nosuch"], "nosuch"),
    ("train-missing-text", ["train", "data=text", "data.paths=[{tmp}/missing.txt]"], "missing.txt"),
    ("train-readonly-runs-dir", ["train", "runs_dir={ro}/runs"], "cannot write"),
    ("sweep-bad-grid-point", ["sweep", *GRID, "model.n_heads=1,3"], "grid point"),
    ("sweep-missing-preset", ["sweep", "sweep=nosuch"], "nosuch"),
    ("sweep-missing-launcher", ["sweep", *GRID, "hydra/launcher=nosuch"], "nosuch"),
    ("sweep-bad-name", ["sweep", "sweep.name=a/b"], "plain folder name"),
    ("sweep-readonly-runs-dir", ["sweep", *GRID, "runs_dir={ro}/runs"], "cannot write"),
    ("fit-missing-path", ["fit", "{tmp}/nothing.csv"], "no such file"),
    ("fit-wrong-columns", ["fit", "{tmp}/wrong.csv"], "no loss column"),
    ("fit-nan-losses", ["fit", "{tmp}/nan.csv"], "NaN"),
    ("fit-unreadable-parquet", ["fit", "{tmp}/garbage.parquet"], "cannot read"),
    ("fit-empty-table", ["fit", "{tmp}/empty.csv"], "empty.csv"),
    ("fit-one-model-size", ["fit", "{tmp}/onesize.csv"], "size"),
    (
        "fit-readonly-json",
        ["fit", "{tmp}/good.csv", "--json", "{ro}/fits.json", "--bootstrap", "0"],
        "fits.json",
    ),
    ("plot-missing-path", ["plot", "{tmp}/nothing", "--out", "{tmp}/figs"], "no such file"),
    ("plot-out-is-a-file", ["plot", "{tmp}/good.csv", "--out", "{tmp}/good.csv"], "is a file"),
    (
        "plot-readonly-out",
        ["plot", "{tmp}/good.csv", "--out", "{ro}/figs", "--bootstrap", "0"],
        "figs",
    ),
    ("report-wrong-columns", ["report", "{tmp}/wrong.csv", "--out", "{tmp}/rep"], "no loss column"),
    (
        "report-foreign-out",
        ["report", "{tmp}/good.csv", "--out", "{tmp}/foreign"],
        "not written by",
    ),
    (
        "report-readonly-out",
        ["report", "{tmp}/good.csv", "--out", "{ro}/rep", "--bootstrap", "0"],
        "rep",
    ),
    ("report-nan-losses", ["report", "{tmp}/nan.csv", "--out", "{tmp}/rep"], "NaN"),
]


def _inputs(tmp: Path) -> None:
    (tmp / "good.csv").write_text(GOOD)
    (tmp / "wrong.csv").write_text(GOOD.replace("loss", "score"))
    lines = GOOD.splitlines()
    (tmp / "nan.csv").write_text(
        "\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",nan", *lines[2:]]) + "\n"
    )
    (tmp / "garbage.parquet").write_bytes(b"this is not a parquet file\n")
    (tmp / "empty.csv").write_text("")
    (tmp / "onesize.csv").write_text(
        "N,D,loss\n"
        + "".join(f"1000000,{d},{3 - k * 0.1}\n" for k, d in enumerate((2e7, 6e7, 2e8, 6e8)))
    )
    (tmp / "foreign").mkdir()
    (tmp / "foreign" / "notes.txt").write_text("mine\n")


def _tree(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("argv, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(
    tmp_path, monkeypatch, capsys, argv, expect
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # anything written relative to the working directory would show here
    _inputs(tmp_path)
    ro = _readonly(tmp_path)
    argv = [a.format(tmp=tmp_path, ro=ro) for a in argv]
    if argv[0] in ("train", "sweep"):
        argv = [
            argv[0],
            *TINY,
            *(
                []
                if any(a.startswith("runs_dir=") for a in argv)
                else [f"runs_dir={tmp_path}/runs"]
            ),
            *argv[1:],
        ]
    before = _tree(tmp_path)  # (the read-only folder is inside tmp_path, or is sysfs)
    rc = cli_main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith(f"scaling {argv[0]}: error: "), err
    assert expect in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert _tree(tmp_path) == before  # nothing written: no runs/, no output folder, no temp files
    assert not list(work.iterdir())


def test_the_table_covers_every_command_and_at_least_20_inputs():
    assert len(CASES) >= 20
    assert {c[1][0] for c in CASES} == {"train", "sweep", "fit", "plot", "report"}

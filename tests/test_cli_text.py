"""What the commands say: help with examples and the automatic column names, no traceback when a
pager stops reading, unit warnings for counts in other units, and `scaling reproduce`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.fitcli import build_parser
from scaling.analysis.laws import ChinchillaLaw
from scaling.analysis.reproduce import differences
from scaling.analysis.tables import load_points
from scaling.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_fit_help_is_whole_with_examples_and_aliases(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert (
        "fit Kaplan's law and the three Chinchilla approaches to sweep folders or any "
        "CSV/parquet/JSONL" in text
    )
    assert (
        "examples:" in text
        and "--fix-E floor" in text
        and "'Model Size'" in text
        and "'Training FLOP'" in text
    )
    for cmd in ("plot", "report"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert (
            "examples:" in out
            and f"scaling {cmd} runs/quick --out DIR" in out
            and "default: analysis/" in out
        )


def test_help_into_a_closed_pipe_has_no_traceback():
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaling.cli", "fit", "--help"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader left before the first byte, like `| head -0`
    err = proc.stderr.read().decode()
    proc.wait()
    assert "Traceback" not in err and "BrokenPipeError" not in err


def _table(path: Path, scale_tokens: float = 1.0) -> Path:
    law = ChinchillaLaw(E=1.7, A=400.0, B=410.0, alpha=0.34, beta=0.28)
    N, D = np.meshgrid(1e7 * 2.0 ** np.arange(5), 2e8 * 2.0 ** np.arange(5))
    rng = np.random.default_rng(0)
    loss = law.predict(N, D) * np.exp(0.005 * rng.standard_normal(N.shape))
    pd.DataFrame({"N": N.ravel(), "D": D.ravel() * scale_tokens, "loss": loss.ravel()}).to_csv(
        path, index=False
    )
    return path


def test_tokens_in_billions_warn(tmp_path):
    ok = load_points(_table(tmp_path / "ok.csv"))
    assert not [w for w in ok.warnings if w.startswith("units")]
    with pytest.warns(UserWarning, match="median D/N"):
        bad = load_points(_table(tmp_path / "billions.csv", scale_tokens=1e-9))
    assert any("D/N" in w for w in bad.warnings)
    frame = pd.read_csv(tmp_path / "ok.csv")
    frame["C"] = 6 * frame["N"] * frame["D"] / 8.64e19  # PF-days
    frame.to_csv(tmp_path / "pfdays.csv", index=False)
    with pytest.warns(UserWarning, match=r"C/\(6ND\)"):
        load_points(tmp_path / "pfdays.csv")


def test_reproduce_identical_then_changed_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _table(tmp_path / "t.csv")
    assert main(["report", "t.csv", "--bootstrap", "4", "--out", "rep"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "loss in units as given" in md and "nats/token" not in md  # someone else's table
    capsys.readouterr()
    assert main(["reproduce", "rep"]) == 0
    assert (
        "0 number(s) and 0 other value(s) differ; 0 input(s) changed (identical)"
        in capsys.readouterr().out
    )
    _table(tmp_path / "t.csv", scale_tokens=1.01)  # the input changed since
    assert main(["reproduce", "rep"]) == 1
    out = capsys.readouterr().out
    assert "input t.csv: sha256" in out and "approach3.alpha: recorded" in out


def test_differences_catch_one_bit_of_one_number():
    old = {"approach3": {"alpha": 0.34, "ci": {"a": [0.4, 0.6]}}, "provenance": {"date": "then"}}
    new = {
        "approach3": {"alpha": 0.34 + 1e-15, "ci": {"a": [0.4, 0.6]}},
        "provenance": {"date": "now"},
    }
    assert differences(old, new) == [
        (True, f"approach3.alpha: recorded 0.34, now {0.34 + 1e-15!r}")
    ]
    assert differences(old, old) == []


def test_reproduce_refuses_a_folder_without_manifest(tmp_path, capsys):
    assert main(["reproduce", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err

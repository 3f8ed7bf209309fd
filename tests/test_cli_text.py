"""What the commands say: help with examples and the automatic column names, no traceback when a
pager stops reading, unit warnings for counts in other units, and `scaling reproduce`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.cli import main
from scaling.fitcli import build_parser
from scaling.laws import ChinchillaLaw
from scaling.tables import load_points

ROOT = Path(__file__).resolve().parents[1]


def test_fit_help_is_whole_with_examples_and_aliases(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "fit Kaplan's law and the three Chinchilla approaches to sweep folders or any CSV/parquet/JSONL" in text
    assert "examples:" in text and "--fix-E floor" in text and "'Model Size'" in text and "'Training FLOP'" in text
    for cmd in ("plot", "report"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "examples:" in out and f"scaling {cmd} runs/quick --out DIR" in out and "default: analysis/" in out


def test_help_into_a_closed_pipe_has_no_traceback():
    proc = subprocess.Popen([sys.executable, "-m", "scaling.cli", "fit", "--help"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader left before the first byte, like `| head -0`
    err = proc.stderr.read().decode()
    proc.wait()
    assert "Traceback" not in err and "BrokenPipeError" not in err


def _table(path: Path, scale_tokens: float = 1.0) -> Path:
    law = ChinchillaLaw(E=1.7, A=400.0, B=410.0, alpha=0.34, beta=0.28)
    N, D = np.meshgrid(1e7 * 2.0 ** np.arange(5), 2e8 * 2.0 ** np.arange(5))
    rng = np.random.default_rng(0)
    loss = law.predict(N, D) * np.exp(0.005 * rng.standard_normal(N.shape))
    pd.DataFrame({"N": N.ravel(), "D": D.ravel() * scale_tokens, "loss": loss.ravel()}).to_csv(path, index=False)
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


def test_report_of_a_table_says_units_as_given(tmp_path):
    assert main(["report", str(_table(tmp_path / "t.csv")), "--bootstrap", "5", "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "loss in units as given" in md and "nats/token" not in md


def test_reproduce_identical_then_changed_input_and_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _table(tmp_path / "t.csv")
    assert main(["report", "t.csv", "--bootstrap", "8", "--out", "rep"]) == 0
    capsys.readouterr()
    assert main(["reproduce", "rep"]) == 0
    assert "0 number(s) and 0 other value(s) differ; 0 input(s) changed (identical)" in capsys.readouterr().out
    fits = json.loads((tmp_path / "rep" / "fits.json").read_text())
    fits["approach3"]["alpha"] += 1e-12  # one bit of one number
    (tmp_path / "rep" / "fits.json").write_text(json.dumps(fits))
    assert main(["reproduce", "rep"]) == 1
    assert "approach3.alpha: recorded" in capsys.readouterr().out
    _table(tmp_path / "t.csv", scale_tokens=1.01)  # the input changed since
    assert main(["reproduce", "rep"]) == 1
    assert "input t.csv: sha256" in capsys.readouterr().out


def test_reproduce_refuses_a_folder_without_manifest(tmp_path, capsys):
    assert main(["reproduce", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err

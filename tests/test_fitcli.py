"""`scaling fit`: readable output, --json schema, --group walk on Porian's data, bad input exits
2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaling.cli import main

REF = Path(__file__).resolve().parent / "data" / "reference"  # published tables, see its README


def test_group_walk_from_kaplan_to_tuned(tmp_path, capsys):
    out = tmp_path / "fits.json"
    rc = main(
        [
            "fit",
            str(REF / "porian2024_isoflop_points.csv"),
            "--c",
            "flops",
            "--group",
            "label",
            "--query",
            "source_file == 'summary_df'",
            "--bootstrap",
            "0",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "Reproducing Kaplan et al." in text and "Optimizer tuning (no decay)" in text
    groups = json.loads(out.read_text())["groups"]
    assert groups["Reproducing Kaplan et al."]["approach2"]["a"] == pytest.approx(0.834, abs=0.03)
    assert groups["Optimizer tuning (no decay)"]["approach2"]["a"] == pytest.approx(0.497, abs=0.03)
    walk = [
        groups[k]["approach2"]["a"]
        for k in (
            "Reproducing Kaplan et al.",
            "Counting last layer FLOPs",
            "Correcting warmup",
            "Cosine decay",
            "Optimizer tuning (no decay)",
        )
    ]
    assert walk == sorted(walk, reverse=True)  # each correction lowers a


def test_epoch_table_with_json(tmp_path, capsys):
    out = tmp_path / "e.json"
    assert (
        main(
            [
                "fit",
                str(REF / "epoch_chinchilla_svg_extracted_data.csv"),
                "--drop-top-loss",
                "5",
                "--bootstrap",
                "10",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    j = json.loads(out.read_text())
    assert j["n_points"] == 240 and j["approach3"]["alpha"] == pytest.approx(0.3473, abs=1e-3)
    assert "L(N, D) = 1.817 + 477.8/N^0.347" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, args, needle",
    [
        ("a,b,loss\n1,2,3\n", [], "found columns: a, b, loss"),
        ("N,D,loss\n1e6,1e8,x\n2e6,1e8,3\n", [], "not numeric"),
        ("N,D,loss\n1e6,1e8,nan\n2e6,1e8,3\n", [], "NaN"),
        ("N,D,loss\n1e6,1e8,inf\n2e6,1e8,3\n", [], "infinite"),
        ("N,D,loss\n1e6,-1e8,3\n2e6,1e8,3\n", [], "zero or negative"),
        (
            "N,D,loss\n" + "".join(f"1e6,{d}e8,{3 - d / 10}\n" for d in range(1, 9)),
            [],
            "one model size",
        ),
        ("N,D,loss\n1e6,1e8,3\n", [], "only 1 usable point"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, content, args, needle):
    path = tmp_path / "t.csv"
    path.write_text(content)
    assert main(["fit", str(path), "--bootstrap", "0", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err

"""scaling.analysis.tables: column mapping, derivation, validation messages, sweep folders and
curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.tables import load_points
from scaling.errors import DataError, FitWarning

REF = Path(__file__).resolve().parent / "data" / "reference"  # published tables, see its README


def _table(tmp_path, frame, name="t.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_derives_missing_axis_and_maps_columns(tmp_path):
    path = _table(
        tmp_path,
        pd.DataFrame(
            {"params": [1e6, 2e6, 4e6], "tokens": [1e8, 2e8, 3e8], "val_loss": [4.0, 3.5, 3.2]}
        ),
    )
    pts = load_points(path)  # defaults fall back to the aliases params / tokens / val_loss
    np.testing.assert_allclose(pts.frame["C"], 6 * pts.frame["N"] * pts.frame["D"])
    assert pts.columns["C"].startswith("derived")
    pts = load_points(
        _table(
            tmp_path,
            pd.DataFrame({"n": [1e6, 2e6], "flops": [6e14, 2.4e15], "loss": [3.0, 2.9]}),
            "u.csv",
        ),
        n="n",
        c="flops",
    )
    np.testing.assert_allclose(pts.frame["D"], [1e8, 2e8])


def test_missing_column_lists_found_columns(tmp_path):
    path = _table(tmp_path, pd.DataFrame({"size": [1, 2], "tok": [3, 4], "loss": [1.0, 2.0]}))
    with pytest.raises(DataError, match=r"found columns: size, tok, loss"):
        load_points(path)
    with pytest.raises(DataError, match=r"no loss column 'xent'"):
        load_points(path, loss="xent")


@pytest.mark.parametrize(
    "bad, word",
    [
        ("abc", "not numeric"),
        ("", "NaN"),
        ("inf", "infinite"),
        ("-1", "zero or negative"),
        ("0", "zero or negative"),
    ],
)
def test_bad_values_are_named(tmp_path, bad, word):
    path = tmp_path / "t.csv"
    path.write_text(f"N,D,loss\n1e6,1e8,3.0\n2e6,2e8,{bad}\n")
    with pytest.raises(DataError, match=word) as err:
        load_points(path)
    assert "'loss'" in str(err.value) and "\n" not in str(err.value)


def test_parquet_jsonl_and_query(tmp_path):
    frame = pd.DataFrame(
        {"N": [1e6, 2e6, 4e6], "D": [1e8, 1e8, 1e8], "loss": [3.0, 2.8, 2.7], "ds": ["a", "b", "a"]}
    )
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    assert len(load_points(tmp_path / "t.parquet")) == 3
    pts = load_points(tmp_path / "t.jsonl", query="ds == 'a'", group="ds")
    assert list(pts.frame["N"]) == [1e6, 4e6] and set(pts.frame["group"]) == {"a"}
    with pytest.raises(DataError, match="kept no rows"):
        load_points(tmp_path / "t.jsonl", query="ds == 'zzz'")


def test_epoch_filter_leaves_240_points():
    pts = load_points(REF / "epoch_chinchilla_svg_extracted_data.csv", drop_top_loss=5)
    assert len(pts) == 240
    raw = pd.read_csv(REF / "epoch_chinchilla_svg_extracted_data.csv")
    assert pts.frame["loss"].max() < np.sort(raw["loss"])[-5]


def _sweep(tmp_path):
    sweep = tmp_path / "runs" / "s"
    rows = []
    for k, (n, d) in enumerate([(1e5, 1e7), (2e5, 1e7), (4e5, 1e7)]):
        rid = f"r{k}"
        (sweep / rid).mkdir(parents=True)
        lines = [
            json.dumps(
                {
                    "step": s,
                    "tokens": d * s / 4,
                    "flops": 6 * n * d * s / 4,
                    "loss_train": 5 - s / 4,
                    "loss_val": 5 - s / 4 - k * 0.1,
                    "lr": 1e-3,
                    "wall_s": s,
                }
            )
            for s in (1, 2, 3, 4)
        ]
        text = "\n".join(lines) + "\n"
        if k == 2:
            text += '{"step": 5, "tok'  # a run killed mid-write
        (sweep / rid / "metrics.jsonl").write_text(text)
        rows.append(
            dict(
                run_id=rid,
                sweep="s",
                N=n,
                N_nonembed=n / 2,
                D=d,
                C=6 * n * d,
                loss=4 - k * 0.1,
                status="ok",
            )
        )
    rows.append(
        dict(
            run_id="r9",
            sweep="s",
            N=8e5,
            N_nonembed=4e5,
            D=1e7,
            C=4.8e13,
            loss=float("nan"),
            status="diverged",
        )
    )
    pd.DataFrame(rows).to_csv(sweep / "runs.csv", index=False)
    return sweep


def test_sweep_folder_reads_curves_and_warns_on_truncation(tmp_path):
    sweep = _sweep(tmp_path)
    with pytest.warns(FitWarning) as caught:
        pts = load_points(sweep)
    assert any("truncated" in str(w.message) for w in caught)
    assert len(pts) == 3  # the diverged run is left out
    assert any("diverged" in w for w in pts.warnings) and any(
        "truncated" in w for w in pts.warnings
    )
    assert pts.curves is not None and len(pts.curves) == 12
    first = pts.curves[pts.curves["run_id"] == "r0"].sort_values("tokens")
    np.testing.assert_allclose(first["flops"].iloc[-1], 6e12)  # C of the run at its last eval
    with pytest.warns(FitWarning):
        nonembed = load_points(tmp_path / "runs", n="N_nonembed")  # runs/ holding sweeps also works
    np.testing.assert_allclose(nonembed.frame["N"], [5e4, 1e5, 2e5])

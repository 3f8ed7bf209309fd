"""The run store: atomic writes, run ids, claims, runs.csv rebuilt from result.json files."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading

import pytest

from scaling import runs


def _result(run_id: str, N: int, D: int, loss: float, status: str = "ok") -> dict:
    return {
        "run_id": run_id,
        "sweep": "s",
        "arch": "decoder",
        "data": "synthetic",
        "size": "x",
        "N": N,
        "N_nonembed": N // 2,
        "D": D,
        "C": 6.0 * N * D,
        "C_6ND": 6.0 * N * D,
        "C_kaplan": 1.0,
        "C_chinchilla": 1.0,
        "loss": loss,
        "loss_train": loss,
        "entropy_floor": 0.5,
        "seed": 0,
        "status": status,
        "wall_s": 1.0,
        "tokens_per_s": float(D),
    }


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "result.json"
    runs.atomic_write_json(path, {"x": 1, "loss": float("nan")})
    runs.atomic_write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert os.listdir(path.parent) == ["result.json"]
    # NaN is not JSON: it is stored as null
    runs.atomic_write_json(path, {"loss": float("inf")})
    assert json.loads(path.read_text()) == {"loss": None}


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    runs.atomic_write_text(path, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        runs.atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_run_id_is_deterministic_and_tracks_identity():
    a = runs.make_run_id("s1-D1K", {"lr": 0.1, "seed": 0})
    assert a == runs.make_run_id("s1-D1K", {"seed": 0, "lr": 0.1})  # key order does not matter
    assert a != runs.make_run_id("s1-D1K", {"lr": 0.1, "seed": 1})
    assert a.startswith("s1-D1K-") and len(a.split("-")[-1]) == 8


def test_claim_is_exclusive_until_released(tmp_path):
    first = runs.claim(tmp_path / "run")
    assert first is not None
    assert runs.claim(tmp_path / "run") is None  # a second claimant (its own open file) is refused
    first.release(unlink=True)
    again = runs.claim(tmp_path / "run")
    assert again is not None
    again.release(unlink=True)
    assert not (tmp_path / "run" / runs.LOCK).exists()


def test_claim_held_by_another_process_is_refused_and_freed_when_it_dies(tmp_path):
    code = (
        "import sys, time; from scaling import runs; "
        f"lock = runs.claim({str(tmp_path / 'run')!r}); print('held', flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert runs.claim(tmp_path / "run") is None
    finally:
        proc.kill()
        proc.wait()
    lock = runs.claim(tmp_path / "run")  # the kernel dropped the dead holder's lock: no stale claim
    assert lock is not None
    lock.release()


def test_runs_csv_is_rebuilt_from_finished_runs_only(tmp_path):
    sweep = tmp_path / "quick"
    runs.atomic_write_json(sweep / "b" / runs.RESULT, _result("b", 200, 4000, 3.5))
    runs.atomic_write_json(
        sweep / "a" / runs.RESULT, _result("a", 100, 2000, float("nan"), "diverged")
    )
    (sweep / "c").mkdir()  # unfinished: metrics but no result.json
    (sweep / "c" / runs.METRICS).write_text("{}\n")
    (sweep / ".hydra").mkdir()
    rows = runs.read_runs_csv(runs.rebuild_runs_csv(sweep))
    assert [r["run_id"] for r in rows] == ["a", "b"]
    required = [
        "run_id",
        "arch",
        "N",
        "N_nonembed",
        "D",
        "C",
        "C_6ND",
        "loss",
        "loss_train",
        "entropy_floor",
        "seed",
        "status",
        "wall_s",
        "tokens_per_s",
    ]
    assert all(c in rows[0] for c in required)
    assert rows[0]["status"] == "diverged" and rows[0]["loss"] == ""
    assert float(rows[1]["loss"]) == 3.5 and float(rows[1]["C"]) == 6.0 * 200 * 4000
    # rebuilding again after a run is removed drops its row: the table is never appended to
    (sweep / "b" / runs.RESULT).unlink()
    assert [r["run_id"] for r in runs.read_runs_csv(runs.rebuild_runs_csv(sweep))] == ["a"]


def test_parallel_rebuilds_never_corrupt_runs_csv(tmp_path):
    sweep = tmp_path / "grid"
    errors = []

    def worker(k: int) -> None:
        try:
            for j in range(5):
                rid = f"r{k}-{j}"
                runs.atomic_write_json(
                    sweep / rid / runs.RESULT, _result(rid, 10 + k, 100 + j, 1.0 + j)
                )
                runs.rebuild_runs_csv(sweep)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = runs.read_runs_csv(runs.rebuild_runs_csv(sweep))
    assert len(rows) == 30 and len({r["run_id"] for r in rows}) == 30
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert not [p for p in os.listdir(sweep) if p.endswith(".tmp")]


def test_run_store_does_not_import_torch():
    code = "import sys, scaling.runs; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_runs_csv_columns_are_the_run_results_fields_and_optional_keys_come_when_set():
    values = {name: 1 for name in runs.RUNS_CSV_COLUMNS}
    plain = runs.RunResult(**values)
    assert list(plain.to_dict()) == runs.RUNS_CSV_COLUMNS  # unset optional fields are absent
    text = runs.runs_table_text([plain.to_dict()])
    assert text.splitlines()[0] == ",".join(runs.RUNS_CSV_COLUMNS)
    full = runs.RunResult(
        **values,
        entropy_floor_note="real text",
        unique_tokens=10,
        epochs=2.5,
        scores={"icl_acc": 0.5},
    )
    out = full.to_dict()
    assert list(out)[len(runs.RUNS_CSV_COLUMNS) :] == [
        "entropy_floor_note",
        "unique_tokens",
        "epochs",
        "icl_acc",
    ]
    header = runs.runs_table_text([plain.to_dict(), out]).splitlines()[0].split(",")
    assert header == runs.RUNS_CSV_COLUMNS + sorted(
        ["entropy_floor_note", "unique_tokens", "epochs", "icl_acc"]
    )

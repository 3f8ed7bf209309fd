"""--best-over: an lr sweep shaped like Li et al. 2025's (Mis)fitting table reduces to its best
run per (N, D), which fits as the table of those best runs does; the reduction is in provenance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import fitcli
from scaling.analysis.tables import load_points
from scaling.errors import DataError

LRS = (2**-1.5, 2**-0.5, 1.0, 2**0.5, 2.0)  # multiples of each size's best lr


def sweep(tmp_path):
    """sizes x budgets x peak lr: the loss rises as log(lr / lr_opt)^2, steeper for larger N."""
    rows = []
    for N in (1e6, 3e6, 1e7, 3e7):
        lr_opt = 0.02 * (N / 1e6) ** -0.5
        for D in (2e7, 6e7, 2e8):
            base = 1.8 + 300 / N**0.33 + 900 / D**0.3
            for m in LRS:
                rows.append(
                    dict(
                        model_size=N,
                        tokens=D,
                        peak_lr=lr_opt * m,
                        seed=0,
                        final_loss=base + 0.1 * (N / 1e6) ** 0.3 * np.log(m) ** 2,
                    )
                )
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # a published table's order
    path = tmp_path / "lr_sweep.csv"
    table.to_csv(path, index=False)
    best = table[np.isclose(table["peak_lr"] / (0.02 * (table["model_size"] / 1e6) ** -0.5), 1.0)]
    best_path = tmp_path / "best.csv"
    best.to_csv(best_path, index=False)
    return path, best_path


def fit_a(tmp_path, *args):
    out = tmp_path / "fit.json"
    assert fitcli.main([*args, "--bootstrap", "0", "--json", str(out)]) == 0
    return json.loads(out.read_text())["approach3"]["a"]


def test_best_over_lr_fits_like_the_table_of_best_runs(tmp_path, capsys):
    path, best = sweep(tmp_path)
    pts = load_points(path, best_over=["peak_lr"])
    assert len(pts) == 12 and pts.notes == [
        "best over peak_lr (20 values): kept the lowest loss of each (N, D), 12 of 60 rows"
    ]
    expected = fit_a(tmp_path, str(best))
    assert fit_a(tmp_path, str(path), "--best-over", "peak_lr") == pytest.approx(expected, rel=1e-6)
    assert "kept the lowest loss of each (N, D), 12 of 60 rows" in capsys.readouterr().out
    assert fit_a(tmp_path, str(path)) != pytest.approx(expected, rel=1e-3)  # the sweep unreduced


def test_best_over_is_in_the_report_provenance(tmp_path):
    from scaling.analysis.report import provenance

    path, _ = sweep(tmp_path)
    args = fitcli.build_parser().parse_args([str(path), "--best-over", "peak_lr,seed"])
    load = fitcli.load_kwargs(args)
    prov = provenance(
        [path], "scaling report ...", fitcli.fit_options(args), load_points(path, **load), load
    )
    assert prov["load"]["best_over"] == ("peak_lr", "seed")


def test_best_over_unknown_column_is_one_line(tmp_path):
    path, _ = sweep(tmp_path)
    with pytest.raises(DataError, match=r"--best-over names column\(s\) 'lr' that the table lacks"):
        load_points(path, best_over=["lr"])

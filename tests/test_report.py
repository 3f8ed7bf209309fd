"""`scaling plot` / `scaling report` and `write_report`: the files, their content and provenance,
groups side by side, and bad input failing like `scaling fit` (one line, exit 2, no output
folder)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_plots import REF, TRUE, write_sweep

from scaling.analysis import plots as P
from scaling.analysis.laws import FitOptions, fit_study, registry
from scaling.analysis.laws.text import seed_share_text
from scaling.analysis.report import write_report
from scaling.analysis.tables import load_points
from scaling.cli import main
from scaling.figure import DPI

FIGS = {
    "comparison",
    "loss_vs_n",
    "loss_vs_d",
    "isoflop",
    "approach1",
    "approach3_contours",
    "bootstrap",
    "residuals",
}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("runs") / "toy", seed=3)


@pytest.fixture(scope="module")
def report(sweep_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "toy"
    rc = main(["report", str(sweep_dir), "--bootstrap", "12", "--seed", "4", "--out", str(out)])
    assert rc == 0
    return out


def test_report_files_links_and_values(report, sweep_dir):
    assert {p.stem for p in report.glob("*.png")} == FIGS
    md = (report / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {Path(link).stem for link in links} == FIGS and all(
        (report / link).exists() for link in links
    )
    fits = json.loads((report / "fits.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = fit_study(load_points(sweep_dir), options=FitOptions(n_boot=12, seed=4))
    assert fits["approach3"]["alpha"] == pytest.approx(study.approach3.law.alpha)
    assert fits["approach2"]["ci"]["a"] == pytest.approx(list(study.ci("approach2", "a")))
    # the tables quote the fit: each approach's a and interval, the verdict, extrapolation errors
    for row in study.comparison.table:
        assert (
            f"| {P.LABEL[row.approach]} | {row.a:.3f} | [{row.a_ci[0]:.3f}, {row.a_ci[1]:.3f}] |"
            in md
        )
    assert study.comparison.verdict in md
    for law, err in study.comparison.extrapolation.errors.items():
        assert (f"{err:.2%}" if law != "approach2" else f"{err:.3f}") in md
    assert (
        f"entropy floor of the data): **{TRUE.E:.4f}**" in md
        and f"E = {study.approach3.law.E:.4f}" in md
    )


def test_provenance_hashes_command_version_date(report, sweep_dir):
    prov = json.loads((report / "fits.json").read_text())["provenance"]
    runs = next(i for i in prov["inputs"] if i["path"].endswith("runs.csv"))
    assert runs["sha256"] == hashlib.sha256((sweep_dir / "runs.csv").read_bytes()).hexdigest()
    metrics = next(i for i in prov["inputs"] if "metrics.jsonl" in i["path"])
    assert metrics["files"] == 49
    assert prov["command"].startswith("scaling report ") and "--bootstrap 12" in prov["command"]
    assert prov["toolkit"] == "scaling 0.1.0" and re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", prov["date"]
    )
    assert prov["options"]["n_boot"] == 12 and prov["options"]["seed"] == 4
    md = (report / "report.md").read_text()
    assert runs["sha256"] in md and prov["command"] in md
    manifest = json.loads((report / "manifest.json").read_text())
    assert set(manifest["files"]) == {p.name for p in report.iterdir() if p.name != "manifest.json"}


def test_write_report_api_replaces_its_own_folder(report, sweep_dir):
    """The call `scaling sweep` makes; a second report replaces the first (its own folder) in
    place."""
    before = (report / "fits.json").read_text()
    out = write_report(sweep_dir, report, FitOptions(n_boot=0), command="scaling sweep preset=toy")
    assert out == report
    fits = json.loads((report / "fits.json").read_text())
    assert (
        fits["provenance"]["command"] == "scaling sweep preset=toy" and fits["bootstrap"]["n"] == 0
    )
    assert before != (report / "fits.json").read_text()
    assert not (
        report / "bootstrap.png"
    ).exists()  # no resamples: that figure is listed as not drawn
    assert "`bootstrap` not drawn" in (report / "report.md").read_text()
    assert [p.name for p in report.parent.iterdir() if p.name.startswith(".")] == []


def test_failure_mid_write_leaves_previous_folder_intact(tmp_path, report, sweep_dir, monkeypatch):
    snapshot = {p.name: p.read_bytes() for p in report.iterdir()}
    before = sorted(p.name for p in report.parent.iterdir())

    def boom(self, folder, pdf=False, dpi=DPI):
        raise OSError("disk full")

    monkeypatch.setattr(P.Plot, "save", boom)
    for out in (report, tmp_path / "fresh"):
        with pytest.raises(OSError, match="disk full"):
            write_report(sweep_dir, out, FitOptions(n_boot=0))
    assert {
        p.name: p.read_bytes() for p in report.iterdir()
    } == snapshot  # the previous report, untouched
    assert (
        sorted(p.name for p in report.parent.iterdir()) == before
    )  # no temp folder left beside it
    assert list(tmp_path.iterdir()) == []  # and no half-written new one


@pytest.mark.parametrize("cmd", ["plot", "report"])
@pytest.mark.parametrize(
    "content, extra, needle",
    [
        ("a,b,loss\n1,2,3\n", [], "found columns: a, b, loss"),
        ("N,D,loss\n1e6,1e8,nan\n2e6,1e8,3\n", [], "NaN"),
        (
            "N,D,loss\n" + "".join(f"1e6,{d}e8,{3 - d / 10}\n" for d in range(1, 9)),
            [],
            "one model size",
        ),
        ("N,D,loss\n1e6,1e8,3\n2e6,1e8,2.9\n", ["--level", "2"], "--level"),
    ],
)
def test_bad_input_one_line_exit_2_no_folder(tmp_path, capsys, cmd, content, extra, needle):
    path = tmp_path / "t.csv"
    path.write_text(content)
    out = tmp_path / "out"
    assert main([cmd, str(path), "--out", str(out), "--bootstrap", "0", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        needle in err
        and "\n" not in err
        and "Traceback" not in err
        and err.startswith(f"scaling {cmd}: error:")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_refuses_to_replace_a_foreign_folder(tmp_path, capsys, sweep_dir):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["report", str(sweep_dir), "--out", str(out), "--bootstrap", "0"]) == 2
    assert "not written by scaling" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_plot_command_writes_every_figure(tmp_path, sweep_dir, capsys):
    out = tmp_path / "figs"
    assert main(["plot", str(sweep_dir), "--out", str(out), "--bootstrap", "0"]) == 0
    figs = FIGS - {"bootstrap"}  # no resamples, no bootstrap figure (said so on stdout)
    assert {p.name for p in out.iterdir()} == {f"{f}.png" for f in figs} | {"manifest.json"}
    assert json.loads((out / "manifest.json").read_text())["kind"] == "plot"
    text = capsys.readouterr().out
    assert (
        f"wrote {len(figs)} figure files" in text
        and "bootstrap not drawn: no bootstrap samples" in text
    )


def test_grouped_report_side_by_side(tmp_path):
    out = tmp_path / "porian"
    query = (
        "source_file == 'summary_df' and dataset == 'rw' and "
        "label in ['Reproducing Kaplan et al.', 'Optimizer tuning (no decay)']"
    )
    assert (
        main(
            [
                "report",
                str(REF / "porian2024_isoflop_points.csv"),
                "--c",
                "flops",
                "--group",
                "label",
                "--query",
                query,
                "--bootstrap",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "comparison.png").exists()
    for sub in ("Reproducing_Kaplan_et_al", "Optimizer_tuning_no_decay"):
        assert {p.stem for p in (out / sub).glob("*.png")} == FIGS
    fits = json.loads((out / "fits.json").read_text())
    md = (out / "report.md").read_text()
    for name, g in fits["groups"].items():
        a, (lo, hi) = g["approach2"]["a"], g["approach2"]["ci"]["a"]
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} |"))
        assert f"{a:.3f} [{lo:.3f}, {hi:.3f}]" in row
    assert fits["groups"]["Reproducing Kaplan et al."]["approach2"]["a"] == pytest.approx(
        0.834, abs=0.03
    )
    assert fits["groups"]["Optimizer tuning (no decay)"]["approach2"]["a"] == pytest.approx(
        0.497, abs=0.03
    )
    links = re.findall(r"\]\(([^)]+\.png)\)", md)
    # top level: the allocation comparison and loss against compute, each group's figures twice
    assert len(links) == 2 + 2 * len(FIGS) and all((out / link).exists() for link in links)
    assert "loss_vs_compute.png" in links and "## Exponents per group" in md


def test_plot_and_report_draw_the_same_figures_per_group(tmp_path):
    """One pipeline: `scaling plot --group` writes every figure `scaling report --group` does,
    the loss against compute of all groups included."""
    query = (
        "source_file == 'summary_df' and dataset == 'rw' and "
        "label in ['Reproducing Kaplan et al.', 'Optimizer tuning (no decay)']"
    )
    args = [
        str(REF / "porian2024_isoflop_points.csv"),
        "--c",
        "flops",
        "--group",
        "label",
        "--query",
        query,
        "--bootstrap",
        "0",
    ]
    figures = {}
    for cmd in ("plot", "report"):
        assert main([cmd, *args, "--out", str(tmp_path / cmd)]) == 0
        figures[cmd] = {str(p.relative_to(tmp_path / cmd)) for p in (tmp_path / cmd).rglob("*.png")}
    assert figures["plot"] == figures["report"] and "loss_vs_compute.png" in figures["plot"]


def test_report_adds_emergence_section_when_runs_carry_probe_scores(tmp_path, report):
    """Runs with probe scores get the emergence analysis inside the report; others do not."""
    assert "Emergent abilities" not in (report / "report.md").read_text()
    sweep = write_sweep(tmp_path / "runs" / "probed", seed=5)
    table = pd.read_csv(sweep / "runs.csv")
    # knowledge accuracy jumps between the two largest sizes: the analysis must find and say it
    sizes = sorted(table["N"].unique())
    table["knowledge_acc"] = np.where(table["N"] == sizes[-1], 0.9, 0.02)
    table["knowledge_logp"] = -3.0 + np.log(table["N"]) / 5
    table.to_csv(sweep / "runs.csv", index=False)
    out = write_report(sweep, tmp_path / "analysis" / "probed", FitOptions(n_boot=8, seed=1))
    md = (out / "report.md").read_text()
    assert "## Emergent abilities" in md and "knowledge (memorised facts)" in md
    analysis = json.loads((out / "emergence" / "emergence.json").read_text())["abilities"][
        "knowledge"
    ]
    assert analysis["acc"]["N"]["x1"] == pytest.approx(sizes[-1])
    assert "emergence/emergence.png" in json.loads((out / "manifest.json").read_text())["files"]


def test_a_failed_fit_figure_stops_the_emergence_child_and_writes_nothing(tmp_path, monkeypatch):
    """The emergence section is drawn by a forked child while the fit runs: a failure on the fit's
    side leaves no output folder, no temporary folder and no child process behind."""
    sweep = write_sweep(tmp_path / "runs" / "probed", seed=5)
    table = pd.read_csv(sweep / "runs.csv")
    table["knowledge_acc"] = 0.02
    table["knowledge_logp"] = -3.0 + np.log(table["N"]) / 5
    table.to_csv(sweep / "runs.csv", index=False)

    def boom(self, folder, pdf=False, dpi=DPI):
        raise OSError("disk full")

    monkeypatch.setattr(P.Plot, "save", boom)
    out = tmp_path / "analysis" / "probed"
    out.parent.mkdir()
    before = {p.pid for p in multiprocessing.active_children()}  # other tests' pools may live on
    with pytest.raises(OSError, match="disk full"):
        write_report(sweep, out, FitOptions(n_boot=0))
    assert list(out.parent.iterdir()) == []
    assert {p.pid for p in multiprocessing.active_children()} <= before


def _seeded_table(path: Path, seeds: int) -> Path:
    """A tiny IsoFLOP table from TRUE: 3 budgets x 5 sizes about each optimum, `seeds` seeds a
    point (lognormal noise per seed)."""
    rng = np.random.default_rng(7)
    rows = []
    for C in (1e18, 4e18, 1.6e19):
        n_opt = float(TRUE.allocation(C)[0])
        for n in n_opt * 2.0 ** np.arange(-2, 3):
            d = C / (6 * n)
            for seed in range(seeds):
                loss = TRUE.predict(n, d) * np.exp(0.01 * rng.standard_normal())
                rows.append(dict(N=n, D=d, C=C, loss=loss, seed=seed))
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("seeds", [3, 1])
def test_seed_spread_in_isoflop_figure_and_report_only_with_replicates(tmp_path, seeds):
    """Points averaging 3 seeds: the IsoFLOP figure draws each point's +-1 sd and says so, the
    report says how much of each law's interval of a is seed noise. One seed: neither."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = load_points(_seeded_table(tmp_path / "seeds.csv", seeds), mean_over="seed")
        study = fit_study(points, options=FitOptions(n_boot=8, seed=1))
        plot = P.isoflop(study)
        out = write_report(points, tmp_path / "report", FitOptions(n_boot=8, seed=1))
    md = (out / "report.md").read_text()
    spread = [b.get("loss_sd") for b in plot.data["budgets"]]
    if seeds == 1:
        assert all(sd is None for sd in spread) and "bars" not in plot.title
        assert "Seed noise" not in md
        return
    for b, sd in zip(plot.data["budgets"], spread):
        assert sd is not None and len(sd) == len(b["N"]) and np.all(np.isfinite(sd) & (sd > 0))
    assert "+-1 sample sd" in plot.title and plot.title in md
    line = next(ln for ln in md.splitlines() if ln.startswith("**Seed noise.**"))
    assert set(study.seed_noise) == {"approach1", "approach2", "approach3", "kaplan"}
    assert "3 seeds each" in line
    for key, sn in study.seed_noise.items():
        assert f"{registry.get(key).label}: " in line and seed_share_text(sn["seed_share"]) in line


def test_a_seed_share_at_or_below_zero_is_said_as_none():
    assert seed_share_text(0.25) == "25% of the width is seed noise"
    for share in (0.0, -0.004, -0.86):
        assert seed_share_text(share).startswith("none of the width is seed noise")

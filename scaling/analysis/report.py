"""`write_report`: fit, plot and write `report.md`, `fits.json` and the figures into one folder.

The folder is built beside the target and renamed into place (`staged_dir`), so a failure leaves
either the previous folder or none, never a half-written one. A folder is only ever replaced when it
is empty or was written by this module (it holds `manifest.json`). Never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from scaling import __version__
from scaling.analysis.laws.groups import comparison_markdown
from scaling.analysis.laws.study import FitOptions
from scaling.analysis.laws.text import interval as _interval
from scaling.analysis.laws.text import interval_of, seed_share_text
from scaling.analysis.laws.text import md_table as _table
from scaling.analysis.laws.text import num as _num
from scaling.analysis.tables import Points
from scaling.errors import ConfigError, DataError, FitWarning
from scaling.runs import json_safe

MANIFEST = "manifest.json"


# ------------------------------------------------------------------------------------- the folder


def check_replaceable(out: Path) -> None:
    """ConfigError unless `out` is absent, an empty folder, or a folder this toolkit wrote, and its
    parent folder can be written."""
    if not out.exists():
        _check_writable(out)
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder name")
    if any(out.iterdir()) and not (out / MANIFEST).exists():
        raise ConfigError(
            f"--out {out} exists and was not written by scaling plot/report (no {MANIFEST}); "
            "choose a new folder or empty it"
        )
    _check_writable(out)


def _check_writable(out: Path) -> None:
    """ConfigError unless a folder can be made beside `out` (probed in its nearest existing
    parent)."""
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.probe-"))
    except OSError as err:
        raise ConfigError(
            f"--out {out}: cannot write in {parent} ({err.strerror}); choose a writable folder"
        ) from None


@contextmanager
def staged_dir(out: str | Path):
    """Yield a temp folder beside `out`; on success it replaces `out` by rename, on failure it is
    removed."""
    out = Path(out)
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "x")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_figures(plots, folder: Path, pdf: bool = False, n_jobs: int | None = None) -> list[str]:
    """Save each plot into folder (n_jobs processes, default every core); the file names relative
    to folder."""
    from scaling.analysis.figsave import save_all

    folder.mkdir(parents=True, exist_ok=True)
    return [f.name for paths in save_all([(p, folder, pdf) for p in plots], n_jobs) for f in paths]


def write_all_figures(
    figures, folder: Path, pdf: bool = False, n_jobs: int | None = None
) -> list[str]:
    """Write a `pipeline.Figures`: the side-by-side ones into folder, each group's into its
    subfolder; the file names relative to folder."""
    files = write_figures(figures.top, folder, pdf, n_jobs)
    for plots, _, prefix in figures.groups.values():
        sub = folder / prefix if prefix else folder
        files += [prefix + f for f in write_figures(plots, sub, pdf, n_jobs)]
    return files


def write_manifest(folder: Path, kind: str, files: list[str], provenance: dict) -> None:
    payload = {"kind": kind, "files": sorted(files), **provenance}
    (folder / MANIFEST).write_text(json.dumps(payload, indent=2) + "\n")


# ------------------------------------------------------------------------------------- provenance


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def input_hashes(paths) -> list[dict]:
    """sha256 of every file an input names: a table itself; for a sweep folder its runs.csv and one
    combined digest over its runs' metrics.jsonl files."""
    from scaling.analysis.tables import expand

    out = []
    for p in expand(paths):  # a quoted glob: the files it matches
        if p.is_file():
            out.append({"path": str(p), "sha256": _sha256(p), "bytes": p.stat().st_size})
            continue
        sweeps = (
            [p]
            if (p / "runs.csv").exists()
            else sorted(q for q in p.iterdir() if (q / "runs.csv").exists())
        )
        if not sweeps:  # other tools' logs (scaling.analysis.readers)
            from scaling.analysis.readers import log_files

            out += [
                {"path": str(f), "sha256": _sha256(f), "bytes": f.stat().st_size}
                for f in log_files(p)
            ]
        for s in sweeps:
            out.append(
                {
                    "path": str(s / "runs.csv"),
                    "sha256": _sha256(s / "runs.csv"),
                    "bytes": (s / "runs.csv").stat().st_size,
                }
            )
            metrics = sorted(s.glob("*/metrics.jsonl"))
            if metrics:
                h = hashlib.sha256()
                for m in metrics:
                    h.update(m.parent.name.encode() + b"\0" + _sha256(m).encode())
                out.append(
                    {
                        "path": str(s / "*/metrics.jsonl"),
                        "files": len(metrics),
                        "sha256": h.hexdigest(),
                    }
                )
    return out


def provenance(paths, command: str | None, options: FitOptions, points: Points, load: dict) -> dict:
    """Inputs and their hashes, the command, the toolkit version, the date, the options."""
    if paths is None:
        inputs = [{"path": "(in-memory points)", "rows": len(points.frame)}]
    else:
        inputs = input_hashes(paths)
    return {
        "inputs": inputs,
        "command": command or "scaling.analysis.report.write_report (Python API)",
        "toolkit": f"scaling {__version__}",
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "columns": dict(points.columns),
        "load": {k: v for k, v in load.items() if v not in (None, 0)},
        "options": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()
        },
    }


# ------------------------------------------------------------------------------------- markdown


def _study_body(
    study, prefix: str, plots, skipped_figs: dict, level: int, embed: bool
) -> list[str]:
    """The sections of one study; figure paths are `prefix + name.png`."""
    from scaling.analysis.laws import registry

    h = "#" * level
    pct = int(round(100 * study.options.level))
    lines = _summary(study) + _allocation(study, h, pct) + ["", f"{h} Fitted laws"]
    for key, fit in study.fits.items():
        lines += registry.get(key).report_lines(study, fit, pct)
    lines += _elasticities(study, h) + _extrapolation(study, h)
    lines += ["", f"{h} Figures", ""]
    for p in plots:
        if embed:
            lines += [f"**{p.title}.**", "", f"![{p.name}]({prefix}{p.name}.png)", ""]
        else:
            lines.append(f"- [{p.title}]({prefix}{p.name}.png)")
    for name, why in skipped_figs.items():
        lines.append(f"- `{name}` not drawn: {why}")
    if study.warnings:
        lines += ["", f"{h} Warnings", ""] + [f"- {w}" for w in dict.fromkeys(study.warnings)]
    return lines


def _label(key: str) -> str:
    """A registered law's label ('Approach 3 (L(N, D) fit)'); other keys as they are."""
    from scaling.analysis.laws import registry

    try:
        return registry.get(key).label
    except KeyError:
        return key


def _summary(study) -> list[str]:
    """The data's ranges, the bootstrap, the verdict and the interval flags."""
    from scaling.analysis.laws import registry
    from scaling.analysis.plots import loss_units

    df, opt = study.points, study.options
    lines = [
        f"{study.n_points} points; N {df['N'].min():.3g} to {df['N'].max():.3g} parameters, "
        f"D {df['D'].min():.3g} to {df['D'].max():.3g} tokens, C {df['C'].min():.3g} to "
        f"{df['C'].max():.3g} FLOPs; {opt.n_boot} bootstrap resamples (seed {opt.seed}), "
        f"{'BCa' if opt.ci == 'bca' else 'percentile'} intervals; "
        f"loss in {loss_units(study)}.",
        "",
        f"**Verdict.** {study.comparison.verdict}",
        "",
    ]
    flags = [(law.label, f) for law in registry.flag_order() for f in study.flags(law.key)]
    if flags:
        lines += ["**Interval flags** (read these intervals with care):", ""]
        lines += [f"- {label}: {f}" for label, f in flags] + [""]
    return lines


def _allocation(study, h: str, pct: int) -> list[str]:
    """The allocation table, the skipped laws and the predictions at a budget."""
    lines = [f"{h} Compute-optimal allocation (N_opt ~ C^a, D_opt ~ C^b)", ""]
    fixed = f" [{study.fixed_E_text()}]" if study.fixed_E else ""
    lines += _table(
        ["approach", "a", f"{pct}% interval", "b", f"{pct}% interval", "status"],
        [
            [
                _label(r.approach) + (fixed if r.approach == "approach3" else ""),
                _num(r.a, ".3f"),
                _interval(*r.a_ci),
                _num(r.b, ".3f"),
                _interval(*r.b_ci),
                r.status,
            ]
            for r in study.comparison.table
        ],
    )
    lines += _seed_noise(study)
    for name, why in study.skipped.items():
        lines.append(f"\n{_label(name)} was skipped: {why}")
    if not study.predictions:
        return lines
    lines += ["", f"Compute-optimal allocation at a budget (Approach 3 with {pct}% intervals):", ""]
    rows = []
    for p in study.predictions:

        def ci(k: str) -> str:
            return (" " + interval_of(p[k], ".3g")) if k in p else ""  # noqa: B023  used at once

        rows.append(
            [
                _label(p["law"]),
                _num(p["C"], ".3g"),
                _num(p["N_opt"], ".3g") + ci("N_opt_ci"),
                _num(p["D_opt"], ".3g") + ci("D_opt_ci"),
                _num(p["tokens_per_param"], ".3g") + ci("tokens_per_param_ci"),
                _num(p.get("loss"), ".4f") + ci("loss_ci"),
            ]
        )
    head = ["law", "C (FLOPs)", "N_opt", "D_opt", "tokens per parameter", "loss"]
    return lines + _table(head, rows)


def _seed_noise(study) -> list[str]:
    """How much of each law's interval of a is seed noise, when the points average several seeds
    (as `scaling fit` prints it); nothing otherwise."""
    from scaling.analysis.laws import registry

    if not study.seed_noise:
        return []
    parts = []
    for key, sn in study.seed_noise.items():
        parts.append(
            f"{registry.get(key).label}: {interval_of(sn['a_ci'])} against "
            f"{interval_of(sn['a_ci_points_only'])}, {seed_share_text(sn['seed_share'])}"
        )
    sn = next(iter(study.seed_noise.values()))
    lo, hi = sn["replicates_per_point"]
    seeds = f"{lo}" if lo == hi else f"{lo} to {hi}"
    return [
        "",
        f"**Seed noise.** The interval of a with the replicates resampled within each point "
        f"against the points only ({sn['points']} points, {seeds} seeds each): "
        + "; ".join(parts)
        + ".",
    ]


def _elasticities(study, h: str) -> list[str]:
    el = study.comparison.elasticities
    if not el:
        return []
    rows = [
        [
            _label(k),
            f"{e['N']:+.4f} {interval_of(e['N_ci'], '+.4f') if 'N_ci' in e else ''}",
            f"{e['D']:+.4f} {interval_of(e['D_ci'], '+.4f') if 'D_ci' in e else ''}",
            f"N = {e['at']['N']:.3g}, D = {e['at']['D']:.3g}",
        ]
        for k, e in el.items()
    ]
    return ["", f"{h} Loss elasticities at the median point", ""] + _table(
        ["law", "d log L / d log N", "d log L / d log D", "at"], rows
    )


def _extrapolation(study, h: str) -> list[str]:
    from scaling.analysis.laws import registry

    lines = ["", f"{h} Extrapolation check", ""]
    ex = study.comparison.extrapolation
    if ex is None:
        return lines + ["Not run: too few points or budgets to hold the largest one out."]
    lines += [
        f"Each law refitted on the {ex.n_train} points below C = {ex.holdout_C_min:.3g} and "
        f"scored on the {ex.n_holdout} held-out point(s) at or above it.",
        "",
    ]
    rows = [[_label(k), *registry.get(k).extrapolation_text(v)] for k, v in ex.errors.items()]
    return lines + _table(["law", "error", "measure"], rows)


def _provenance_md(prov: dict) -> list[str]:
    lines = ["## Provenance", ""]
    rows = [
        [
            f"`{i['path']}`",
            f"`{i.get('sha256', '-')}`",
            str(i.get("bytes", f"{i['files']} files" if "files" in i else i.get("rows", "-"))),
        ]
        for i in prov["inputs"]
    ]
    lines += _table(["input", "sha256", "size"], rows)
    lines += [
        "",
        f"- command: `{prov['command']}`",
        f"- toolkit: {prov['toolkit']} (Python {prov['python']})",
        f"- date: {prov['date']}",
        "- columns: " + ", ".join(f"{k} <- {v}" for k, v in prov["columns"].items()),
        "- options: "
        + ", ".join(f"{k}={v}" for k, v in {**prov["load"], **prov["options"]}.items()),
    ]
    return lines


def _group_table(studies: dict) -> list[str]:
    from scaling.analysis.laws import registry

    a_laws = registry.allocating()
    cols = [("a", law) for law in a_laws] + [("b", law) for law in a_laws if law.group_b]
    pct = int(round(100 * next(iter(studies.values())).options.level))
    head = ["group", "points"] + [f"{which} {law.short} [{pct}%]" for which, law in cols]
    rows = []
    for name, s in studies.items():
        row = [name, str(s.n_points)]
        for which, law in cols:
            fit = s.fits.get(law.key)
            if fit is None:
                row.append("skipped")
                continue
            v = law.exponents(fit)[0 if which == "a" else 1]
            row.append(f"{v:.3f} {_interval(*s.ci(law.key, which))}")
        rows.append(row)
    return _table(head, rows)


def render_markdown(studies: dict, figures: dict, prov: dict, title: str, grouped: bool) -> str:
    """report.md from {group: StudyFit} and {group: (plots, skipped figures, prefix)}."""
    lines = [f"# Scaling-law report: {title}", ""]
    if not grouped:
        study = next(iter(studies.values()))
        plots, skipped, prefix = figures["all"]
        lines += [f"![Compute-optimal allocation from every approach]({prefix}comparison.png)", ""]
        lines += _study_body(
            study, prefix, [p for p in plots if p.name != "comparison"], skipped, 2, True
        )
    else:
        lines += [
            f"{len(studies)} groups, fitted separately and compared side by side.",
            "",
            "![Compute-optimal allocation by group](comparison.png)",
            "",
            "## a and b per group",
            "",
        ]
        lines += _group_table(studies)
        lines += (
            [""]
            + comparison_markdown(studies)
            + ["![Loss against compute per group](loss_vs_compute.png)", ""]
        )
        lines += ["", "Verdict per group:", ""]
        for name, s in studies.items():
            lines.append(f"- **{name}**: {s.comparison.verdict}")
        for name, s in studies.items():
            plots, skipped, prefix = figures[name]
            lines += ["", f"## Group: {name}", ""]
            if any(p.name == "comparison" for p in plots):
                lines += [f"![{name}: compute-optimal allocation]({prefix}comparison.png)", ""]
            lines += _study_body(
                s, prefix, [p for p in plots if p.name != "comparison"], skipped, 3, False
            )
    lines += [""] + _provenance_md(prov)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- entry point


def write_report(
    paths_or_points,
    out_dir: str | Path,
    options: FitOptions | None = None,
    *,
    command: str | None = None,
    load: dict | None = None,
    title: str | None = None,
    pdf: bool = False,
) -> Path:
    """Fit every law to the input, draw every figure, write report.md, fits.json and the figures
    into `out_dir` (replaced atomically); returns `out_dir`.

    paths_or_points: a `Points`, or one or more sweep folders / tables read with
    `load_points(**load)` (load: n, d, c, loss, group, query, drop_top_loss). With a `group` column
    every group is fitted separately and compared side by side, each group's figures in its own
    subfolder. E.g. after a sweep: `write_report(Path("runs") / sweep, Path("analysis") / sweep,
    FitOptions(), command="scaling sweep ...")`.
    """
    from scaling.analysis.laws._parallel import Forked
    from scaling.analysis.pipeline import analyse, draw, input_paths

    options = options or FitOptions()
    load = dict(load or {})
    out = Path(out_dir)
    check_replaceable(out)  # fail before any work
    paths = input_paths(paths_or_points)
    with ExitStack() as stack:
        # the emergence section needs no fit: a forked child draws it into a scratch folder while
        # this process fits and draws the fit's figures, one core each (more processes cost more
        # CPU than they saved); nothing reaches `out`'s folder before the fit succeeded
        emergence = None
        if _has_probes(paths):
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaling-")))
            section = partial(_emergence_section, paths, scratch / "emergence")
            emergence = stack.enter_context(Forked(section))
        analysis = analyse(paths_or_points, load, options)
        figures = draw(analysis)
        prov = provenance(paths, command, options, analysis.points, load)
        if title is None:
            title = ", ".join(Path(p).name for p in paths) if paths else "in-memory points"
        md = render_markdown(analysis.studies, figures.groups, prov, title, analysis.grouped)
        fits = analysis.to_json()
        fits["provenance"] = prov
        with staged_dir(out) as tmp:
            files = write_all_figures(figures, tmp, pdf, n_jobs=1 if emergence else None)
            if emergence:
                md += emergence.result()
                shutil.move(scratch / "emergence", tmp / "emergence")
            (tmp / "report.md").write_text(md)
            (tmp / "fits.json").write_text(json.dumps(json_safe(fits), indent=2) + "\n")
            files += [f"emergence/{f.name}" for f in sorted((tmp / "emergence").glob("*"))]
            write_manifest(tmp, "report", files + ["report.md", "fits.json"], prov)
    figures.clear()
    return out


def _has_probes(paths) -> bool:
    """Whether the inputs are sweep folders whose runs carry probe scores (an emergence section)."""
    from scaling.analysis import emergence

    if not paths:
        return False
    with warnings.catch_warnings():  # runs left out are said in the fit's warnings
        warnings.simplefilter("ignore", FitWarning)
        try:
            df, _ = emergence.load([str(p) for p in paths])
        except DataError:
            return False  # not sweep folders (a plain table), or too few ok runs
    return bool(emergence.abilities(list(df.columns)))


def _emergence_section(paths, folder: Path) -> str:
    """The emergence analysis (scaling.analysis.emergence) of sweep folders whose runs carry probe
    scores, figures drawn in this process into `folder`; its statement as a report.md section."""
    from scaling.analysis import emergence

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        result = emergence.report([str(p) for p in paths], folder, n_jobs=1)
    lines = [
        "",
        "## Emergent abilities",
        "",
        "![Probe scores against N, D and C](emergence/emergence.png)",
        "",
    ]
    lines += [f"- {e['statement']}" for e in result["abilities"].values()]
    lines += [
        "",
        "Per-ability figures and the abruptness table: "
        "[emergence/emergence.md](emergence/emergence.md).",
        "",
    ]
    return "\n".join(lines)

"""`scaling plot` (the figures) and `scaling report` (figures + report.md + fits.json) for sweep
folders or any table; same inputs, column and fitting options as `scaling fit` (see docs/report.md)."""

from __future__ import annotations

import argparse
import shlex
import warnings
from pathlib import Path

from scaling.errors import FitWarning
from scaling.fitcli import add_common_arguments, fit_options, help_epilog, load_kwargs


def _parser(prog: str, what: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=what, epilog=help_epilog(prog, " --out DIR"),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR",
                   help="output folder, replaced atomically (must be new, empty, or written by scaling plot/report; "
                        "default: analysis/<name of the first PATH>, where `scaling sweep` writes its report)")
    o.add_argument("--pdf", action="store_true", help="also write each figure as PDF")
    return p


def build_plot_parser() -> argparse.ArgumentParser:
    return _parser("scaling plot", "write the figures (PNG, and PDF with --pdf) for sweep folders or tables")


def build_report_parser() -> argparse.ArgumentParser:
    p = _parser("scaling report", "fit, plot and write report.md and fits.json for sweep folders or tables")
    p.add_argument("--title", help="report title (default: the input names)")
    return p


def default_out(args: argparse.Namespace) -> str:
    """--out, or analysis/<name of the first PATH without its suffix>."""
    return args.out or str(Path("analysis") / Path(args.paths[0].rstrip("/")).stem)


def main_plot(argv: list[str]) -> int:
    args = build_plot_parser().parse_args(argv)
    args.out = default_out(args)
    from scaling import plots as P
    from scaling.laws.study import fit_study
    from scaling.report import check_replaceable, group_folders, provenance, staged_dir, write_figures, write_manifest
    from scaling.tables import load_points

    opts = fit_options(args)
    out = Path(args.out)
    check_replaceable(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        points = load_points(args.paths, **load_kwargs(args))
        parts = points.groups()
        studies = {name: fit_study(p, options=opts) for name, p in parts.items()}
    grouped = "group" in points.frame
    figures, notes = {}, []
    for name, s in studies.items():
        plots, skipped = P.all_figures(s, parts[name])
        figures[name] = plots
        notes += [f"{name + ': ' if grouped else ''}{fig} not drawn: {why}" for fig, why in skipped.items()]
    prov = provenance(args.paths, "scaling plot " + shlex.join(argv), opts, points, load_kwargs(args))
    with staged_dir(out) as tmp:
        files = []
        if grouped:
            files += write_figures([P.group_comparison(studies)], tmp, args.pdf)
            folders = group_folders(figures)
            for name, plots in figures.items():
                files += [f"{folders[name]}/{f}" for f in write_figures(plots, tmp / folders[name], args.pdf)]
        else:
            files += write_figures(figures["all"], tmp, args.pdf)
        write_manifest(tmp, "plot", files, prov)
    for line in notes:
        print(line)
    print(f"wrote {len(files)} figure files to {out}")
    return 0


def main_report(argv: list[str]) -> int:
    args = build_report_parser().parse_args(argv)
    args.out = default_out(args)
    from scaling.report import write_report

    out = write_report(args.paths, args.out, fit_options(args), command="scaling report " + shlex.join(argv),
                       load=load_kwargs(args), title=args.title, pdf=args.pdf)
    print(f"wrote {out / 'report.md'}, {out / 'fits.json'} and the figures")
    return 0

"""`scaling plot` (the figures) and `scaling report` (figures + report.md + fits.json) for sweep
folders or any table; same inputs, column and fitting options as `scaling fit` (see
docs/report.md)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from scaling.analysis.fitcli import add_common_arguments, fit_options, help_epilog, load_kwargs


def _parser(prog: str, what: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=what,
        epilog=help_epilog(prog, " --out DIR"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument(
        "--out",
        metavar="DIR",
        help="output folder, replaced atomically (must be new, empty, or written by scaling "
        "plot/report; default: analysis/<name of the first PATH>, where `scaling sweep` writes its "
        "report)",
    )
    o.add_argument("--pdf", action="store_true", help="also write each figure as PDF")
    return p


def build_plot_parser() -> argparse.ArgumentParser:
    return _parser(
        "scaling plot", "write the figures (PNG, and PDF with --pdf) for sweep folders or tables"
    )


def build_report_parser() -> argparse.ArgumentParser:
    p = _parser(
        "scaling report", "fit, plot and write report.md and fits.json for sweep folders or tables"
    )
    p.add_argument("--title", help="report title (default: the input names)")
    return p


def default_out(args: argparse.Namespace) -> str:
    """--out, or analysis/<name of the first PATH without its suffix>."""
    return args.out or str(Path("analysis") / Path(args.paths[0].rstrip("/")).stem)


def main_plot(argv: list[str]) -> int:
    args = build_plot_parser().parse_args(argv)
    args.out = default_out(args)
    from scaling.analysis.pipeline import analyse, draw
    from scaling.analysis.report import (
        check_replaceable,
        provenance,
        staged_dir,
        write_all_figures,
        write_manifest,
    )

    opts = fit_options(args)
    out = Path(args.out)
    check_replaceable(out)
    analysis = analyse(args.paths, load_kwargs(args), opts)
    figures = draw(analysis)
    notes = [
        f"{name + ': ' if analysis.grouped else ''}{fig} not drawn: {why}"
        for name, (_, skipped, _) in figures.groups.items()
        for fig, why in skipped.items()
    ]
    prov = provenance(
        args.paths, "scaling plot " + shlex.join(argv), opts, analysis.points, load_kwargs(args)
    )
    with staged_dir(out) as tmp:
        files = write_all_figures(figures, tmp, args.pdf)
        write_manifest(tmp, "plot", files, prov)
    figures.clear()
    for line in notes:
        print(line)
    print(f"wrote {len(files)} figure files to {out}")
    return 0


def main_report(argv: list[str]) -> int:
    args = build_report_parser().parse_args(argv)
    args.out = default_out(args)
    from scaling.analysis.report import write_report

    out = write_report(
        args.paths,
        args.out,
        fit_options(args),
        command="scaling report " + shlex.join(argv),
        load=load_kwargs(args),
        title=args.title,
        pdf=args.pdf,
    )
    print(f"wrote {out / 'report.md'}, {out / 'fits.json'} and the figures")
    return 0

"""`scaling fit PATH...`: fit Kaplan's law and the three Chinchilla approaches to sweep folders or
any CSV/parquet/JSONL table, print a comparison table, optionally write JSON (see docs/fit.md)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from scaling.analysis.laws.text import ci_text, fmt, seed_share_text
from scaling.errors import ConfigError


def add_common_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The inputs, column, filter and fitting options shared by `scaling fit`, `plot` and
    `report`."""
    p.add_argument(
        "paths",
        nargs="+",
        help="sweep folders (runs/<sweep>), runs/ itself, or .csv/.parquet/.jsonl tables",
    )
    _add_column_arguments(p)
    _add_log_arguments(p)
    _add_filter_arguments(p)
    m = p.add_argument_group("fitting")
    _add_method_arguments(m)
    _add_bootstrap_arguments(m)
    return p


def _add_column_arguments(p: argparse.ArgumentParser) -> None:
    """The "columns" group: which columns hold N, D, C, loss, U_D, the group and the replicates."""
    g = p.add_argument_group("columns")
    g.add_argument(
        "--n",
        default="N",
        help="parameter-count column (default N; N_nonembed "
        "counts the Kaplan way), or a number: N of every run whose log lacks it",
    )
    g.add_argument(
        "--d", default="D", help="training-tokens column (default D; derived as C/(6N) if absent)"
    )
    g.add_argument("--c", default="C", help="compute column (default C; derived as 6ND if absent)")
    g.add_argument("--loss", default="loss", help="loss column (default loss)")
    g.add_argument(
        "--unique",
        metavar="COL",
        help="unique training tokens U_D (data repeated for D/U_D epochs): also fit "
        "the data-constrained law (Muennighoff et al. 2023)",
    )
    g.add_argument(
        "--group", help="fit every value of this column separately and compare them side by side"
    )
    g.add_argument(
        "--mean-over",
        metavar="COLS",
        help="columns (comma-separated, e.g. seed) whose rows at one (N, D, C) are "
        "replicates: fit their mean as one point, resample them within it in the "
        "bootstrap (sweep folders: seed, when it varies; 'none' turns that off)",
    )


def _add_log_arguments(p: argparse.ArgumentParser) -> None:
    """The group for other tools' logs: the log format and the tokens per step."""
    lg = p.add_argument_group("other tools' logs (docs/fit.md)")
    lg.add_argument(
        "--format",
        dest="log_format",
        choices=("hf", "tensorboard", "wandb", "lightning"),
        help="read every input as this kind of log (default: detected from each file)",
    )
    lg.add_argument(
        "--tokens-per-step",
        type=float,
        metavar="T",
        help="D = T x step (batch size x context), where the log has no token count",
    )


def _add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """The "filters" group: query, top-loss drop, best-over and curve points."""
    f = p.add_argument_group("filters")
    f.add_argument(
        "--query", help="pandas query on the raw table first, e.g. \"source_file == 'summary_df'\""
    )
    f.add_argument(
        "--drop-top-loss",
        type=int,
        default=0,
        metavar="K",
        help="drop the K highest losses (per group), as Epoch did with K=5 on the Chinchilla data",
    )
    f.add_argument(
        "--best-over",
        metavar="COLS",
        help="hyperparameter columns swept at each (N, D), comma-separated (e.g. lr or "
        "lr,warmup): keep the lowest loss per (N, D)",
    )
    f.add_argument(
        "--curve-points",
        action="store_true",
        help="every evaluation of every run is a point (D = tokens so far), as Kaplan's protocol "
        "reads runs",
    )


def _add_method_arguments(m: argparse._ArgumentGroup) -> None:
    """Fitting options of the laws themselves: Approach 3 method and E, Approach 2 budgets."""
    m.add_argument(
        "--method",
        choices=("fast", "grid"),
        default="fast",
        help="Approach 3: fast global method (default) or Hoffmann's 4500-start grid",
    )
    m.add_argument(
        "--fix-E",
        dest="fix_E",
        metavar="floor|VALUE",
        help="Approach 3: hold E fixed instead of fitting it: 'floor' = the points' entropy_floor "
        "column (the synthetic language's known entropy, per group), or a number below every loss",
    )
    m.add_argument(
        "--approach2",
        choices=("akima", "local", "full"),
        default="akima",
        help="IsoFLOP minimum: Akima interpolation (default), local 5-point parabola, or one "
        "parabola",
    )
    m.add_argument(
        "--approach1",
        choices=("curves", "final"),
        default="curves",
        help="Approach 1's envelope: every logged evaluation of every run (default) or each "
        "run's final point (for runs whose schedule ends at their own D)",
    )
    m.add_argument(
        "--budget-tol",
        type=float,
        default=0.05,
        help="decades of C merged into one budget (default 0.05)",
    )
    m.add_argument(
        "--keep-edge",
        action="store_true",
        help="keep budgets whose minimum is at an edge size in Approach 2",
    )


def _add_bootstrap_arguments(m: argparse._ArgumentGroup) -> None:
    """Fitting options of the intervals and predictions: bootstrap, level, CI, jobs, budgets."""
    m.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="bootstrap resamples (default 200; 0 = none)",
    )
    m.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    m.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    m.add_argument(
        "--ci",
        choices=("percentile", "bca"),
        default="percentile",
        help="interval of the parameters and exponents: bootstrap percentile (default) "
        "or BCa (bias-corrected and accelerated; adds one leave-one-out refit per "
        "point)",
    )
    m.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes for the bootstrap (default: every available core; "
        "the results do not depend on it)",
    )
    m.add_argument(
        "--budget",
        type=float,
        action="append",
        default=[],
        metavar="C",
        help="predict N_opt, D_opt, loss at this budget (repeatable; default: largest C in the "
        "data)",
    )


def load_kwargs(args: argparse.Namespace) -> dict:
    """`load_points` keyword arguments from parsed common options."""
    return {
        "n": args.n,
        "d": args.d,
        "c": args.c,
        "loss": args.loss,
        "group": args.group,
        "drop_top_loss": args.drop_top_loss,
        "query": args.query,
        "curves_as_points": args.curve_points,
        "log_format": args.log_format,
        "tokens_per_step": args.tokens_per_step,
        "best_over": _columns(args.best_over),
        "mean_over": () if args.mean_over == "none" else args.mean_over,
        "unique": args.unique,
    }


def _columns(text: str | None) -> tuple[str, ...] | None:
    """`--best-over lr,warmup` -> ("lr", "warmup"); None when not given."""
    return tuple(c for c in text.split(",") if c) if text else None


def fit_options(args: argparse.Namespace):
    """`FitOptions` from parsed common options; ConfigError on impossible values."""
    from scaling.analysis.laws.study import FitOptions

    if args.bootstrap < 0 or (args.jobs is not None and args.jobs < 1) or not 0 < args.level < 1:
        raise ConfigError("--bootstrap must be >= 0, --jobs >= 1 and --level between 0 and 1")
    return FitOptions(
        method=args.method,
        n_boot=args.bootstrap,
        seed=args.seed,
        level=args.level,
        approach2_method=args.approach2,
        approach1_points=args.approach1,
        budget_tol=args.budget_tol,
        drop_edge=not args.keep_edge,
        n_jobs=args.jobs,
        predict_C=tuple(args.budget),
        fix_E=parse_fix_E(args.fix_E),
        ci=args.ci,
    )


def parse_fix_E(text: str | None) -> float | str | None:
    """`--fix-E floor|VALUE` -> "floor", a positive float, or None; ConfigError otherwise."""
    if text is None or text == "floor":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"--fix-E {text!r}: give 'floor' (the entropy_floor column) or a positive number"
        )
    return value


def columns_help() -> str:
    """The column names tried when --n/--d/--c/--loss keep their defaults (for --help)."""
    from scaling.analysis.tables import ALIASES

    return (
        "columns found automatically (case-insensitive) when --n/--d/--c/--loss keep their "
        "defaults:\n"
        + "\n".join(f"  {k:<5} {', '.join(repr(a) for a in v)}" for k, v in ALIASES.items())
    )


def help_epilog(command: str, extra: str = "") -> str:
    """Examples and the automatic column names, shared by the fit, plot and report help texts."""
    ref = "tests/data/reference"
    return (
        f"examples:\n  {command} runs/quick{extra}\n"
        f"  {command} runs/quick --n N_nonembed --c C_kaplan{extra}  # Kaplan's accounting\n"
        f"  {command} runs/reference/isoflop --fix-E floor{extra}\n"
        f"  {command} {ref}/epoch_chinchilla_svg_extracted_data.csv --drop-top-loss 5 "
        f"--method grid{extra}\n"
        f"  {command} {ref}/porian2024_isoflop_points.csv --c flops --group label \\\n"
        f"      --query \"source_file == 'summary_df' and dataset == 'rw'\"{extra}\n\n"
        + columns_help()
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scaling fit",
        description=" ".join(__doc__.split("(see")[0].split()).strip("`"),
        epilog=help_epilog("scaling fit"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(p)
    p.add_argument(
        "--json", metavar="FILE", help="write the results as JSON (schema in docs/fit.md)"
    )
    return p


def render(name: str, study) -> str:
    """The readable report of one study: each law's lines, the allocation table, the elasticities,
    predictions and extrapolation, the interval flags, the verdict and the warnings."""
    from scaling.analysis.laws import registry

    lines = [f"== {name}: {study.n_points} points ==" if name else f"== {study.n_points} points =="]
    for key, fit in study.fits.items():
        lines += registry.get(key).cli_lines(study, fit)
    for k, why in study.skipped.items():
        lines.append(f"{k:<11} skipped: {why}")
    lines += [
        "",
        f"{'approach':<11} {'a (N_opt~C^a)':>14} {'interval':>18} "
        f"{'b (D_opt~C^b)':>14} {'interval':>18}  status",
    ]
    for r in study.comparison.table:
        lines.append(
            f"{r.approach:<11} {fmt(r.a):>14} {ci_text(r.a_ci):>18} {fmt(r.b):>14} "
            f"{ci_text(r.b_ci):>18}  {r.status}"
        )
    return "\n".join(lines + _comparison_lines(study))


def _comparison_lines(study) -> list[str]:
    """Elasticities, predictions, extrapolation, flags, seed noise, verdict and warnings."""
    from scaling.analysis.laws import registry

    lines = []
    el = study.comparison.elasticities
    if el:
        lines.append("")
        for k, e in el.items():
            lines.append(
                f"elasticity {k:<10} dlogL/dlogN {e['N']:+.3f} {ci_text(e.get('N_ci'))}  "
                f"dlogL/dlogD {e['D']:+.3f} {ci_text(e.get('D_ci'))}  "
                f"at N={e['at']['N']:.3g}, D={e['at']['D']:.3g}"
            )
    for pr in study.predictions:
        lines.append(
            f"at C={pr['C']:.3g} {pr['law']:<10} N_opt {pr['N_opt']:.3g}  "
            f"D_opt {pr['D_opt']:.3g}  D/N {pr['tokens_per_param']:.3g}"
            + (f"  loss {pr['loss']:.3f}" if "loss" in pr else "")
        )
    ex = study.comparison.extrapolation
    if ex is not None:
        errs = ", ".join(registry.get(k).extrapolation_cli(v) for k, v in ex.errors.items())
        lines.append(
            f"extrapolation: fitted on {ex.n_train} points, tested on {ex.n_holdout} "
            f"with C >= {ex.holdout_C_min:.3g}: {errs}"
        )
    for k, f in [(law.key, f) for law in registry.flag_order() for f in study.flags(law.key)]:
        lines.append(f"flag {k}: {f}")
    for key, sn in study.seed_noise.items():
        lines.append(
            f"seed noise: {registry.get(key).label} a {ci_text(sn['a_ci'])} with replicates "
            f"resampled within each point, {ci_text(sn['a_ci_points_only'])} with points only: "
            + seed_share_text(sn["seed_share"])
        )
    lines += ["", "verdict: " + study.comparison.verdict]
    return lines + [f"warning: {w}" for w in study.warnings]


def render_groups(studies: dict) -> str:
    """Side-by-side a (and b, where the law says so) of every group: the walk across setups."""
    from scaling.analysis.laws import registry

    a_laws = registry.allocating()
    b_laws = [law for law in a_laws if law.group_b]
    cols = [f"a {law.short}" for law in a_laws] + [f"b {law.short}" for law in b_laws]
    width = max(len(k) for k in studies)
    out = [f"{'group':<{width}}  " + "  ".join(f"{k:>10}" for k in cols)]
    for name, s in studies.items():
        rows = {r.approach: r for r in s.comparison.table}
        vals = [rows[law.key].a if law.key in rows else None for law in a_laws]
        vals += [rows[law.key].b if law.key in rows else None for law in b_laws]
        out.append(f"{name:<{width}}  " + "  ".join(f"{fmt(v):>10}" for v in vals))
    return "\n".join(out)


def write_json_atomic(path: str | Path, payload: dict) -> None:
    """`--json FILE`, written atomically by the run store's writer; an unwritable path is one
    line."""
    from scaling.runs import atomic_write_json

    try:
        atomic_write_json(path, payload)
    except OSError as err:
        raise ConfigError(
            f"--json {path}: cannot write there ({err.strerror}); choose a writable path"
        ) from None


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from scaling.analysis.laws.groups import comparison_text
    from scaling.analysis.pipeline import analyse

    analysis = analyse(args.paths, load_kwargs(args), fit_options(args))
    points = analysis.points
    print("columns: " + ", ".join(f"{k} <- {v}" for k, v in points.columns.items()))
    for note in points.notes:
        print(note)
    if analysis.grouped:
        for name, s in analysis.studies.items():
            print(render(name, s))
            print()
        print(render_groups(analysis.studies))
        print(comparison_text(analysis.studies))
    else:
        print(render("", analysis.studies["all"]))
    if args.json:
        write_json_atomic(args.json, analysis.to_json())
        print(f"wrote {args.json}")
    return 0

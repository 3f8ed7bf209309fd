"""Read any table of (N, D, loss) measurements into the canonical points frame.

Sources: our sweep folders (`runs/<sweep>/runs.csv` plus each run's `metrics.jsonl`, read directly
with pandas/json, never through torch), other tools' training logs (`scaling/analysis/readers/`: HF
Trainer, TensorBoard, W&B, Lightning; one run per log folder), or any CSV, parquet or JSON-lines
table. Columns are
mapped by name (`n=`, `d=`, `c=`, `loss=`), one of N, D, C is derived from the other two with
C = 6ND, and every bad value is reported as a one-line `DataError`.
"""

from __future__ import annotations

import glob
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scaling import runs
from scaling.analysis.readers import LogOptions, detect, read_logs
from scaling.analysis.units import unit_warnings
from scaling.errors import DataError, FitWarning
from scaling.flops import FLOPS_PER_PARAM_TOKEN

# Names tried, case-insensitively, when the default column name is absent (never explicit names).
ALIASES = {
    "N": ("N", "params", "n_params", "parameters", "model_size", "Model Size"),
    "D": ("D", "tokens", "n_tokens", "data_size", "Training Tokens"),
    "C": ("C", "flops", "compute", "training_flops", "Training FLOP"),
    "loss": ("loss", "loss_val", "val_loss", "final_loss"),
}
DEFAULTS = {"N": "N", "D": "D", "C": "C", "loss": "loss"}
TABLE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


@dataclass
class Points:
    """The canonical points frame (N, D, C, loss [+ group, run_id, entropy_floor]) and, for our
    sweep folders, the training curves (run_id, N, D_run, tokens, flops, loss) used by Approach
    1; where replicates were averaged into points, the curves' point_id is the run_id their point
    kept."""

    frame: pd.DataFrame
    curves: pd.DataFrame | None = None
    columns: dict[str, str] = field(
        default_factory=dict
    )  # canonical name -> source column (or "derived")
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how rows were reduced (--best-over)
    # replicates averaged into one point (`mean_over`): each point's losses, in frame order; the
    # frame then also has loss_sd (sample sd, NaN for one) and n_rep
    replicates: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def groups(self) -> dict[str, Points]:
        """One Points per value of the `group` column (in order of first appearance)."""
        if "group" not in self.frame:
            return {"all": self}
        out = {}
        for name in pd.unique(self.frame["group"]):
            f = self.frame[self.frame["group"] == name].reset_index(drop=True)
            c = None
            if self.curves is not None and "run_id" in f:
                key = "point_id" if "point_id" in self.curves else "run_id"
                c = self.curves[self.curves[key].isin(set(f["run_id"]))].reset_index(drop=True)
            reps = (
                None
                if self.replicates is None
                else [
                    self.replicates[i]
                    for i in np.flatnonzero((self.frame["group"] == name).to_numpy())
                ]
            )
            out[str(name)] = Points(
                f, c, dict(self.columns), list(self.warnings), list(self.notes), reps
            )
        return out


def _warn(msg: str, sink: list[str]) -> None:
    sink.append(msg)
    warnings.warn(msg, FitWarning, stacklevel=3)


def read_curve(run_dir: Path, sink: list[str]) -> list[dict]:
    """One run's metrics.jsonl through the run store's reader (a last line cut by a crash is
    skipped); its warning joins `sink` as a FitWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = runs.read_metrics(run_dir)
    for w in caught:
        _warn(str(w.message), sink)
    return rows


def read_sweep(path: Path, sink: list[str]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A sweep folder (or its runs.csv): the finished `ok` runs (others are left out with a
    warning) and each run's metrics.jsonl as curves with a run_id column; the one reader of sweeps
    for fitting and for `scaling emergence`."""
    csv = path if path.is_file() else path / runs.RUNS_CSV
    try:
        table = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(
            f"cannot read {csv} ({type(err).__name__}); rebuild it with `scaling sweep`"
        ) from None
    if "status" in table:
        bad = table["status"].astype(str) != "ok"
        if bad.any():
            _warn(
                f"{csv.parent}: left out {int(bad.sum())} run(s) whose status is not 'ok' "
                "(diverged)",
                sink,
            )
            table = table[~bad].reset_index(drop=True)
    curves = []
    if "run_id" in table:
        for run_id in table["run_id"].astype(str):
            rows = read_curve(csv.parent / run_id, sink)
            if rows:
                c = pd.DataFrame(rows)
                c["run_id"] = run_id
                curves.append(c)
    return table, (pd.concat(curves, ignore_index=True) if curves else None)


def read_table(
    path: str | Path, sink: list[str] | None = None, logs: LogOptions | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read one source into a raw DataFrame (+ raw curves for sweep folders and logs)."""
    sink = [] if sink is None else sink
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    logs = logs or LogOptions()
    is_sweep = p.is_dir() and any((q / "runs.csv").exists() for q in (p, *p.iterdir()))
    if logs.format is not None or (
        not is_sweep and p.name != "runs.csv" and (p.is_dir() or detect(p) is not None)
    ):
        return read_logs(p, logs)
    if p.is_dir():
        if (p / "runs.csv").exists():
            return read_sweep(p, sink)
        subs = sorted(q for q in p.iterdir() if (q / "runs.csv").exists())
        if not subs:
            raise DataError(
                f"{p}: a folder must hold runs.csv (a sweep) or sweeps that do; found neither"
            )
        parts = [read_sweep(q, sink) for q in subs]
        curves = [c for _, c in parts if c is not None]
        return (
            pd.concat([t for t, _ in parts], ignore_index=True),
            pd.concat(curves, ignore_index=True) if curves else None,
        )
    if p.name == "runs.csv":
        return read_sweep(p, sink)
    kind = TABLE_SUFFIXES.get(p.suffix.lower())
    try:
        if kind == "csv":
            return pd.read_csv(p), None
        if kind == "tsv":
            return pd.read_csv(p, sep="\t"), None
        if kind == "parquet":
            return pd.read_parquet(p), None
        if kind == "jsonl":
            try:
                return pd.read_json(p, lines=True), None
            except ValueError:
                return pd.read_json(p), None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(f"{p}: cannot read it as {kind} ({str(err).splitlines()[0]})") from None
    raise DataError(
        f"{p}: unknown table type {p.suffix!r}; use .csv, .tsv, .parquet or .jsonl, "
        "a sweep folder, or a log (--format hf|tensorboard|wandb|lightning)"
    )


def _resolve(table: pd.DataFrame, key: str, name: str | None) -> str | None:
    """The source column for canonical `key`: the given name, or an alias when the default is
    absent."""
    if name is None:
        return None
    if name in table.columns:
        return name
    if name == DEFAULTS[key]:
        lower = {str(c).lower(): c for c in table.columns}
        for alias in ALIASES[key]:
            if alias.lower() in lower:
                return lower[alias.lower()]
    return None


def _numeric(table: pd.DataFrame, col: str, what: str, source: str) -> np.ndarray:
    values = pd.to_numeric(table[col], errors="coerce")
    bad = values.isna() & table[col].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: column {col!r} ({what}) is not numeric, e.g. {table[col].iloc[i]!r} in row "
            f"{i + 1}"
        )
    v = values.to_numpy(dtype=float)
    for test, word in (
        (np.isnan(v), "NaN/empty"),
        (np.isinf(v), "infinite"),
        (v <= 0, "zero or negative"),
    ):
        if test.any():
            i = int(np.flatnonzero(test)[0])
            raise DataError(
                f"{source}: column {col!r} ({what}) has {int(test.sum())} {word} value(s), first "
                f"in row {i + 1} ({v[i]}); filter them (--query) or fix the table"
            )
    return v


# runs.csv columns that grow in proportion to the tokens seen: rescaled per evaluation of a curve
TOKEN_PROPORTIONAL = ("C", "C_6ND", "C_kaplan", "C_chinchilla")


def curve_rows(table: pd.DataFrame, curves: pd.DataFrame | None, source: str) -> pd.DataFrame:
    """Every evaluation of every run as a row of its own (Kaplan's protocol, docs/study.md): the
    run's columns (N, N_nonembed, ...) with D = the tokens seen at that evaluation, the FLOP columns
    scaled to them (C = 6 N D) and loss = the validation loss there; `D_run` keeps the run's own
    D."""
    if curves is None or "run_id" not in table or not {"tokens", "loss_val"} <= set(curves):
        raise DataError(
            f"{source}: curve points need sweep folders whose runs have metrics.jsonl "
            "(tokens, loss_val); drop --curve-points for plain tables"
        )
    cv = curves[[k for k in ("run_id", "step", "tokens", "loss_val", "loss_train") if k in curves]]
    runs = table.drop(columns=[k for k in ("loss", "loss_train", "step") if k in table]).rename(
        columns={"D": "D_run"}
    )
    rows = runs.merge(
        cv.rename(columns={"loss_val": "loss"}), on="run_id", how="inner", validate="one_to_many"
    )
    rows["D"] = pd.to_numeric(rows["tokens"], errors="coerce")
    share = rows["D"] / pd.to_numeric(rows["D_run"], errors="coerce")
    for col in TOKEN_PROPORTIONAL:
        if col in rows:
            rows[col] = pd.to_numeric(rows[col], errors="coerce") * share
    rows = rows.drop(columns=["tokens"])
    if rows.empty:
        raise DataError(
            f"{source}: no run has evaluations in its metrics.jsonl; nothing to turn into curve "
            "points"
        )
    return rows.sort_values(["run_id", "D"], kind="stable").reset_index(drop=True)


def expand(paths) -> list[Path]:
    """Paths as given, a glob pattern (quoted from the shell) replaced by what it matches."""
    out: list[Path] = []
    for p in paths:
        if not Path(p).exists() and glob.has_magic(str(p)):
            hits = sorted(glob.glob(str(p)))
            if not hits:
                raise DataError(f"{p}: the pattern matches no file or folder")
            out += map(Path, hits)
        else:
            out.append(Path(p))
    return out


def log_options(
    n: str, d: str, loss: str, log_format: str | None, tokens_per_step: float | None
) -> tuple[LogOptions, str]:
    """LogOptions from the column options (`n` may be a number: N of every run) and the N column."""
    try:
        n_value = float(n)
    except ValueError:
        n_value = None
    if n_value is not None and not (np.isfinite(n_value) and n_value > 0):
        raise DataError(f"--n {n}: give a column name or a positive parameter count")
    if tokens_per_step is not None and not (np.isfinite(tokens_per_step) and tokens_per_step > 0):
        raise DataError(f"--tokens-per-step {tokens_per_step}: give a positive number of tokens")
    opts = LogOptions(
        format=log_format,
        loss=None if loss == DEFAULTS["loss"] else loss,
        tokens=None if d == DEFAULTS["D"] else d,
        tokens_per_step=tokens_per_step,
        n_value=n_value,
        n_key=None if n == DEFAULTS["N"] or n_value else n,
    )
    return opts, ("N" if n_value is not None else n)


def load_points(
    paths,
    n: str = "N",
    d: str = "D",
    c: str = "C",
    loss: str = "loss",
    group: str | None = None,
    drop_top_loss: int = 0,
    query: str | None = None,
    min_points: int = 2,
    curves_as_points: bool = False,
    log_format: str | None = None,
    tokens_per_step: float | None = None,
    best_over: list[str] | tuple | None = None,
    mean_over: tuple[str, ...] | str | None = None,
    unique: str | None = None,
) -> Points:
    """Read `paths` (files or sweep folders) into a validated `Points`.

    n, d, c, loss: source column names (defaults also match common aliases, e.g. 'Model Size');
    one of N, D, C may be missing and is derived with C = 6ND. `n="N_nonembed"` counts parameters
    the Kaplan way. group: a column whose values split the fit. query: a pandas query run on the raw
    table first (e.g. "dataset == 'rw'"). drop_top_loss=k: Epoch's filter, keep loss below the k-th
    largest loss (per group), e.g. 5 for the Chinchilla data. curves_as_points: every evaluation in
    each run's metrics.jsonl becomes a point (D = tokens at that evaluation, C = 6ND; see
    `curve_rows`), as Kaplan's protocol reads its runs; the query then sees those rows.
    Logs (`scaling.analysis.readers`): log_format forces a reader; tokens_per_step x step gives D
    where no token count is logged; a numeric `n` is the N of every run whose config does not say
    it. best_over: hyperparameter columns swept at each (N, D); only the lowest loss is kept.
    mean_over: columns (e.g. "seed") whose rows at one (N, D, C[, group]) are replicates of one
    point: their mean loss is the point, their spread kept for the bootstrap (`Points.replicates`).
    Sweep folders average over `seed` automatically when it varies at a point; `()` turns that off.
    unique: the column of unique training tokens U_D (repeated data), kept as `U_D`.
    """
    paths = _input_paths(paths)
    source = ", ".join(str(p) for p in paths)
    logs, n = log_options(n, d, loss, log_format, tokens_per_step)
    sink: list[str] = []
    table, curves = _read_all(paths, sink, logs, source)
    if curves_as_points:
        table, curves = _curves_as_points(table, curves, source)
    if query:
        table = _query(table, query)
    cols = _columns(table, {"N": n, "D": d, "C": c, "loss": loss}, source)
    frame = _frame(table, cols, source, group, unique)
    notes = _log_notes(table)
    if best_over or mean_over:
        frame, notes = _best_over(frame, table, best_over, mean_over, source, notes)
    frame, keep = _drop_top_losses(frame, drop_top_loss, min_points, source)
    columns = _column_sources(frame, cols, sink)
    curve_frame = (
        _canonical_curves(pd.concat(curves, ignore_index=True), frame, sink) if curves else None
    )
    over, how = (
        ((), "") if best_over else _replicate_columns(mean_over, table, frame, curves, source, keep)
    )
    return _points(frame, curve_frame, columns, sink, notes, over, how)


def _drop_top_losses(
    frame: pd.DataFrame, drop_top_loss: int, min_points: int, source: str
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The frame without its `drop_top_loss` highest losses, and the rows kept (None: all);
    DataError when fewer than `min_points` remain."""
    keep = _below_top_losses(frame, drop_top_loss) if drop_top_loss else None
    if keep is not None:
        frame = frame[keep].reset_index(drop=True)
    if len(frame) < min_points:
        raise DataError(
            f"{source}: only {len(frame)} usable point(s); a fit needs at least {min_points}"
        )
    return frame, keep


def _column_sources(
    frame: pd.DataFrame, cols: dict[str, str | None], sink: list[str]
) -> dict[str, str]:
    """Source column per canonical name ("derived" where computed); warns of unlikely units."""
    columns = {k: v if v is not None else "derived (C = 6ND)" for k, v in cols.items()}
    for msg in unit_warnings(frame, {k for k in ("N", "D", "C") if cols[k] is not None}):
        _warn(msg, sink)
    return columns


def _input_paths(paths) -> list[Path]:
    """`paths` (one path or several) expanded to the files and sweep folders to read."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise DataError("no input given; pass a sweep folder or a CSV/parquet/JSONL table")
    return expand(paths)


def _curves_as_points(
    table: pd.DataFrame, curves: list[pd.DataFrame], source: str
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Every evaluation of every run as a point; no curves are left (Approach 1 then works from
    the points, not from curves)."""
    return (
        curve_rows(table, pd.concat(curves, ignore_index=True) if curves else None, source),
        [],
    )


def _points(
    frame: pd.DataFrame,
    curve_frame: pd.DataFrame | None,
    columns: dict[str, str],
    sink: list[str],
    notes: list[str],
    over: tuple[str, ...],
    how: str,
) -> Points:
    """`Points`, with the replicates at each point (rows differing in the `over` columns) averaged
    into one row (`mean_replicates`) and the averaging described in columns["mean_over"]."""
    if not over:
        return Points(frame, curve_frame, columns, sink, notes)
    if curve_frame is not None and "run_id" in frame:
        curve_frame = curve_frame.assign(point_id=_point_ids(frame, curve_frame["run_id"]))
    frame, reps = mean_replicates(frame)
    n_rep = frame["n_rep"]
    columns["mean_over"] = (
        f"{', '.join(over)} ({how}): {int((n_rep > 1).sum())} of {len(frame)} "
        f"points average {int(n_rep.min())}-{int(n_rep.max())} rows"
    )
    return Points(frame, curve_frame, columns, sink, notes, reps)


def _best_over(
    frame: pd.DataFrame, table: pd.DataFrame, best_over, mean_over, source: str, notes: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """`--best-over`: the lowest loss per (N, D), with a note; it cannot be combined with
    `--mean-over`."""
    if best_over and mean_over:
        raise DataError(
            f"{source}: --best-over and --mean-over cannot be combined; reduce the "
            "table over one of them first"
        )
    if not best_over:
        return frame, notes
    from scaling.analysis.bestover import best_over as reduce_best

    frame, note = reduce_best(frame, table, list(best_over), source)
    return frame, notes + [note]


def _read_all(
    paths: list[Path], sink: list[str], logs: LogOptions, source: str
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Every input's raw rows in one table and its curves; a numeric --n fills N of plain tables."""
    tables, curves = [], []
    for p in paths:
        t, cv = read_table(p, sink, logs)
        tables.append(t)
        if cv is not None:
            curves.append(cv)
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    if logs.n_value is not None and "format" not in table:  # a plain table: one model size
        if "N" in table:
            raise DataError(
                f"{source}: --n {logs.n_value:g} would replace its column N; give a "
                "column name, or a number only for logs or tables without N"
            )
        table["N"] = logs.n_value
    return table, curves


def _query(table: pd.DataFrame, query: str) -> pd.DataFrame:
    """The rows `--query` keeps; one-line DataError for a bad expression or no rows."""
    try:
        table = table.query(query).reset_index(drop=True)
    except Exception as err:  # pandas raises many types for a bad expression
        raise DataError(
            f"--query {query!r} failed: {type(err).__name__}: {str(err).splitlines()[0]}"
        ) from None
    if table.empty:
        raise DataError(f"--query {query!r} kept no rows")
    return table


def _columns(table: pd.DataFrame, asked: dict[str, str], source: str) -> dict[str, str | None]:
    """The source column of N, D, C and loss (None: derived); loss and two of N, D, C must exist."""
    found = ", ".join(map(str, table.columns))
    cols = {k: _resolve(table, k, v) for k, v in asked.items()}
    if cols["loss"] is None:
        raise DataError(
            f"{source}: no loss column {asked['loss']!r} (--loss); found columns: {found}"
        )
    missing = [k for k in ("N", "D", "C") if cols[k] is None]
    if len(missing) > 1:
        raise DataError(
            f"{source}: need two of N, D, C but columns "
            f"{', '.join(repr(asked[k]) for k in missing)} "
            f"(--{'/--'.join(k.lower() for k in missing)}) are missing; found columns: {found}"
        )
    return cols


def _frame(
    table: pd.DataFrame,
    cols: dict[str, str | None],
    source: str,
    group: str | None,
    unique: str | None,
) -> pd.DataFrame:
    """The canonical frame: N, D, C (the missing one from C = 6ND), loss, and the group, run_id,
    entropy_floor and U_D columns where present or asked for."""
    found = ", ".join(map(str, table.columns))
    values = {k: _numeric(table, col, k, source) for k, col in cols.items() if col is not None}
    if "C" not in values:
        values["C"] = FLOPS_PER_PARAM_TOKEN * values["N"] * values["D"]
    elif "D" not in values:
        values["D"] = values["C"] / (FLOPS_PER_PARAM_TOKEN * values["N"])
    elif "N" not in values:
        values["N"] = values["C"] / (FLOPS_PER_PARAM_TOKEN * values["D"])
    frame = pd.DataFrame({k: values[k] for k in ("N", "D", "C", "loss")})
    if group is not None:
        if group not in table:
            raise DataError(
                f"{source}: no group column {group!r} (--group); found columns: {found}"
            )
        frame["group"] = table[group].astype(str).to_numpy()
    for extra in ("run_id", "entropy_floor"):
        if extra in table:
            frame[extra] = table[extra].to_numpy()
    if unique is not None:
        if unique not in table:
            raise DataError(
                f"{source}: no unique-tokens column {unique!r} (--unique); found columns: {found}"
            )
        frame["U_D"] = _numeric(table, unique, "U_D", source)
    return frame


def _log_notes(table: pd.DataFrame) -> list[str]:
    """Other tools' logs: where each run's N came from; [] for our sweeps and plain tables."""
    if "N_source" not in table:
        return []
    per_run = table.drop_duplicates("run_id") if "run_id" in table else table
    counts = per_run["N_source"].dropna().value_counts()
    return [
        "N of the logs from "
        + ", ".join(f"{k} ({v} run{'s' * (v != 1)})" for k, v in counts.items())
    ]


def _below_top_losses(frame: pd.DataFrame, k: int) -> np.ndarray:
    """Epoch's filter: the rows whose loss is below the k-th largest of their group."""
    keys = frame["group"] if "group" in frame else pd.Series(0, index=frame.index)
    keep = np.ones(len(frame), bool)
    for _, idx in frame.groupby(keys, sort=False).groups.items():
        ls = frame.loc[idx, "loss"].to_numpy()
        if len(ls) > k:
            thresh = np.sort(ls)[-k]
            keep[np.asarray(idx)] = ls < thresh
    return keep


POINT_KEYS = ("N", "D", "C", "group")  # rows equal in these (replicate columns aside): one point


def _replicate_columns(mean_over, table, frame, curves, source, keep):
    """The replicate columns to average over and why: the given ones, or `seed` for sweep folders
    (runs with curves) where it varies at some point; () for none."""
    if isinstance(mean_over, str):
        mean_over = tuple(c.strip() for c in mean_over.split(",") if c.strip())
    rows = table[keep].reset_index(drop=True) if keep is not None else table
    if mean_over:
        missing = [c for c in mean_over if c not in rows]
        if missing:
            raise DataError(
                f"{source}: no column {', '.join(map(repr, missing))} to average over "
                f"(--mean-over); found columns: {', '.join(map(str, table.columns))}"
            )
        return tuple(mean_over), "given"
    if mean_over is None and curves and "seed" in rows:
        keys = [k for k in POINT_KEYS if k in frame]
        per_point = frame[keys].assign(_s=rows["seed"].to_numpy()).groupby(keys)["_s"].nunique()
        if (per_point > 1).any():
            return ("seed",), "automatic: seeds vary at a point"
    return (), ""


def _point_ids(frame: pd.DataFrame, run_ids: pd.Series) -> np.ndarray:
    """For each of `run_ids` (rows of `frame`), the run_id of its point's first row: the id the
    averaged point keeps (`mean_replicates`), so curves find their point."""
    keys = [k for k in POINT_KEYS if k in frame]
    codes = frame.groupby(keys, sort=False).ngroup().to_numpy()
    first = frame["run_id"].astype(str).to_numpy()[np.unique(codes, return_index=True)[1]]
    point_of = dict(zip(frame["run_id"].astype(str), first[codes], strict=True))
    return run_ids.astype(str).map(point_of).to_numpy()


def mean_replicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """One row per point (equal N, D, C and group): mean loss, loss_sd (sample sd; NaN for a single
    row), n_rep, the other columns from the point's first row; and each point's losses."""
    keys = [k for k in POINT_KEYS if k in frame]
    codes = frame.groupby(keys, sort=False).ngroup().to_numpy()  # points numbered by first row
    loss = frame["loss"].to_numpy(float)
    reps = [loss[codes == i] for i in range(int(codes.max()) + 1)]
    first = [int(np.flatnonzero(codes == i)[0]) for i in range(len(reps))]
    out = frame.iloc[first].reset_index(drop=True)
    out["loss"] = [r.mean() for r in reps]
    out["loss_sd"] = [r.std(ddof=1) if len(r) > 1 else np.nan for r in reps]
    out["n_rep"] = [len(r) for r in reps]
    return out, reps


def _canonical_curves(
    raw: pd.DataFrame, frame: pd.DataFrame, sink: list[str]
) -> pd.DataFrame | None:
    """Curves as (run_id, N, D_run, tokens, flops, loss), with N and the FLOP accounting of the
    chosen columns: flops = C_run * tokens / D_run, so `--n N_nonembed --c C_kaplan` carries into
    Approach 1."""
    if "run_id" not in frame or "tokens" not in raw:
        return None
    lcol = "loss_val" if "loss_val" in raw else ("loss" if "loss" in raw else None)
    if lcol is None:
        _warn("metrics.jsonl has no loss_val column; Approach 1 uses final points only", sink)
        return None
    runs = frame.drop_duplicates("run_id").set_index("run_id")
    c = raw[raw["run_id"].isin(runs.index)]
    tokens = pd.to_numeric(c["tokens"], errors="coerce").to_numpy(float)
    lossv = pd.to_numeric(c[lcol], errors="coerce").to_numpy(float)
    rid = c["run_id"].to_numpy()
    N = runs.loc[rid, "N"].to_numpy(float)
    D = runs.loc[rid, "D"].to_numpy(float)
    C = runs.loc[rid, "C"].to_numpy(float)
    out = pd.DataFrame(
        {
            "run_id": rid,
            "N": N,
            "D_run": D,
            "tokens": tokens,
            "flops": C * tokens / D,
            "loss": lossv,
        }
    )
    ok = (
        np.isfinite(out["loss"])
        & (out["loss"] > 0)
        & np.isfinite(out["tokens"])
        & (out["tokens"] > 0)
    )
    return out[ok].reset_index(drop=True)

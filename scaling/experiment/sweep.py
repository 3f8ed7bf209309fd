"""`scaling sweep`: a Hydra multirun over the grid of a preset in conf/sweep/, then the report.

Before anything trains, every grid point is composed and validated (one bad point stops the
sweep with a one-line error and no folder written) and finished runs are listed as skipped.
Hydra's launcher (basic, joblib, submitit_local/slurm, ray: docs/scaleout.md) then runs the
points; each job claims its run folder, so two sweeps sharing a runs_dir never train the same
run, and an interrupted sweep resumes where it stopped. The table and the report are rebuilt
from the run folders, whichever processes or machines trained them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from scaling import progress, runs
from scaling.errors import ConfigError, ScalingError
from scaling.experiment import worker_stop
from scaling.experiment.config import (
    CONF_DIR,
    RunSpec,
    compose,
    compose_all,
    config_dir_override,
    help_text,
    register_configs,
    resolve_run,
    split_help,
)
from scaling.experiment.ensemble import member_overrides, plan_ensembles, train_ensemble
from scaling.experiment.train import summary_line, train_run
from scaling.flops import FLOPS_PER_PARAM_TOKEN

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override
    from tqdm import tqdm

# ---------------------------------------------------------------- planning


def override_line(o: Override) -> str:
    """The command-line text of an override parsed from the command line."""
    assert o.input_line is not None  # set for every override parsed from text
    return o.input_line


def grid_overrides(argv: list[str]) -> list[list[str]]:
    """The override list of every grid point: the preset's `hydra.sweeper.params` axes, with
    the command line's overrides added or replacing an axis (as Hydra's basic sweeper does)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    try:
        overrides = parser.parse_overrides(argv)
        fixed = [override_line(o) for o in overrides if not o.is_sweep_override()]
        base = compose(fixed, return_hydra_config=True)
        node = OmegaConf.select(base, "hydra.sweeper.params")  # None: a preset without a grid
        params = cast("dict[str, Any]", OmegaConf.to_container(node) if node else {})
        lines = [f"{k}={v}" for k, v in params.items()] + list(argv)
        return BasicSweeper.split_arguments(parser.parse_overrides(lines), None)[0]
    except HydraException as err:
        raise ConfigError(f"bad override: {err} (see scaling sweep --help)") from None


def plan(argv: list[str]) -> list[RunSpec]:
    """Validate every grid point (raising ConfigError on the first bad one); one RunSpec each,
    duplicates (two points that resolve to the same run) dropped."""
    specs: dict[Path, RunSpec] = {}
    for job, cfg in zip(grid := grid_overrides(argv), compose_all(grid)):
        try:
            spec = resolve_run(cfg)
        except ConfigError as err:
            raise ConfigError(f"{err} (grid point: {' '.join(job)})") from None
        specs.setdefault(spec.run_dir, spec)
    return list(specs.values())


# ---------------------------------------------------------------- launchers and threads

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a SLURM or container limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def launcher_threads(launcher: DictConfig | dict | None, n_runs: int, cores: int) -> int | None:
    """Threads per run under the chosen Hydra launcher, so that parallel runs share the cores
    without oversubscribing them; None for the basic launcher (one run at a time, in-process).

    joblib: cores // min(n_jobs, runs) (n_jobs=-1 is every core, -2 all but one, as in joblib);
    submitit_local starts every job at once: cores // runs; submitit_slurm: cpus_per_task (each
    job has its own allocation; 1 if unset, SLURM's default); ray: ray.remote.num_cpus (1 if unset).
    """
    if not launcher:
        return None
    get = (
        (lambda key: OmegaConf.select(launcher, key))
        if isinstance(launcher, DictConfig)
        else launcher.get
    )
    target, n_runs = str(get("_target_") or ""), max(1, n_runs)
    if target.endswith("JoblibLauncher"):
        n_jobs = int(get("n_jobs") or 1)
        n_jobs = max(1, cores + 1 + n_jobs) if n_jobs < 0 else n_jobs
        return max(1, cores // min(n_jobs, n_runs))
    if target.endswith("submitit_launcher.LocalLauncher"):
        return max(1, cores // n_runs)
    if target.endswith("SlurmLauncher"):
        return int(get("cpus_per_task") or 1)
    if target.endswith("RayLauncher"):
        ray = get("ray") or {}
        remote = (ray.get("remote") if hasattr(ray, "get") else None) or {}
        return int(remote.get("num_cpus") or 1)
    return None


def parallel_jobs(launcher: DictConfig | dict | None, n_runs: int, cores: int) -> int:
    """How many jobs may run at once on this machine (they share its memory)."""
    threads = launcher_threads(launcher, n_runs, cores)
    return 1 if threads is None else max(1, cores // threads)


def job_device(device: str, job_num: int, n_gpus: int) -> str:
    """The device of the sweep's job `job_num` when it sees `n_gpus` GPUs: with several (a local
    launcher on a multi-GPU machine, or a SLURM/Ray job given several), jobs take them in turn,
    cuda:<job_num % n_gpus>, so parallel runs do not share one GPU; an explicit cuda:<i> or cpu
    stays. SLURM (gpus_per_task=1) and Ray (num_gpus=1) give each job its own GPU through
    CUDA_VISIBLE_DEVICES: the job sees one and keeps "cuda"."""
    if n_gpus > 1 and device in ("auto", "cuda"):
        return f"cuda:{job_num % n_gpus}"
    return device


# ---------------------------------------------------------------- the Hydra job


@dataclass
class _Progress:
    """State shared with the in-process jobs of Hydra's basic launcher (other launchers run
    jobs elsewhere: their results are read back from the run folders)."""

    bar: tqdm | None = None
    planned: dict[str, float] = field(default_factory=dict)  # run_id -> C of runs left to train
    results: list[dict] = field(default_factory=list)


_STATE = _Progress()


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _job(cfg: DictConfig) -> None:
    """One grid point, as Hydra launches it: train (or skip) the run, or the ensemble it leads
    (nothing where another point's ensemble trains it), and report one line per run."""
    device = job_device(cfg.train.device, HydraConfig.get().job.num, torch.cuda.device_count())
    if device != cfg.train.device:
        cfg.train.device = device
    group = _ensemble_of(cfg)
    if group == [] or worker_stop.stopped():
        return  # a member of an ensemble that another job trains, or the sweep was stopped
    try:
        results = train_ensemble(group) if group else [train_run(cfg)]
    except SystemExit:
        if not worker_stop.in_worker():
            raise
        return  # stopped by the forwarded SIGTERM, checkpoint saved; ending the worker would
        # make the launcher kill the other workers before they saved theirs
    for result in results:
        _STATE.results.append(result)
        if result["status"] == "skipped":
            progress.say(f"{result['run_id']}: finished meanwhile by another sweep, skipped")
        else:
            progress.say(summary_line(result))
        if _STATE.bar is not None and result["run_id"] in _STATE.planned:
            progress.sweep_advance(_STATE.bar, _STATE.planned.pop(result["run_id"]))


# ------------------------------------------------- ensembles (scaling/experiment/ensemble.py)

PLAN_ENV = "SCALING_ENSEMBLES"  # the sweep's plan file, set in every job by hydra.job.env_set


def write_plan(jobs: list[list[RunSpec]], folder: Path) -> Path | None:
    """The ensembles of this sweep as a file the jobs read (launchers may run them on other
    machines, which share the runs folder): leader run id -> the other members' overrides, and
    the members trained by a leader. None when no job has more than one run."""
    groups = [job for job in jobs if len(job) > 1]
    if not groups:
        return None
    plan = {
        "leaders": {job[0].run_id: [member_overrides(s) for s in job[1:]] for job in groups},
        "members": sorted(s.run_id for job in groups for s in job[1:]),
    }
    text = json.dumps(plan, sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    path = (
        folder.resolve() / ".hydra" / f"ensembles-{digest}.json"
    )  # absolute: jobs may run elsewhere
    runs.atomic_write_text(path, text)
    return path


def _ensemble_of(cfg: DictConfig) -> list[DictConfig] | None:
    """The configs of the ensemble this grid point leads; [] when another point's ensemble trains
    it; None when it trains alone (no plan, or not in it)."""
    path = os.environ.get(PLAN_ENV)
    if not path:
        return None
    plan = json.loads(Path(path).read_text())
    run_id = resolve_run(cfg).run_id
    if run_id in plan["members"]:
        return []
    others = plan["leaders"].get(run_id)
    if others is None:
        return None
    # merging into a DictConfig gives a DictConfig
    return [
        cfg,
        *(cast(DictConfig, OmegaConf.merge(cfg, OmegaConf.from_dotlist(o))) for o in others),
    ]


def launch(argv: list[str], threads: int | None = None, workers: bool = False) -> None:
    """Run Hydra's multirun (the preset's launcher and sweeper) over the grid of `argv`.

    `threads` (from `launcher_threads`) becomes OMP_NUM_THREADS and MKL_NUM_THREADS of the
    launched workers, unless the user set them: with train.threads=0 a run takes torch's default,
    which is that number (capped by the cores idle when it starts); an explicit train.threads wins.
    `workers`: the launcher trains in local worker processes (joblib), which a SIGTERM to this
    process reaches only through `worker_stop`.
    """
    env = {"HYDRA_FULL_ERROR": "1"}  # let exceptions reach our CLI instead of Hydra's printer
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_ENV if k not in os.environ})
    saved_argv, saved_env = sys.argv, {k: os.environ.get(k) for k in env}
    sys.argv = ["scaling-sweep", *argv, "--multirun"]
    os.environ.update(env)
    register_configs()
    stopper: contextlib.AbstractContextManager[list[int]] = (
        worker_stop.stop_workers_on_sigterm() if workers else contextlib.nullcontext([])
    )
    try:
        with stopper as came:
            _job()
        if came:
            progress.say(
                f"sweep stopped by {signal.Signals(came[0]).name}; its runs saved their "
                "checkpoints (rerun the same command to resume)"
            )
            raise SystemExit(128 + came[0])
    finally:
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


REPORT_BOOTSTRAP = (
    200  # bootstrap resamples of the sweep's report (scaling report --n-boot for more)
)


@dataclass(frozen=True)
class Reports:
    """Where a finished sweep's runs go next. scaling/workflows.py supplies the analysis wing's
    reports; this wing only hands over folders of the run store (None: runs.csv only).

    sweep(sweep folder, out, bootstrap resamples, group column or None, command) -> out
    tasks(task tables, out) -> the report written"""

    sweep: Callable[[Path, Path, int, str | None, str], Path] | None = None
    tasks: Callable[[list[Path], Path], Path] | None = None


def after_sweep(
    sweep_path: Path,
    planned: set[str] | None = None,
    report: bool = True,
    report_dir: str | Path | None = None,
    argv: list[str] | tuple = (),
    reports: Reports = Reports(),
) -> list[dict]:
    """The one place a finished sweep is reported: rebuild runs.csv from the result.json files
    and, with `report` (sweep.report), print the table and write the report (fits, figures,
    report.md) into `report_dir` (default analysis/<sweep>/). Data that cannot support a fit
    (e.g. one model size) is a one-line warning, not an error: runs.csv is kept either way.
    `planned` (the run ids of this grid) lets it point out finished runs of other configs."""
    runs.rebuild_runs_csv(sweep_path)
    results = runs.load_results(sweep_path)
    if report:
        progress.say(runs.format_table(results))
    progress.say(f"{len(results)} finished run(s) in {sweep_path / runs.RUNS_CSV}")
    others = sorted(
        r["run_id"] for r in results if planned is not None and r["run_id"] not in planned
    )
    if others:
        progress.say(
            f"note: {len(others)} of them are not in this grid (other configs): "
            f"{', '.join(others)}; "
            f"delete their folders to drop them from runs.csv"
        )
    if report and results and reports.sweep is not None:
        out = Path(report_dir) if report_dir else Path("analysis") / sweep_path.name
        write_sweep_report(
            sweep_path, out, reports.sweep, "scaling sweep " + shlex.join(list(argv))
        )
    return results


def report_group(sweep_path: Path) -> str | None:
    """ "arch" when the sweep trained several architectures: their losses are different objectives
    (next token, masked tokens, spans), so each family gets its own fit, side by side."""
    archs = {r.get("arch") for r in runs.read_runs_csv(sweep_path / runs.RUNS_CSV)}
    return "arch" if len(archs) > 1 else None


def write_sweep_report(
    sweep_path: Path, out: Path, report: Callable[..., Path], command: str
) -> Path | None:
    """`report` (Reports.sweep) of the sweep folder into `out`; None (and a one-line warning)
    when the data cannot support a fit or `out` cannot be written."""
    try:
        report(sweep_path, out, REPORT_BOOTSTRAP, report_group(sweep_path), command)
    except ScalingError as err:
        progress.say(f"warning: no report written ({err}); runs.csv is complete")
        return None
    except OSError as err:
        progress.say(f"warning: no report written ({out}: {err.strerror}); runs.csv is complete")
        return None
    progress.say(f"report: {out / 'report.md'}")
    return out


def after_sweep_tasks(
    sweep_path: Path, out: Path | None, report: Callable[[list[Path], Path], Path] | None
) -> None:
    """The task probes of the sweep's runs (sweep.tasks), then their report into `out`."""
    from scaling.experiment.tasks import probe_sweep

    start = time.perf_counter()
    try:
        table = probe_sweep(sweep_path)
    except ScalingError as err:
        progress.say(f"warning: no task probes ({err})")
        return
    progress.say(f"task probes: {table} ({time.perf_counter() - start:.0f}s)")
    if out is not None and report is not None:
        progress.say(f"task report: {report([table], out)}")


# ---------------------------------------------------------------- scaling sweep

USAGE = """usage: scaling sweep [OVERRIDE ...]

Train every run of a sweep preset (default: sweep=quick) with Hydra's multirun, skipping runs
that already have a result.json, then rebuild runs/<sweep.name>/runs.csv and print the table.
Run it again to finish an interrupted sweep: only the missing runs train. The report goes to
analysis/<sweep.name>/ (sweep.report_dir=DIR elsewhere, sweep.report=false for runs.csv only).
Where runs execute is one override (docs/scaleout.md): hydra/launcher=joblib (parallel local
processes), submitit_local, submitit_slurm (SLURM), ray (pip install 'scaling[ray]').

examples:
  scaling sweep                                   # the quick preset on the synthetic language
  scaling sweep sweep=isoflop data=stdlib         # Chinchilla Approach 2 on Python's stdlib source
  scaling sweep sweep=grid model.n_layers=4 train.seed=0,1
  scaling sweep hydra/launcher=joblib hydra.launcher.n_jobs=2      # two runs at a time
"""


def _grids() -> str:
    lines = ["", "sweep presets (conf/sweep/, the grid is hydra.sweeper.params):"]
    for path in sorted((CONF_DIR / "sweep").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
        axes = "  ".join(f"{k}={v}" for k, v in params.items()) or "(no grid)"
        lines.append(f"  {path.stem:<8} {OmegaConf.select(cfg, 'sweep.description') or ''}")
        lines.append(f"  {'':<8} {axes}")
    return "\n".join(lines)


def main(argv: list[str], reports: Reports = Reports()) -> int:
    """`scaling sweep` (USAGE); `reports` gets the finished sweep (scaling/workflows.py)."""
    # always a multirun
    argv, want_help = split_help([a for a in argv if a not in ("-m", "--multirun")])
    if want_help:
        print(USAGE + _grids() + "\n" + help_text(sweep=True))
        return 0
    argv = config_dir_override(argv)  # --config-dir DIR: the user's own presets
    adaptive_cfg = _adaptive(argv)
    if adaptive_cfg is not None:  # sweep.adaptive.budgets: self-centring IsoFLOP windows
        from scaling.experiment import adaptive

        return adaptive.run(argv, adaptive_cfg, reports)
    specs = plan(argv)
    sweep_paths = sorted({s.run_dir.parent for s in specs})
    done = [s for s in specs if runs.is_finished(s.run_dir)]
    todo = [s for s in specs if not runs.is_finished(s.run_dir)]
    name = ", ".join(str(p) for p in sweep_paths)
    progress.say(f"sweep {name}: {len(specs)} runs, {len(done)} finished, {len(todo)} to train")
    if done:
        progress.say(f"skipping {len(done)} finished run(s): {', '.join(s.run_id for s in done)}")
    if todo:
        _train(argv, todo, sweep_paths, name)
    else:
        progress.say("nothing to train")
    _report(argv, specs, sweep_paths, reports)
    missing = [s.run_id for s in todo if not runs.is_finished(s.run_dir)]
    if missing:  # a busy run is being trained by another sweep; its result lands in runs.csv
        progress.say(
            f"{len(missing)} run(s) not finished here (trained by another process, or failed): "
            f"{', '.join(missing)}; rerun the same command to finish them"
        )
    return 0


def _train(argv: list[str], todo: list[RunSpec], sweep_paths: list[Path], name: str) -> None:
    """Launch the runs still to train, grouped into ensembles where the plan allows."""
    for path in sweep_paths:
        _check_writable(path)
    launcher = _launcher(argv)
    jobs = plan_ensembles(todo, parallel_jobs(launcher, len(todo), available_cores()))
    threads = launcher_threads(launcher, len(jobs), available_cores())
    if threads is not None:
        progress.say(
            f"launcher runs in parallel: {threads} thread(s) per run on {available_cores()} core(s)"
        )
    plan_path, launch_argv = write_plan(jobs, sweep_paths[0]), argv
    if plan_path is not None:
        groups = [j for j in jobs if len(j) > 1]
        progress.say(
            f"{sum(map(len, groups))} runs train in {len(groups)} ensemble(s) "
            f"(train.ensemble=off to train each alone)"
        )
        launch_argv = [*argv, f"++hydra.job.env_set.{PLAN_ENV}={plan_path}"]
    _STATE.planned = {s.run_id: float(FLOPS_PER_PARAM_TOKEN * s.counts.N * s.D) for s in todo}
    _STATE.results = []
    _STATE.bar = progress.sweep_bar(sum(_STATE.planned.values()), len(todo), name)
    workers = launcher is not None and str(launcher.get("_target_", "")).endswith("JoblibLauncher")
    try:
        launch(launch_argv, threads, workers)
    finally:
        _STATE.bar.close()
        _STATE.bar = None


def _report(
    argv: list[str], specs: list[RunSpec], sweep_paths: list[Path], reports: Reports
) -> None:
    """runs.csv of every sweep folder, then its report and task probes where the preset asks."""
    options = specs[0].options
    report, report_dir = bool(options.report), options.report_dir or None
    for path in sweep_paths:
        out = None
        if report_dir:
            out = Path(report_dir) if len(sweep_paths) == 1 else Path(report_dir) / path.name
        after_sweep(path, {s.run_id for s in specs}, report, out, argv, reports)
        if options.tasks:
            tasks_out = Path(f"{out or Path('analysis') / path.name}_tasks") if report else None
            after_sweep_tasks(path, tasks_out, reports.tasks)


def _launcher(argv: list[str]) -> DictConfig | None:
    """The composed `hydra.launcher` node of this command line (the grid axes left out)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    fixed = [
        override_line(o)
        for o in OverridesParser.create().parse_overrides(argv)
        if not o.is_sweep_override()
    ]
    return OmegaConf.select(compose(fixed, return_hydra_config=True), "hydra.launcher")


def _adaptive(argv: list[str]) -> DictConfig | None:
    """The composed config when it sets sweep.adaptive.budgets (grid axes left out), else None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides(argv)
    except HydraException as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(f"bad override: {reason} (see scaling sweep --help)") from None
    cfg = compose([override_line(o) for o in overrides if not o.is_sweep_override()])
    return cfg if cfg.sweep.adaptive.budgets else None


def _check_writable(path: Path) -> None:
    """ConfigError, before any job starts, if the sweep's folder cannot be created or written."""
    lock = runs.FileLock(path / ".runs.csv.lock")
    lock.acquire(blocking=True)  # creates the folder and a file in it, or raises ConfigError
    lock.release()

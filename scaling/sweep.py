"""`scaling sweep`: a Hydra multirun over the grid of a preset in conf/sweep/, then the report.

Before anything trains, every grid point is composed and validated (one bad point stops the
sweep with a one-line error and no folder written) and finished runs are listed as skipped.
Hydra's launcher then runs the points; each job claims its run folder, so two sweeps sharing
a runs_dir never train the same run, and an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from scaling import progress, runs
from scaling.config import CONF_DIR, RunSpec, compose, compose_all, help_text, register_configs, resolve_run, split_help
from scaling.errors import ConfigError
from scaling.train import summary_line, train_run


# ---------------------------------------------------------------- planning

def grid_overrides(argv: list[str]) -> list[list[str]]:
    """The override list of every grid point: the preset's `hydra.sweeper.params` axes, with
    the command line's overrides added or replacing an axis (as Hydra's basic sweeper does)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    try:
        fixed = [o.input_line for o in parser.parse_overrides(argv) if not o.is_sweep_override()]
        base = compose(fixed, return_hydra_config=True)
        params = OmegaConf.to_container(base.hydra.sweeper.params) or {}
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


# ---------------------------------------------------------------- the Hydra job

@dataclass
class _Progress:
    """State shared with the in-process jobs of Hydra's basic launcher (other launchers run
    jobs elsewhere: their results are read back from the run folders)."""

    bar: object = None
    planned: dict[str, float] = field(default_factory=dict)  # run_id -> C of runs left to train
    results: list[dict] = field(default_factory=list)


_STATE = _Progress()


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _job(cfg: DictConfig) -> None:
    """One grid point, as Hydra launches it: train (or skip) the run and report one line."""
    result = train_run(cfg)
    _STATE.results.append(result)
    if result["status"] == "skipped":
        progress.say(f"{result['run_id']}: finished meanwhile by another sweep, skipped")
    else:
        progress.say(summary_line(result))
    if _STATE.bar is not None and result["run_id"] in _STATE.planned:
        progress.sweep_advance(_STATE.bar, _STATE.planned.pop(result["run_id"]))


def launch(argv: list[str]) -> None:
    """Run Hydra's multirun (the preset's launcher and sweeper) over the grid of `argv`."""
    saved_argv, saved_err = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["scaling-sweep", *argv, "--multirun"]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let exceptions reach our CLI instead of Hydra's printer
    register_configs()
    try:
        _job()
    finally:
        sys.argv = saved_argv
        if saved_err is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_err


def after_sweep(sweep_path: Path, planned: set[str] | None = None, report: bool = True) -> list[dict]:
    """The one place a finished sweep is reported: rebuild runs.csv from the result.json files
    and, with `report` (sweep.report), print the table (a later `scaling.report` step is called
    from here too). `planned` (the run ids of this grid) lets it point out finished runs of other
    configs in the same folder."""
    runs.rebuild_runs_csv(sweep_path)
    results = runs.load_results(sweep_path)
    if report:
        progress.say(runs.format_table(results))
    progress.say(f"{len(results)} finished run(s) in {sweep_path / runs.RUNS_CSV}")
    others = sorted(r["run_id"] for r in results if planned is not None and r["run_id"] not in planned)
    if others:
        progress.say(f"note: {len(others)} of them are not in this grid (other configs): {', '.join(others)}; "
                     f"delete their folders to drop them from runs.csv")
    return results


# ---------------------------------------------------------------- scaling sweep

USAGE = """usage: scaling sweep [OVERRIDE ...]

Train every run of a sweep preset (default: sweep=quick) with Hydra's multirun, skipping runs
that already have a result.json, then rebuild runs/<sweep.name>/runs.csv and print the table.
Run it again to finish an interrupted sweep: only the missing runs train.

examples:
  scaling sweep                                   # the quick preset on the synthetic language
  scaling sweep sweep=isoflop data=stdlib         # Chinchilla Approach 2 on Python's stdlib source
  scaling sweep sweep=grid model.n_layers=4 train.seed=0,1
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


def main(argv: list[str]) -> int:
    argv, want_help = split_help([a for a in argv if a not in ("-m", "--multirun")])  # always a multirun
    if want_help:
        print(USAGE + _grids() + "\n" + help_text(sweep=True))
        return 0
    specs = plan(argv)
    sweep_paths = sorted({s.run_dir.parent for s in specs})
    done = [s for s in specs if runs.is_finished(s.run_dir)]
    todo = [s for s in specs if not runs.is_finished(s.run_dir)]
    name = ", ".join(str(p) for p in sweep_paths)
    progress.say(f"sweep {name}: {len(specs)} runs, {len(done)} finished, {len(todo)} to train")
    if done:
        progress.say(f"skipping {len(done)} finished run(s): {', '.join(s.run_id for s in done)}")
    if todo:
        _STATE.planned = {s.run_id: 6.0 * s.counts.N * s.D for s in todo}
        _STATE.results = []
        _STATE.bar = progress.sweep_bar(sum(_STATE.planned.values()), len(todo), name)
        try:
            launch(argv)
        finally:
            _STATE.bar.close()
            _STATE.bar = None
    else:
        progress.say("nothing to train")
    report = bool(specs[0].config["sweep"].get("report", True))
    for path in sweep_paths:
        after_sweep(path, {s.run_id for s in specs}, report)
    busy = [r["run_id"] for r in _STATE.results if r["status"] == "busy"] if todo else []
    if busy:
        progress.say(f"{len(busy)} run(s) were being trained by another process: {', '.join(busy)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

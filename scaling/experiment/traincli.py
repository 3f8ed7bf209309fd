"""`scaling train`: compose one run's config from Hydra overrides, train it, say where it went."""

from __future__ import annotations

import sys

from scaling import progress, runs
from scaling.experiment import train
from scaling.experiment.config import compose, config_dir_override, help_text, split_help

USAGE = """usage: scaling train [OVERRIDE ...]

Train one run and write runs/<sweep.name>/<run_id>/ (config.yaml, metrics.jsonl, result.json).
Runs of `scaling train` go to runs/single/ unless you pass sweep.name=<folder>. A finished run
is skipped; an interrupted one resumes from its last checkpoint.

examples:
  scaling train model.size=s2 train.tokens=2e6
  scaling train data=stdlib model.size=s4 train.seed=1 train.device=cpu
"""


def main(argv: list[str]) -> int:
    argv, want_help = split_help(argv)
    if want_help:
        print(USAGE + help_text())
        return 0
    argv = config_dir_override(argv)  # --config-dir DIR: the user's own presets
    if not any(a.split("=", 1)[0].lstrip("+~") in ("sweep", "sweep.name") for a in argv):
        argv = ["sweep=single", *argv]
    cfg = compose(argv)
    result = train.train_run(cfg)
    if result["status"] == "skipped":
        progress.say(
            f"{result['run_id']}: already finished, skipped (delete its folder to train it again)"
        )
    else:
        progress.say(train.summary_line(result))
    if result["status"] == "busy":
        return 1
    runs_csv = runs.sweep_dir(cfg.runs_dir, cfg.sweep.name) / runs.RUNS_CSV
    progress.say(
        f"result: {runs.run_dir(cfg.runs_dir, cfg.sweep.name, result['run_id']) / runs.RESULT}"
        f"  table: {runs_csv}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

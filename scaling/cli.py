"""The `scaling` command: pick a subcommand and hand the rest of argv to it; no logic here."""

from __future__ import annotations

import importlib
import os
import sys

# subcommand -> ("module", "function", one-line help). Each function takes argv (list[str])
# and returns an exit code. Modules are imported lazily so `scaling fit` never imports torch.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": (
        "scaling.experiment.traincli",
        "main",
        "train one run (Hydra overrides, e.g. model.size=s2 train.tokens=2e6)",
    ),
    "sweep": (
        "scaling.workflows",
        "sweep",
        "train a grid of runs (Hydra multirun), then fit and report",
    ),
    "fit": (
        "scaling.analysis.fitcli",
        "main",
        "fit Kaplan and Chinchilla laws to run folders or any CSV/parquet/JSONL table",
    ),
    "plot": (
        "scaling.analysis.plotcli",
        "main_plot",
        "write the comparison figures for run folders or tables",
    ),
    "report": (
        "scaling.analysis.plotcli",
        "main_report",
        "fit, plot and write report.md + fits.json",
    ),
    "emergence": (
        "scaling.analysis.emergence",
        "main",
        "probe scores against N, D and C: which abilities look emergent",
    ),
    "tasks": (
        "scaling.workflows",
        "tasks",
        "task probes of kept checkpoints: which family suits which task",
    ),
    "reproduce": (
        "scaling.analysis.reproduce",
        "main",
        "rerun a report's recorded command; check its inputs and numbers",
    ),
    "tune": (
        "scaling.analysis.tunecli",
        "main",
        "best lr per size of an lr sweep, lr*(N) for lr=auto",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: scaling <command> [args...]   (scaling <command> --help for more)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"scaling: error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    module_name, func_name, _ = COMMANDS[name]
    from scaling.errors import ScalingError

    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(rest) or 0)
    except ScalingError as err:
        print(f"scaling {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scaling {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (e.g. `scaling train --help | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

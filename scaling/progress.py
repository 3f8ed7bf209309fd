"""Progress bars: one per run (tokens, loss, tokens/s) and one per sweep (k of n runs, ETA).

Both are tqdm bars that switch themselves off when stderr is not a terminal (tqdm's
`disable=None`), so logs and CI output stay quiet; `say()` prints a line without breaking bars.
"""

from __future__ import annotations

from tqdm.auto import tqdm


def say(message: str) -> None:
    """Print one line to stdout, above any live progress bar."""
    tqdm.write(message)


def sweep_bar(total_flops: float, n_runs: int, name: str) -> tqdm:
    """Runs done (k of n) and an ETA; progress is counted in training FLOPs, so the ETA weighs
    a big run more than a small one."""
    bar = tqdm(
        total=total_flops,
        position=0,
        leave=True,
        disable=None,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
    )
    bar.sweep_name, bar.n_runs, bar.runs_done = name, n_runs, 0
    bar.set_description_str(f"{name} 0/{n_runs} runs")
    return bar


def sweep_advance(bar: tqdm, flops: float) -> None:
    """One more run of the sweep is done; it trained `flops` FLOPs."""
    bar.runs_done += 1
    bar.set_description_str(f"{bar.sweep_name} {bar.runs_done}/{bar.n_runs} runs", refresh=False)
    bar.update(flops)


def run_bar(total_tokens: int, initial_tokens: int, desc: str) -> tqdm:
    """Tokens trained out of the run's budget D; the rate tqdm shows is tokens/s."""
    return tqdm(
        total=total_tokens,
        initial=initial_tokens,
        desc=desc,
        unit="tok",
        unit_scale=True,
        position=1,
        leave=False,
        disable=None,
        dynamic_ncols=True,
    )

"""Installed like a library: the wheel carries the Hydra configs, `scaling train` works from any
folder (runs_dir under the current one), and a user's config folder adds presets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from tiny import TINY_MODEL

from scaling.cli import main as cli_main
from scaling.errors import ConfigError
from scaling.experiment.config import compose, config_dir_override

REPO = Path(__file__).resolve().parents[1]
TINY = [
    *TINY_MODEL,
    "train.tokens=2048",
    "data.val_tokens=256",
    "train.threads=1",
]


def user_presets(tmp_path: Path) -> Path:
    folder = tmp_path / "myconf"
    (folder / "sweep").mkdir(parents=True)
    (folder / "sweep" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - single\nsweep:\n  name: mine\ntrain:\n  seed: 7\n"
    )
    (folder / "sweep" / "seeds.yaml").write_text(
        "# @package _global_\nsweep:\n  name: seeds\n  report: false\n"
        "hydra:\n  sweeper:\n    params:\n      train.seed: 0,1\n"
    )
    return folder


def test_config_dir_adds_presets(tmp_path):
    folder = user_presets(tmp_path)
    cfg = compose(config_dir_override(["sweep=mine", "--config-dir", str(folder)]))
    assert (cfg.sweep.name, cfg.train.seed) == ("mine", 7)
    with pytest.raises(ConfigError, match=r"--config-dir '.*nowhere': no such folder"):
        config_dir_override(["--config-dir=" + str(tmp_path / "nowhere")])


def test_train_help_has_no_traceback(capsys):
    assert cli_main(["train", "--help"]) == 0
    assert "--config-dir DIR" in capsys.readouterr().out


def _copy_source(dest: Path) -> Path:
    """The repo's tracked files (scaling/conf stays a link to conf/), without runs or reports."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for rel in files.split():
        src, dst = REPO / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif not rel.startswith(("runs/", "analysis/")):
            shutil.copy2(src, dst)
    return dest


@pytest.mark.wheel
def test_wheel_installs_and_trains_from_another_folder(tmp_path):
    """Build the wheel, install it (no deps) into a fresh venv that sees this interpreter's
    dependencies through a .pth line, and train one tiny run from an unrelated folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the installed package
    src = _copy_source(tmp_path / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        env=env,
    )
    wheel = next((tmp_path / "dist").glob("scaling-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        env=env,
    )
    (site / "deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )  # after: pip would see ours
    (tmp_path / "src").rename(tmp_path / "src-gone")  # nothing may come from the source tree
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [py, "-c", "import scaling; print(scaling.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site)), where.stderr
    help_ = subprocess.run(
        [venv / "bin" / "scaling", "train", "--help"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert help_.returncode == 0 and "Traceback" not in help_.stderr
    folder = user_presets(tmp_path)
    done = subprocess.run(
        [venv / "bin" / "scaling", "train", "sweep=mine", "--config-dir", str(folder), *TINY],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (result,) = (work / "runs" / "mine").glob("*/result.json")
    assert json.loads(result.read_text())["status"] == "ok"
    swept = subprocess.run(
        [venv / "bin" / "scaling", "sweep", "sweep=seeds", "--config-dir", str(folder), *TINY],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert swept.returncode == 0, swept.stderr
    assert len(list((work / "runs" / "seeds").glob("*/result.json"))) == 2

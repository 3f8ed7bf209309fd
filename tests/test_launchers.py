"""The launcher presets of conf/hydra/launcher/ without their optional plugin installed."""

from __future__ import annotations

import importlib.util

import pytest

from scaling.cli import main as cli_main


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None,
    reason="the [ray] extra is installed here",
)
@pytest.mark.parametrize("launcher", ["ray", "ray_cluster"])
def test_a_ray_launcher_without_the_extra_is_one_line_naming_it(tmp_path, capsys, launcher):
    assert cli_main(["sweep", f"runs_dir={tmp_path}", f"hydra/launcher={launcher}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install -e '.[ray]'" in err
    assert not any(tmp_path.iterdir())  # nothing written

"""What a person sees of a real `clipcache sweep`: one progress line per run, no epoch lines (they are in each run's
run.log), all of them with --verbose; and where a DVC stage's head stands among train.heads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import PAIR
from tests.sweep.conftest import grid_params, write


def sweep(path: Path, *flags: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *flags, "sweep", "--params", str(path), "--head",
                           "tip_adapter_f"], capture_output=True, text=True, check=True)
    return done.stderr


def test_the_console_shows_runs_and_the_run_log_holds_its_epochs(two_seed_cache: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "tip_adapter_f"])
    params["encode"]["protocol"].update(shots=[1], seeds=[1])
    err = sweep(write(params, tmp_path / "params.yaml"))
    lines = err.strip().splitlines()
    assert not [line for line in lines if " epoch " in line or "val acc" in line or "top-1 1.0000, mean" in line], err
    assert [line.split("] ")[0].split("[")[1] for line in lines if "] image_folder/" in line] == ["1/1"]
    assert "sweep of tip_adapter_f: head 2 of the 2 in train.heads" in err
    own = (tmp_path / "results" / "tip_adapter_f" / "image_folder" / PAIR["vit"] / "k1-s1" / "run.log").read_text()
    assert own.count(" tip_adapter_f epoch ") == 2 and "val acc" in own
    params["evaluate"]["results_dir"] = str(tmp_path / "again")
    verbose = sweep(write(params, tmp_path / "params.yaml"), "--verbose")
    assert verbose.count(" tip_adapter_f epoch ") == 2

"""Ctrl-C (SIGINT) and SIGTERM of a real `clipcache sweep` and `clipcache encode`: one line saying what was saved and
that the same command resumes, exit status 130, no traceback; the next sweep picks up from there."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import encode_section, make_folder, write_params
from tests.sweep.conftest import grid_params, write


def start(command: str, params: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", command, "--params", str(params)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_when(process: subprocess.Popen, marker: str, signum: int, timeout: float = 240) -> tuple[str, str]:
    """Send `signum` once a line holding `marker` appears on stderr; (stdout, stderr) after it ends."""
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        seen.append(line)
        if marker in line:
            process.send_signal(signum)
            break
        assert time.monotonic() < deadline, "the command never reached the signal point"
    out, rest = process.communicate(timeout=120)
    return out, "".join(seen) + rest


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_sweep_says_what_it_saved_and_the_same_command_resumes(two_seed_cache: dict[str, Any],
                                                                         tmp_path: Path, signum: int) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "clip_adapter"])
    params["heads"]["clip_adapter"] = {"epochs": 400}  # long enough to be stopped in flight
    path = write(params, tmp_path / "params.yaml")
    process = start("sweep", path)
    _, err = signal_when(process, "[4/8]", signum)  # the 4 zero-shot runs are saved, a clip_adapter run is in flight
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("clipcache: interrupted: ") and "Traceback" not in err, err
    saved = int(last.split("interrupted: ")[1].split(" ")[0])
    assert 4 <= saved < 8 and "0 done before" in last and "run the same command to resume" in last
    done = list((tmp_path / "results").rglob("run.json"))
    assert len(done) == saved
    params["heads"]["clip_adapter"] = {"epochs": 2}
    write(params, path)  # the zero-shot runs keep their fingerprints
    finished = subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "--params", str(path),
                               "--head", "zero_shot"], capture_output=True, text=True, check=True)
    assert json.loads(finished.stdout)["already_done"] == 4


def test_a_stopped_encode_says_what_is_kept(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "img", ["a", "b", "c"], 30)
    params = write_params(tmp_path / "params.yaml", encode_section(root, "vit", tmp_path / "cache"),
                          {"workers": 0, "batch_size": 2, "shard_images": 2})
    process = start("encode", params)
    _, err = signal_when(process, "RANDOM WEIGHTS", signal.SIGINT)  # logged as the encoder loads, inside the encode
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("clipcache: interrupted while encoding image_folder with ") and "Traceback" not in err
    assert "0 of 1 (data set, model) pair(s) done" in last and "run the same command to resume" in last


def test_ctrl_c_of_a_sweep_on_local_workers_is_one_line_and_a_normal_close_is_quiet(two_seed_cache: dict[str, Any],
                                                                                     tmp_path: Path) -> None:
    """Ctrl-C goes to the driver only (the workers start with SIGINT ignored): no worker traceback, no scheduler
    chatter, one line; a sweep that ends normally prints no 'still alive ... killing'."""
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "clip_adapter"], runtime={"cluster": "local:1"})
    params["heads"]["clip_adapter"] = {"epochs": 400}
    path = write(params, tmp_path / "params.yaml")
    process = start("sweep", path)
    _, err = signal_when(process, "[4/8]", signal.SIGINT)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("clipcache: interrupted: "), err
    assert "Traceback" not in err and "distributed." not in err, err
    quick = grid_params(two_seed_cache, tmp_path / "quick", heads=["zero_shot"], runtime={"cluster": "local:1"})
    (tmp_path / "quick").mkdir()
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "--params",
                           str(write(quick, tmp_path / "quick" / "params.yaml"))], capture_output=True, text=True)
    assert done.returncode == 0 and "still alive" not in done.stderr and "distributed." not in done.stderr, done.stderr


def test_an_interrupt_a_library_wrapped_still_counts_as_one() -> None:
    """h5py turns a Ctrl-C inside its visit callback into another exception 'directly caused' by it: the run must
    not be reported failed while the sweep goes on."""
    from pipeline.sweep.execute import caused_by_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise RuntimeError("visit failed") from inner
    except RuntimeError as wrapped:
        assert caused_by_interrupt(wrapped)
    assert not caused_by_interrupt(RuntimeError("a real failure"))

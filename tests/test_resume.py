"""Kill a real `clipcache encode` with SIGKILL mid-run, run it again: it resumes and ends identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import PAIR, cache_tensors, encode_section, make_folder, write_params

RUNTIME = {"workers": 1, "batch_size": 4, "shard_images": 4}


def start(params: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline.cli", "encode", "--params", str(params)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def kill_when(process: subprocess.Popen, ready, timeout: float = 120) -> None:
    """SIGKILL the whole process group (decoding workers included) once `ready()` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"encode ended before it could be killed: {process.stderr.read().decode()}"
        assert time.monotonic() < deadline, "encode never reached the kill point"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.slow
def test_sigkill_at_two_moments_then_resume_gives_identical_tensors(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "img", ["a", "b", "c"], 30)
    reference = tmp_path / "reference"
    reference_params = write_params(tmp_path / "ref.yaml", encode_section(root, "vit", reference), RUNTIME)
    subprocess.run([sys.executable, "-m", "pipeline.cli", "encode", "--params", str(reference_params)], check=True)
    cache = tmp_path / "cache"
    params = write_params(tmp_path / "params.yaml", encode_section(root, "vit", cache), RUNTIME)
    folder = cache / "image_folder" / PAIR["vit"]
    parts = folder / "test.h5.parts"

    kill_when(start(params), lambda: len(list(parts.glob("shard-*.h5"))) >= 1)  # mid test split
    assert not (folder / "test.h5").exists()
    written = {p.name for p in parts.glob("shard-*.h5")}
    kill_when(start(params), lambda: (folder / "k2-s1" / "train.h5.parts").is_dir())  # later: into the views
    assert written <= {p.name for p in parts.glob("shard-*.h5")} or (folder / "test.h5").exists()
    finished = subprocess.run([sys.executable, "-m", "pipeline.cli", "encode", "--params", str(params)],
                              capture_output=True, text=True, check=True)
    assert "resuming" in finished.stderr or "up to date" in finished.stderr

    got, want = cache_tensors(cache), cache_tensors(reference)
    assert sorted(got) == sorted(want) and len(want) > 20
    for key in want:
        assert np.array_equal(got[key], want[key]), f"{key} differs after kill and resume"
    leftovers = [p for p in cache.rglob("*") if ".tmp-" in p.name or p.name.endswith(".parts")]
    assert not leftovers, leftovers

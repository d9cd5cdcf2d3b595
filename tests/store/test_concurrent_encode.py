"""Two `clipcache encode` processes on the same cache at once: both finish, and the files equal a single run's (each
split's writers take turns under its lock; neither removes the other's shards). Real processes, real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import cache_tensors, encode_section, make_folder, write_params

RUNTIME = {"workers": 0, "batch_size": 4, "shard_images": 2}  # many small shards: the two writers overlap




@pytest.mark.slow
def test_two_encodes_of_one_cache_at_once_both_finish_with_a_single_runs_files(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "img", ["a", "b", "c"], 20)
    command = [sys.executable, "-m", "pipeline.cli", "encode", "--params"]
    single = write_params(tmp_path / "single.yaml", encode_section(root, "vit", tmp_path / "single"), RUNTIME)
    subprocess.run([*command, str(single)], check=True, capture_output=True)
    shared = write_params(tmp_path / "shared.yaml", encode_section(root, "vit", tmp_path / "shared"), RUNTIME)
    first, second = (subprocess.Popen([*command, str(shared)], stderr=subprocess.PIPE, text=True) for _ in range(2))
    errors = [first.communicate(timeout=300)[1], second.communicate(timeout=300)[1]]
    assert (first.returncode, second.returncode) == (0, 0), [e[-1500:] for e in errors]
    assert any("waiting for another process writing" in e or "up to date" in e for e in errors), \
        "the two runs met on a split"
    got, want = cache_tensors(tmp_path / "shared"), cache_tensors(tmp_path / "single")
    assert sorted(got) == sorted(want) and len(want) > 20
    for key in want:
        assert np.array_equal(got[key], want[key]), f"{key} differs from a single run"
    assert not [p for p in (tmp_path / "shared").rglob("*") if ".tmp-" in p.name or p.name.endswith(".parts")]

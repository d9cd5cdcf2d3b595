"""SIGKILL at exact points of an encode (a shard written, the consolidation half done, the final file renamed before
its shards are removed) and of a sweep (a run fitted but not scored, a run published mid-sweep); each is resumed by
running the same command again and compared bitwise with an uninterrupted run. The kill is real: the process sends
itself SIGKILL at the failpoint named by $CLIPCACHE_FAILPOINT (pipeline/store/failpoints.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import cache_tensors, encode_section, make_folder, write_params
from tests.sweep.conftest import grid_params, two_seed_cache, write  # noqa: F401  (a fixture)

CLI = [sys.executable, "-m", "pipeline.cli"]
RUNTIME = {"workers": 0, "batch_size": 4, "shard_images": 3}


def run(argv: list[str], failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CLIPCACHE_FAILPOINT"}
    if failpoint:
        env["CLIPCACHE_FAILPOINT"] = failpoint
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, env=env, timeout=300)




def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name or p.name.endswith(".parts")]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("img"), ["a", "b", "c"], 8)


@pytest.fixture(scope="module")
def reference(images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    where = tmp_path_factory.mktemp("reference")
    params = write_params(where / "p.yaml", encode_section(images, "vit", where / "cache"), RUNTIME)
    assert run(["encode", "--params", str(params)]).returncode == 0
    return cache_tensors(where / "cache")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["shard-written@1", "shard-written@4", "consolidating@1", "consolidating@3",
                                   "consolidated@1", "consolidated@2"])
def test_encode_killed_at_a_point_resumes_bitwise(point: str, images: Path, reference, tmp_path: Path) -> None:
    params = write_params(tmp_path / "p.yaml", encode_section(images, "vit", tmp_path / "cache"), RUNTIME)
    killed = run(["encode", "--params", str(params)], point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-1500:]
    # what the user sees meanwhile: every file is either complete or named interrupted / leftover, never half
    inspect = run(["inspect", str(tmp_path / "cache")])
    assert "incomplete" not in inspect.stdout and "damaged" not in inspect.stdout
    assert ("interrupted" in inspect.stdout) == (inspect.returncode == 1)
    resumed = run(["encode", "--params", str(params)])
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    got = cache_tensors(tmp_path / "cache")
    assert sorted(got) == sorted(reference)
    for key in reference:
        assert np.array_equal(got[key], reference[key]), f"{key} differs after a kill at {point} and a resume"
    assert not leftovers(tmp_path / "cache")
    assert run(["verify", str(tmp_path / "cache")]).returncode == 0


def evaluations(results: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(results)): json.loads(p.read_text())["metrics"]
            for p in sorted(results.rglob("evaluation.json"))}


@pytest.mark.slow
@pytest.mark.parametrize("point", ["run-fitted@2", "run-published@3"])
def test_sweep_killed_at_a_point_resumes_with_the_same_results(point: str, two_seed_cache, tmp_path: Path) -> None:  # noqa: F811
    heads = ["tip_adapter", "gda"]
    reference = write(grid_params(two_seed_cache, tmp_path / "reference", heads), tmp_path / "reference.yaml")
    assert run(["sweep", "--params", str(reference)]).returncode == 0
    params = write(grid_params(two_seed_cache, tmp_path / "killed", heads), tmp_path / "killed.yaml")
    killed = run(["sweep", "--params", str(params)], point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-1500:]
    done_before = set(evaluations(tmp_path / "killed" / "results"))
    resumed = run(["sweep", "--params", str(params)])
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    got, want = evaluations(tmp_path / "killed" / "results"), evaluations(tmp_path / "reference" / "results")
    assert got == want and len(want) == 8
    assert done_before < set(got), "the runs published before the kill were kept, the others done again"
    assert not leftovers(tmp_path / "killed" / "results")
    assert run(["verify", str(tmp_path / "killed" / "results")]).returncode == 0

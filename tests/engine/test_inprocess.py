"""runtime.cluster none: in order, in this process, and no dask imported on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.engine import InProcessEngine, cluster_params, open_engine
from tests.engine.support import REPO, make_jobs
from tests.engine.tasks import value_of, write_result


def test_in_process_runs_in_order_here(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path, 5)
    with open_engine(cluster_params({"cluster": "none"})) as engine:
        assert isinstance(engine, InProcessEngine)
        assert (engine.name, engine.has_gpu_workers) == ("in-process", False)
        pairs = list(engine.map_unordered(write_result, jobs, [True, False, True, False, False]))
    assert [index for index, _ in pairs] == [0, 1, 2, 3, 4]
    assert [done.value for _, done in pairs] == [value_of(i) for i in range(5)] == [7, 8, 11, 16, 23]
    assert {done.pid for _, done in pairs} == {os.getpid()}
    for index in range(5):
        assert json.loads((tmp_path / f"result-{index}.json").read_text())["value"] == value_of(index)


def test_flags_must_pair_with_items(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 items but 2 gpu flags"):
        InProcessEngine().map_unordered(write_result, make_jobs(tmp_path, 3), [False, False])


def test_an_exception_from_fn_propagates_and_stops() -> None:
    from tests.engine.tasks import fail_on_three

    seen = []
    with pytest.raises(ValueError, match="task 3 refuses"):
        for index, result in InProcessEngine().map_unordered(fail_on_three, [0, 1, 2, 3, 4], [False] * 5):
            seen.append((index, result))
    assert seen == [(0, 100), (1, 101), (2, 102)]


CHECK = """
import sys
import pipeline.engine
from pipeline.engine import cluster_params, open_engine
with open_engine(cluster_params({"cluster": "none", "slurm": {"gres": "gpu:1"}})) as engine:
    print(list(engine.map_unordered(abs, [-3, 4], [False, True])))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "dask_jobqueue", "dask_cuda")))
"""


def test_importing_the_engine_imports_no_dask() -> None:
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[(0, 3), (1, 4)]", "[]"]

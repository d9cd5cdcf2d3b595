"""runtime.cluster local:N: real worker processes on this machine, same results as in-process."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.engine import Engine, cluster_params, open_engine
from pipeline.engine.dask_engine import gpu_workers
from pipeline.errors import ClipCacheError
from tests.engine.support import collect, in_process_values, make_jobs
from tests.engine.tasks import fail_on_three, kill_own_worker, square_in_child, value_of, write_result


@pytest.fixture(scope="module")
def local2() -> Iterator[Engine]:
    """One local:2 engine shared by this module's tests (starting one costs seconds)."""
    with open_engine(cluster_params({"cluster": "local:2"})) as engine:
        engine.client.wait_for_workers(2, timeout=60)
        yield engine


def worker_pids(engine: Engine) -> set[int]:
    return set(engine.client.run(os.getpid).values())


def test_local_results_equal_in_process_ones_and_ran_in_workers(local2: Engine, tmp_path: Path) -> None:
    assert (local2.name, local2.has_gpu_workers) == ("local:2", False)
    assert local2.client.scheduler_info()["services"]["dashboard"] != 8787  # HTTP on a free port, not the default
    assert gpu_workers(local2.client) is False
    count = 8
    expected = in_process_values(tmp_path / "here", count)
    results = collect(local2, write_result, make_jobs(tmp_path / "there", count, sleep=0.2), gpu=[True, False] * 4)
    assert {index: done.value for index, done in results.items()} == expected
    assert expected == {i: value_of(i) for i in range(count)}
    assert all(done.index == index for index, done in results.items())
    pids = {done.pid for done in results.values()}
    workers = worker_pids(local2)
    assert len(workers) == 2 and os.getpid() not in workers
    assert pids <= workers
    for index in range(count):
        written = json.loads((tmp_path / "there" / f"result-{index}.json").read_text())
        assert written == {"index": index, "value": value_of(index), "pid": results[index].pid}


def test_a_task_may_start_a_child_process(local2: Engine) -> None:
    results = collect(local2, square_in_child, [3, 4, 5])
    assert {index: square for index, (square, _, _) in results.items()} == {0: 9, 1: 16, 2: 25}
    workers = worker_pids(local2)
    for _, child_pid, worker_pid in results.values():
        assert worker_pid in workers and child_pid not in workers and child_pid != os.getpid()


def test_an_exception_from_fn_propagates(local2: Engine) -> None:
    with pytest.raises(ValueError, match="task 3 refuses"):
        collect(local2, fail_on_three, list(range(6)))
    assert collect(local2, fail_on_three, [0, 1, 2]) == {0: 100, 1: 101, 2: 102}


def test_leaving_early_cancels_the_rest_and_the_engine_still_works(local2: Engine, tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path, 10, sleep=0.5)
    first = collect(local2, write_result, jobs, stop_after=1)
    assert len(first) == 1
    time.sleep(3.0)  # all 10 would be done by now (10 x 0.5 s on 2 workers) had nothing been cancelled
    written = sorted(tmp_path.glob("result-*.json"))
    assert 1 <= len(written) <= 6
    again = collect(local2, write_result, jobs)  # the same items again: fresh keys, every result
    assert {index: done.value for index, done in again.items()} == {i: value_of(i) for i in range(10)}


def test_a_run_that_kills_every_worker_is_named() -> None:
    import dask

    params = cluster_params({"cluster": "local:1", "threads_per_worker": 3})
    # allowed-failures 0: the scheduler gives up after the first death (default 3: the fourth)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), open_engine(params) as engine:
        engine.client.wait_for_workers(1, timeout=60)
        assert [info["nthreads"] for info in engine.client.scheduler_info()["workers"].values()] == [3]
        with pytest.raises(ClipCacheError, match=r"item 0 \(41\) was given up: 1 worker\(s\) died") as info:
            collect(engine, kill_own_worker, [41])
    assert "allowed-failures = 0" in str(info.value)
    assert type(info.value.__cause__).__name__ == "KilledWorker"


def test_ctrl_c_inside_the_block_stops_the_workers() -> None:
    import psutil

    pids: set[int] = set()
    with pytest.raises(KeyboardInterrupt), open_engine(cluster_params({"cluster": "local:1"})) as engine:
        engine.client.wait_for_workers(1, timeout=60)
        pids = worker_pids(engine)
        assert len(pids) == 1 and all(psutil.pid_exists(pid) for pid in pids)
        raise KeyboardInterrupt
    deadline = time.monotonic() + 15
    while any(psutil.pid_exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(psutil.pid_exists(pid) for pid in pids)

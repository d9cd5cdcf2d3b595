"""A scheduler address: a real `dask scheduler` and two `dask worker` processes; one worker is SIGKILLed mid-run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.engine import cluster_params, open_engine
from pipeline.errors import ClipCacheError
from tests.engine.support import REPO, collect, in_process_values, make_jobs
from tests.engine.tasks import value_of, write_result

WORKER = ["--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "30",
          "--preload-nanny", "pipeline.engine.nondaemon"]


@dataclass
class Deployment:
    address: str
    gpu_worker: subprocess.Popen  # started with --resources GPU=1
    cpu_worker: subprocess.Popen


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float) -> dict:
    """The scheduler file's JSON once written; fails if the scheduler exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dask scheduler exited with {proc.returncode}")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
    pytest.fail(f"no scheduler file within {timeout} s")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group (a nanny and its worker process), then reap the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def start_module(folder: Path, procs: list[subprocess.Popen], name: str, *args: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m args...` from the repository, in its own process group, output in folder/<name>.log, added to
    `procs` (for kill_group at the end)."""
    with open(folder / f"{name}.log", "wb") as log:  # a file: a pipe nobody reads would block the child
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, start_new_session=True)
    procs.append(proc)
    return proc


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Scheduler on 127.0.0.1 (port 0, scheduler file) and two workers, each in its own process group, all killed."""
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        return start_module(tmp_path, procs, name, *args)

    try:
        file = tmp_path / "scheduler.json"
        scheduler = start("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                          "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(file))
        address = wait_for_file(file, scheduler, 40)["address"]
        gpu = start("gpu-worker", "distributed.cli.dask_worker", address, "--name", "gpu", "--resources", "GPU=1",
                    *WORKER)
        cpu = start("cpu-worker", "distributed.cli.dask_worker", address, "--name", "cpu", *WORKER)
        yield Deployment(address, gpu, cpu)
    finally:
        for proc in reversed(procs):
            kill_group(proc)


def kill_when_busy(folder: Path, pid: int, victim: subprocess.Popen, killed: list[int], timeout: float) -> None:
    """Kill the victim's process group once worker process `pid` has started its third job, mid-job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = sorted(int(marker.name.split("-")[1]) for marker in folder.glob(f"started-*-{pid}"))
        running = [index for index in started if not (folder / f"result-{index}.json").exists()]
        if len(started) >= 3 and running:
            os.killpg(victim.pid, signal.SIGKILL)
            killed.extend(running)
            return
        time.sleep(0.02)


def test_a_killed_worker_loses_no_run(deployment: Deployment, tmp_path: Path) -> None:
    count, folder = 10, tmp_path / "runs"
    jobs = make_jobs(folder, count, sleep=0.5)
    gpu = [index < count // 2 for index in range(count)]  # the first half only on the GPU worker
    with open_engine(cluster_params({"cluster": deployment.address, "worker_timeout": 40})) as engine:
        engine.client.wait_for_workers(2, timeout=40)
        assert (engine.name, engine.has_gpu_workers) == (deployment.address, True)
        names = {info["name"]: address for address, info in engine.client.scheduler_info()["workers"].items()}
        pids = engine.client.run(os.getpid)
        gpu_pid, cpu_pid = pids[names["gpu"]], pids[names["cpu"]]
        killed: list[int] = []
        killer = threading.Thread(target=kill_when_busy, args=(folder, cpu_pid, deployment.cpu_worker, killed, 30))
        killer.start()
        results = collect(engine, write_result, jobs, gpu, timeout=45)
        killer.join(5)
    assert len(killed) == 1, f"the cpu worker did not run 3 jobs, or ran several at once: {killed}"
    lost = killed[0]
    ran_on_cpu = [index for index in range(count) if (folder / f"started-{index}-{cpu_pid}").exists()]
    assert len(ran_on_cpu) >= 3 and all(not gpu[index] for index in ran_on_cpu)  # GPU jobs never on the cpu worker
    assert (folder / f"started-{lost}-{cpu_pid}").exists() and (folder / f"started-{lost}-{gpu_pid}").exists()
    assert results[lost].pid == gpu_pid  # rerun on the surviving worker
    assert deployment.cpu_worker.wait(timeout=10) == -signal.SIGKILL
    assert {index: done.value for index, done in results.items()} == in_process_values(tmp_path / "ref", count)
    assert all(results[index].pid == gpu_pid for index in range(count) if gpu[index])
    for index in range(count):
        assert json.loads((folder / f"result-{index}.json").read_text())["value"] == value_of(index)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_scheduler_at_the_address_is_named() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    params = cluster_params({"cluster": address, "worker_timeout": 1})
    with pytest.raises(ClipCacheError, match=f"no dask scheduler answers at {address}"), open_engine(params):
        pass

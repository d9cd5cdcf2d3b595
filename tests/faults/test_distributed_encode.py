"""Encode on a real dask scheduler with two workers on 127.0.0.1, one of which SIGKILLs itself mid-shard (the
failpoint `shard-encoding`, set in that worker's environment only): the scheduler runs the shard again on the other
worker, and the files equal a single-process encode bit for bit."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.encode.entry import encode_from_params
from tests.engine.test_address import WORKER, kill_group, start_module, wait_for_file
from tests.helpers import cache_tensors, encode_section, make_folder, write_params

RUNTIME = {"workers": 0, "batch_size": 4, "shard_images": 2}


def encode_single(params: Path) -> None:
    """The reference: a single-process encode with one torch thread, as a dask worker runs (its nanny sets
    OMP_NUM_THREADS=1); CPU kernels with other thread counts may round differently."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encode_from_params(params, [], {})
    finally:
        torch.set_num_threads(threads)




@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """(scheduler address, the victim worker): a scheduler, a steady worker, and a worker without a nanny that
    kills itself at its first encoded batch."""
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return start_module(tmp_path, procs, name, *args, env=env)

    try:
        file = tmp_path / "scheduler.json"
        scheduler = start("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                          "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(file))
        address = wait_for_file(file, scheduler, 40)["address"]
        start("steady-worker", "distributed.cli.dask_worker", address, "--name", "steady", *WORKER)
        victim = start("victim-worker", "distributed.cli.dask_worker", address, "--name", "victim", "--no-nanny",
                       *[a for a in WORKER if a not in ("--preload-nanny", "pipeline.engine.nondaemon")],
                       env={"CLIPCACHE_FAILPOINT": "shard-encoding@1"})
        yield address, victim
    finally:
        for proc in reversed(procs):
            kill_group(proc)


@pytest.mark.slow
def test_encode_on_two_workers_one_killed_mid_shard_equals_a_single_process(cluster, tmp_path: Path) -> None:
    address, victim = cluster
    root = make_folder(tmp_path / "img", ["a", "b", "c"], 12)
    single = write_params(tmp_path / "single.yaml", encode_section(root, "vit", tmp_path / "single"), RUNTIME)
    encode_single(single)
    shared = write_params(tmp_path / "engine.yaml", encode_section(root, "vit", tmp_path / "engine"),
                          {**RUNTIME, "cluster": address, "worker_timeout": 40})
    (report,) = encode_from_params(shared, [], {})
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the victim worker died in the middle of a shard"
    assert set(report.files.values()) == {"written"} and len(report.files) == 4
    got, want = cache_tensors(tmp_path / "engine"), cache_tensors(tmp_path / "single")
    assert sorted(got) == sorted(want) and len(want) > 20
    for key in want:
        assert np.array_equal(got[key], want[key]), f"{key} differs from a single-process encode"
    assert not [p for p in (tmp_path / "engine").rglob("*") if ".tmp-" in p.name or p.name.endswith(".parts")]
    (again,) = encode_from_params(shared, [], {})
    assert set(again.files.values()) == {"up to date"}


@pytest.mark.slow
def test_encode_on_a_local_cluster_with_decoding_processes_equals_a_single_process(tmp_path: Path) -> None:
    """runtime.workers: 1 starts a DataLoader process inside each dask worker (non-daemonic workers)."""
    root = make_folder(tmp_path / "img", ["a", "b", "c"], 10)
    single = write_params(tmp_path / "single.yaml", encode_section(root, "resnet", tmp_path / "single"), RUNTIME)
    encode_single(single)
    local = write_params(tmp_path / "local.yaml", encode_section(root, "resnet", tmp_path / "local"),
                         {**RUNTIME, "workers": 1, "cluster": "local:2"})
    (report,) = encode_from_params(local, [], {})
    assert set(report.files.values()) == {"written"} and report.images > 0
    got, want = cache_tensors(tmp_path / "local"), cache_tensors(tmp_path / "single")
    assert sorted(got) == sorted(want)
    for key in want:
        assert np.array_equal(got[key], want[key]), f"{key} differs from a single-process encode"

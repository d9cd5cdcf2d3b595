"""The sweep on real dask.distributed engines: a scheduler and two workers started here, one SIGKILLed mid-sweep;
a LocalCluster; dask-jobqueue's job machinery on its local launcher. Every run completes, with the metrics of the
in-process sweep, bit for bit (same seeds, same CPU kernels, one torch thread per run)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pipeline.sweep.entry import sweep_from_params
from tests.engine.test_address import Deployment, deployment  # noqa: F401  (the fixture)
from tests.sweep.conftest import grid_params, write

SLOW = {"tip_adapter_f": {"epochs": 60, "batch_size": 2}}  # long enough a fit to be killed in the middle


def metrics_on_disk(results: Path) -> dict[str, dict]:
    """run key -> metrics.json of every complete run under `results`, with its DVCLive loss curve where it trained
    (written by the worker that ran it)."""
    out = {}
    for record in sorted(results.rglob("run.json")):
        curve = record.parent / "dvclive" / "plots" / "metrics" / "train_loss.tsv"
        out[json.loads(record.read_text())["key"]] = {**json.loads((record.parent / "metrics.json").read_text()),
                                                      "curve": curve.read_text() if curve.is_file() else None}
    return out


def sweep_params(cache: dict, folder: Path, runtime: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    params = grid_params(cache, folder, heads=["zero_shot", "tip_adapter_f"], runtime=runtime)
    params["heads"].update(SLOW)
    return write(params, folder / "params.yaml")


@pytest.fixture(scope="module")
def reference(two_seed_cache, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The in-process sweep's metrics, run by run."""
    folder = tmp_path_factory.mktemp("in-process")
    report = sweep_from_params(sweep_params(two_seed_cache, folder, {}), [], None, {})
    assert report.count("done") == 8 and report.engine == "in-process"
    metrics = metrics_on_disk(folder / "results")
    assert sum(m["curve"] is not None for m in metrics.values()) == 4  # tip_adapter_f's runs, not zero_shot's
    return metrics


def kill_mid_run(results: Path, pid: int, victim, killed: list[str], timeout: float) -> None:
    """SIGKILL the victim's process group once worker `pid` has a run folder under construction (a temporary)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        building = [p for p in results.rglob(".tmp-*") if f"-{pid}-" in p.name]
        if building:
            os.killpg(victim.pid, signal.SIGKILL)
            killed.extend(str(p) for p in building)
            return
        time.sleep(0.01)


@pytest.mark.slow
def test_scheduler_address_with_a_worker_killed_mid_sweep(deployment: Deployment, two_seed_cache, reference,  # noqa: F811
                                                           tmp_path: Path) -> None:
    from distributed import Client

    with Client(deployment.address, timeout=40) as client:
        client.wait_for_workers(2, timeout=40)
        names = {info["name"]: address for address, info in client.scheduler_info()["workers"].items()}
        cpu_pid = client.run(os.getpid)[names["cpu"]]
    params = sweep_params(two_seed_cache, tmp_path, {"cluster": deployment.address, "worker_timeout": 40})
    killed: list[str] = []
    killer = threading.Thread(target=kill_mid_run, args=(tmp_path / "results", cpu_pid, deployment.cpu_worker,
                                                         killed, 120))
    killer.start()
    report = sweep_from_params(params, [], None, {})
    killer.join(5)
    assert killed, "the cpu worker was never caught in the middle of a run"
    assert deployment.cpu_worker.wait(timeout=10) == -signal.SIGKILL
    assert (report.count("done"), report.count("failed")) == (8, 0)
    assert metrics_on_disk(tmp_path / "results") == reference
    assert not list((tmp_path / "results").rglob(".tmp-*")), "the killed run's temporary is removed at the end"
    again = sweep_from_params(params, [], None, {})
    assert (again.count("skipped"), again.count("done")) == (8, 0)


@pytest.mark.slow
@pytest.mark.parametrize("cluster", ["local:2", "jobqueue-local:1"])
def test_local_engines_give_the_in_process_metrics(cluster: str, two_seed_cache, reference, tmp_path: Path) -> None:
    report = sweep_from_params(sweep_params(two_seed_cache, tmp_path, {"cluster": cluster}), [], None, {})
    assert (report.count("done"), report.engine.split(":")[0]) == (8, cluster.split(":")[0])
    assert metrics_on_disk(tmp_path / "results") == reference
    assert {r.worker.split(":")[1] for r in report.results} - {str(os.getpid())} == {
        r.worker.split(":")[1] for r in report.results}  # every run executed in a worker process, not here

"""dask-jobqueue: the SLURM job script as text (no SLURM here), and the job machinery run by its local launcher."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from pipeline.engine import cluster_params, open_engine, slurm_job_script
from pipeline.errors import ClipCacheError
from tests.engine.support import REPO, collect
from tests.engine.tasks import square_in_child

GPU_SLURM = {
    "partition": "gpu", "account": "proj42", "walltime": "01:30:00", "cores": 8, "memory": "32GB", "gres": "gpu:1",
    "jobs": 3, "job_extra": ["--qos=short"], "python": "/opt/env/bin/python", "local_directory": "/scratch/me",
    "prologue": ["module load cuda/12.1"],
}


def script_lines(slurm: dict) -> tuple[list[str], str]:
    """(#SBATCH directives, the worker command line) of the job script for these runtime.slurm settings."""
    lines = slurm_job_script(cluster_params({"cluster": "slurm", "slurm": slurm})).splitlines()
    directives = [line for line in lines if line.startswith("#SBATCH")]
    commands = [line for line in lines if "distributed.cli.dask_worker" in line]
    assert len(commands) == 1
    return directives, commands[0]


def test_slurm_script_with_a_gpu() -> None:
    directives, command = script_lines(GPU_SLURM)
    for expected in ("-p gpu", "-A proj42", "-t 01:30:00", "-n 1", "--cpus-per-task=8", "--mem=30G",
                     "--gres=gpu:1", "--qos=short"):
        assert f"#SBATCH {expected}" in directives
    words = command.split()
    assert words[:3] == ["/opt/env/bin/python", "-m", "distributed.cli.dask_worker"]
    assert words[3].startswith("tcp://")
    for flag, value in [("--nthreads", "8"), ("--memory-limit", "29.80GiB"), ("--resources", "GPU=1"),
                        ("--preload-nanny", "pipeline.engine.nondaemon"), ("--local-directory", "/scratch/me")]:
        assert words[words.index(flag) + 1] == value
    script = slurm_job_script(cluster_params({"cluster": "slurm", "slurm": GPU_SLURM}))
    assert script.index("module load cuda/12.1") < script.index("distributed.cli.dask_worker")
    assert script.startswith("#!/usr/bin/env bash\n")


def test_slurm_script_without_a_gpu() -> None:
    directives, command = script_lines({"cores": 4, "processes": 2, "memory": "8GB", "gres": "tmpfs:10G"})
    assert "#SBATCH --gres=tmpfs:10G" in directives and "#SBATCH --cpus-per-task=4" in directives
    assert "#SBATCH -t 02:00:00" in directives  # our default walltime, not dask-jobqueue's 30 minutes
    assert not any(line.startswith(("#SBATCH -p", "#SBATCH -A")) for line in directives)
    words = command.split()
    assert "--resources" not in words
    assert words[0] == sys.executable
    assert words[words.index("--nworkers") + 1] == "2" and words[words.index("--nthreads") + 1] == "2"
    assert "--local-directory" not in words


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="SLURM is installed here")
def test_slurm_without_sbatch_is_refused_before_starting_anything() -> None:
    params = cluster_params({"cluster": "slurm"})
    with pytest.raises(ClipCacheError, match=r"runtime\.cluster is 'slurm' but sbatch is not on PATH"), \
            open_engine(params):
        pass


def test_cuda_without_dask_cuda_or_gpu_names_the_extra() -> None:
    try:
        import dask_cuda  # noqa: F401
    except ImportError:
        match = r"needs dask-cuda, which is not installed: pip install 'clip-feature-cache\[cuda\]'"
    else:
        pytest.skip("dask-cuda is installed here")
    with pytest.raises(ClipCacheError, match=match), open_engine(cluster_params({"cluster": "cuda"})):
        pass


def test_jobqueue_local_jobs_run_the_job_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the job processes inherit the environment, and import the tasks
    params = cluster_params({"cluster": "jobqueue-local:2", "slurm": {"cores": 1, "memory": "1GB", "gres": "gpu:1"}})
    with open_engine(params) as engine:
        assert (engine.name, engine.has_gpu_workers) == ("jobqueue-local:2", True)
        engine.client.wait_for_workers(2, timeout=60)
        workers = engine.client.scheduler_info()["workers"].values()
        assert [info["resources"] for info in workers] == [{"GPU": 1}, {"GPU": 1}]
        assert [info["nthreads"] for info in workers] == [1, 1]
        worker_pids = set(engine.client.run(os.getpid).values())
        results = collect(engine, square_in_child, [2, 3, 4, 5], gpu=[True, True, False, True], timeout=60)
    assert {index: square for index, (square, _, _) in results.items()} == {0: 4, 1: 9, 2: 16, 3: 25}
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    for _, child_pid, worker_pid in results.values():
        assert worker_pid in worker_pids and child_pid not in worker_pids | {os.getpid()}


def test_jobqueue_local_refuses_a_path_its_launcher_would_take_for_an_error() -> None:
    params = cluster_params({"cluster": "jobqueue-local:1", "slurm": {"local_directory": "/tmp/error-logs"}})
    with pytest.raises(ClipCacheError, match=r"runtime\.slurm\.local_directory contains 'error'"), open_engine(params):
        pass

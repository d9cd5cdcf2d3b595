"""dask-jobqueue engines: SLURM jobs (`slurm`), and the same job machinery on local subprocesses (`jobqueue-local:N`).

One job runs one `dask worker` command line. Its nannies load `pipeline.engine.nondaemon`, so that runs may start
child processes (DataLoader workers); a gpu gres adds `--resources GPU=1`, so that GPU runs go to those workers.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.engine.clusters import LOCAL_HTTP, dask_at_warning
from pipeline.engine.config import ClusterParams, SlurmParams, gres_has_gpu
from pipeline.engine.dask_engine import DaskEngine
from pipeline.errors import ClipCacheError

logger = logging.getLogger(__name__)

PRELOAD = ["--preload-nanny", "pipeline.engine.nondaemon"]


def worker_kwargs(slurm: SlurmParams) -> dict[str, Any]:
    """What a job's `dask worker` command line needs; shared by SLURM jobs and jobqueue-local jobs."""
    extra = [*PRELOAD, *(["--resources", "GPU=1"] if gres_has_gpu(slurm.gres) else [])]
    return {
        "cores": slurm.cores, "memory": slurm.memory, "processes": slurm.processes,
        "python": slurm.python or sys.executable, "local_directory": slurm.local_directory,
        "worker_extra_args": extra,
    }


def slurm_kwargs(slurm: SlurmParams) -> dict[str, Any]:
    """SLURMCluster's keywords. Unset (None) values leave a site's ~/.config/dask/jobqueue.yaml in charge."""
    directives = [*slurm.job_extra, *([f"--gres={slurm.gres}"] if slurm.gres else [])]
    return {
        **worker_kwargs(slurm),
        "queue": slurm.partition, "account": slurm.account, "walltime": slurm.walltime,
        "job_extra_directives": directives or None, "job_script_prologue": list(slurm.prologue) or None,
        "interface": slurm.interface, "log_directory": slurm.log_directory,
        "scheduler_options": {"dashboard": False, "dashboard_address": ":0"},  # HTTP on a free port, no dashboard
    }


def slurm_job_script(params: ClusterParams) -> str:
    """The batch script each SLURM job would run, without submitting anything.

    SLURMCluster's constructor starts a scheduler in this process (sbatch runs only on scale); it is closed here.
    """
    from dask_jobqueue import SLURMCluster

    with SLURMCluster(**slurm_kwargs(params.slurm)) as cluster:
        return cluster.job_script()


@contextmanager
def slurm_engine(params: ClusterParams) -> Iterator[DaskEngine]:
    """`slurm`: a scheduler here, `runtime.slurm.jobs` SLURM jobs as workers; cancelled (scancel) on exit."""
    if shutil.which("sbatch") is None:
        raise ClipCacheError("runtime.cluster is 'slurm' but sbatch is not on PATH: run from a SLURM login node")
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    dask_at_warning()

    with SLURMCluster(**slurm_kwargs(params.slurm)) as cluster, Client(cluster) as client:
        logger.info("slurm: requesting %d jobs, each running:\n%s", params.slurm.jobs, cluster.job_script())
        cluster.scale(jobs=params.slurm.jobs)
        yield DaskEngine(client, "slurm", gpu=gres_has_gpu(params.slurm.gres))


@contextmanager
def jobqueue_local_engine(params: ClusterParams) -> Iterator[DaskEngine]:
    """`jobqueue-local:N`, a testing aid: N dask-jobqueue jobs run as local subprocesses, with the runtime.slurm
    worker settings (cores, memory, processes, python, local_directory, gres) and no SLURM.

    Its launcher splits the job script on whitespace and runs it without a shell: no prologue, no variables, no
    quoting, no spaces in paths. It reads the worker's stderr only until the worker registers (a worker that then
    logs more than a pipe holds, about 64 KiB, blocks), and gives up on a worker whose start-up log has a line
    containing 'error' (a path with that word is enough: the worker joins, but its job counts as failed and is
    never killed on close). Hence a testing aid, not a way to run grids.
    """
    from dask_jobqueue.local import LocalCluster
    from distributed import Client

    dask_at_warning()

    for name in ("python", "local_directory"):  # both appear in the worker's start-up log
        if "error" in str(getattr(params.slurm, name) or "").lower():
            raise ClipCacheError(f"runtime.slurm.{name} contains 'error', which jobqueue-local takes for a failed "
                                 "worker")
    target = params.target
    options = {"host": "127.0.0.1", **LOCAL_HTTP}
    with LocalCluster(**worker_kwargs(params.slurm), scheduler_options=options) as cluster, Client(cluster) as client:
        cluster.scale(jobs=target.workers)
        yield DaskEngine(client, target.name, gpu=gres_has_gpu(params.slurm.gres))

"""Where runs execute: here, one after another, or on dask.distributed workers. Never what they compute.

An engine maps a picklable top-level function over picklable items (a run = `fn(item)`, a pure function that
writes its own outputs atomically) and yields `(index, result)` as each finishes::

    params = cluster_params({"cluster": "local:2"})
    with open_engine(params) as engine:
        for index, result in engine.map_unordered(execute_run, runs, gpu=[run.needs_gpu for run in runs]):
            ...

`runtime.cluster` (params.yaml, untracked: changing it re-runs nothing) chooses the engine:

- `none` (default): in-process, sequential, in the items' order. Importing this package and using this engine
  import no dask; every other engine imports dask/distributed when it opens.
- `local:N`: `distributed.LocalCluster` with N worker processes on 127.0.0.1, `runtime.threads_per_worker`
  threads each, no dashboard. Long-lived workers import torch once and execute many runs.
- `cuda`: dask-cuda's `LocalCUDACluster`, one worker per visible GPU, each advertising the resource GPU=1
  (`pip install 'clip-feature-cache[cuda]'`).
- `slurm`: a scheduler in this process and `runtime.slurm.jobs` SLURM jobs from dask-jobqueue's `SLURMCluster`, one
  `dask worker` per job, built from `runtime.slurm` (partition, account, walltime, cores, memory, gres, processes,
  job_extra, python, local_directory, interface, prologue, log_directory). A gres naming a gpu ("gpu:1") adds
  `--gres` and gives each worker process the resource GPU=1. `slurm_job_script(params)` shows the batch script
  without submitting. Needs `sbatch` on PATH, and the scheduler must be reachable from the compute nodes
  (`runtime.slurm.interface`, e.g. ib0).
- `jobqueue-local:N`: a testing aid. dask-jobqueue's job machinery (the same worker command line as a SLURM job)
  with N jobs that are local subprocesses instead of sbatch jobs; the only way to exercise it without SLURM.
- a scheduler address (`tcp://host:8786` or `host:8786`): connect to a running `dask scheduler`; waits up to
  `runtime.worker_timeout` seconds for a first worker; GPU routing when, as a map starts, some worker (started
  with `--resources GPU=1`) advertises the GPU resource. Start the workers with
  `--preload-nanny pipeline.engine.nondaemon`, so that runs may start child processes (DataLoader workers).
  Closing the engine stops none of them.

`gpu[i]` True asks for a worker with the GPU resource when the engine has some (`has_gpu_workers`); otherwise the
item runs anywhere. On every dask engine a worker that dies mid-run loses nothing: the scheduler runs the item on
another worker, and gives up only when `distributed.scheduler.allowed-failures` + 1 workers (default 4) died
running it, which raises a ClipCacheError naming the item. An exception raised by `fn` propagates unchanged and
cancels the items not yet finished, as does leaving the loop early; leaving the `with` block closes the client and
whatever cluster it started, also on an exception or Ctrl-C.
"""

from pipeline.engine.base import Engine, InProcessEngine
from pipeline.engine.config import CLUSTER_KEYS, ClusterParams, SlurmParams, cluster_params
from pipeline.engine.jobqueue import slurm_job_script
from pipeline.engine.open import open_engine

__all__ = [
    "CLUSTER_KEYS", "ClusterParams", "Engine", "InProcessEngine", "SlurmParams", "cluster_params", "open_engine",
    "slurm_job_script",
]

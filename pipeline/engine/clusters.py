"""Engines on this machine's dask clusters (local:N, cuda) and on a running scheduler (an address).

dask and distributed are imported inside the functions, so that the in-process path never imports them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.engine.config import ClusterParams
from pipeline.engine.dask_engine import GPU, DaskEngine
from pipeline.errors import ClipCacheError

logger = logging.getLogger(__name__)

# Nanny-started worker processes are daemonic by default, and a daemonic process may not start children: a torch
# DataLoader with workers inside a run would fail with "daemonic processes are not allowed to have children".
NON_DAEMON = {"distributed.worker.daemon": False}
CUDA_INSTALL = "pip install 'clip-feature-cache[cuda]'"
# A scheduler serves HTTP (health, metrics) even without a dashboard, on port 8787 unless told otherwise: a free port.
LOCAL_HTTP = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}


@contextmanager
def local_engine(params: ClusterParams) -> Iterator[DaskEngine]:
    """`local:N`: N worker processes (with nannies) on 127.0.0.1, no dashboard, free ports only."""
    import dask
    from distributed import Client, LocalCluster

    target = params.target
    with (
        dask.config.set(NON_DAEMON),  # read by each nanny whenever it (re)starts its worker
        LocalCluster(
            n_workers=target.workers, threads_per_worker=params.threads_per_worker, processes=True,
            host="127.0.0.1", dashboard_address=None, scheduler_kwargs=LOCAL_HTTP,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield DaskEngine(client, target.name, gpu=False)


@contextmanager
def cuda_engine(params: ClusterParams) -> Iterator[DaskEngine]:
    """`cuda`: dask-cuda's LocalCUDACluster, one worker per visible GPU, each advertising the resource GPU=1."""
    LocalCUDACluster = _import_dask_cuda()
    count = visible_gpus()
    if count < 1:
        raise ClipCacheError("runtime.cluster 'cuda' needs a GPU, and none is visible here (CUDA_VISIBLE_DEVICES, "
                             "driver)")
    import dask
    from distributed import Client

    with (
        dask.config.set(NON_DAEMON),
        LocalCUDACluster(
            n_workers=count, threads_per_worker=params.threads_per_worker, resources=dict(GPU),
            host="127.0.0.1", dashboard_address=None, scheduler_kwargs=LOCAL_HTTP,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield DaskEngine(client, "cuda", gpu=True)


def _import_dask_cuda() -> Any:
    """dask_cuda.LocalCUDACluster, or the error that says how to install it."""
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        raise ClipCacheError(f"runtime.cluster 'cuda' needs dask-cuda, which is not installed: {CUDA_INSTALL}") from exc
    return LocalCUDACluster


def visible_gpus() -> int:
    """GPUs a worker could use: the entries of CUDA_VISIBLE_DEVICES when set, else the driver's count (0 if none)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([dev for dev in visible.split(",") if dev.strip() and not dev.strip().startswith("-")])
    try:
        from dask_cuda.utils import get_gpu_count

        return int(get_gpu_count())
    except Exception as exc:  # pynvml raises its own errors when there is no driver
        logger.debug("no GPU count from the driver: %s", exc)
        return 0


@contextmanager
def address_engine(params: ClusterParams) -> Iterator[DaskEngine]:
    """A scheduler address: connect, wait for a first worker; GPU runs are routed when a map starts and some
    worker then advertises GPU=1.

    The workers are not ours: closing the engine disconnects and cancels our runs, it stops nothing.
    """
    from distributed import Client

    address, timeout = params.target.address, params.worker_timeout
    try:
        client = Client(address, timeout=timeout)
    except OSError as exc:
        raise ClipCacheError(f"runtime.cluster: no dask scheduler answers at {address} ({exc})") from exc
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError as exc:
            raise ClipCacheError(
                f"runtime.cluster: no worker joined the scheduler at {address} within {timeout:g} s "
                "(runtime.worker_timeout)"
            ) from exc
        yield DaskEngine(client, address, gpu=None)

"""Engines on this machine's dask clusters (local:N, cuda) and on a running scheduler (an address).

dask and distributed are imported inside the functions, so that the in-process path never imports them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
def sigint_ignored() -> Iterator[None]:
    """While worker processes start: they inherit SIGINT ignored, so that a Ctrl-C in the terminal (sent to the whole
    process group) stops the driver only, which then closes them, instead of each printing its traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


QUIET_ON_CLOSE = ("distributed.nanny", "distributed.worker", "distributed.core", "distributed.batched",
                  "distributed.scheduler", "distributed.process")


def dask_at_warning() -> None:
    """distributed's own INFO lines (scheduler start, worker registrations) stay out of the console unless the
    user asked for debug logging (--verbose); its warnings and errors still show."""
    if not logging.getLogger("pipeline").isEnabledFor(logging.DEBUG):
        logging.getLogger("distributed").setLevel(logging.WARNING)


def quiet_cancellations() -> None:
    """Run on each worker: a run cancelled by the driver's close (after Ctrl-C) is not worth a warning there."""
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)


class QuietClose:
    """distributed's own close-time chatter ('Worker process still alive after 4.0 seconds, killing', connection
    resets) kept below ERROR while a cluster shuts down: `mute` just before, `restore` after."""

    def __init__(self) -> None:
        self.levels: dict[str, int] = {}

    def mute(self) -> None:
        for name in QUIET_ON_CLOSE:
            self.levels[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(logging.ERROR)

    def restore(self) -> None:
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def local_engine(params: ClusterParams) -> Iterator[DaskEngine]:
    """`local:N`: N worker processes (with nannies) on 127.0.0.1, no dashboard, free ports only; quiet on close."""
    import dask
    from distributed import Client, LocalCluster

    target = params.target
    dask_at_warning()  # after distributed's import has set its own levels, before the cluster speaks
    quiet = QuietClose()
    with ExitStack() as stack:
        stack.callback(quiet.restore)  # last out: distributed logs as before
        stack.enter_context(dask.config.set(NON_DAEMON))  # read by each nanny whenever it (re)starts its worker
        with sigint_ignored():
            cluster = stack.enter_context(LocalCluster(
                n_workers=target.workers, threads_per_worker=params.threads_per_worker, processes=True,
                host="127.0.0.1", dashboard_address=None, scheduler_kwargs=LOCAL_HTTP))
        client = stack.enter_context(Client(cluster))
        client.run(quiet_cancellations)
        stack.callback(quiet.mute)  # first out: before the client and the cluster close
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

    dask_at_warning()
    quiet = QuietClose()
    with ExitStack() as stack:
        stack.callback(quiet.restore)
        stack.enter_context(dask.config.set(NON_DAEMON))
        with sigint_ignored():
            cluster = stack.enter_context(LocalCUDACluster(
                n_workers=count, threads_per_worker=params.threads_per_worker, resources=dict(GPU),
                host="127.0.0.1", dashboard_address=None, scheduler_kwargs=LOCAL_HTTP))
        client = stack.enter_context(Client(cluster))
        client.run(quiet_cancellations)
        stack.callback(quiet.mute)
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

    dask_at_warning()
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

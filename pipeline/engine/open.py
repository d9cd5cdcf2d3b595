"""`open_engine`: the engine named by `runtime.cluster`, open for the duration of a `with` block."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from pipeline.engine.base import Engine, InProcessEngine
from pipeline.engine.clusters import address_engine, cuda_engine, local_engine
from pipeline.engine.config import ClusterParams
from pipeline.engine.jobqueue import jobqueue_local_engine, slurm_engine

logger = logging.getLogger(__name__)


@contextmanager
def _in_process(params: ClusterParams) -> Iterator[Engine]:
    """`none`: nothing to start or stop."""
    yield InProcessEngine()


OPENERS: dict[str, Callable[[ClusterParams], AbstractContextManager[Engine]]] = {
    "none": _in_process,
    "local": local_engine,
    "cuda": cuda_engine,
    "slurm": slurm_engine,
    "jobqueue-local": jobqueue_local_engine,
    "address": address_engine,
}


@contextmanager
def open_engine(params: ClusterParams) -> Iterator[Engine]:
    """Start (or connect to) the engine; on exit, also on an exception or Ctrl-C, cancel what is still queued and
    stop what was started here (clusters, jobs), disconnecting from a scheduler address.

    Raises:
        ClipCacheError: the engine cannot start here (no dask-cuda or GPU, no sbatch, no scheduler or worker).
    """
    with OPENERS[params.target.kind](params) as engine:
        logger.info("engine %s open (GPU workers: %s)", engine.name, engine.has_gpu_workers)
        yield engine
    logger.info("engine %s closed", engine.name)

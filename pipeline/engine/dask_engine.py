"""The dask.distributed engine: submit every item, yield results as they finish, cancel the rest on exit.

A worker that dies mid-run loses nothing: the scheduler hands the run to another worker. It gives up on a run only
after `distributed.scheduler.allowed-failures` + 1 workers (default 3 + 1) died while it was assigned to them
(running, or queued behind a running one: a bystander counts too); that surfaces here as a ClipCacheError naming
the item (KilledWorker as its cause). An exception raised by `fn` itself propagates unchanged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.engine.base import R, T, check_flags
from pipeline.errors import ClipCacheError

if TYPE_CHECKING:
    from distributed import Client, Future

logger = logging.getLogger(__name__)

GPU = {"GPU": 1}  # the dask resource a GPU run asks for; GPU workers advertise it (`--resources GPU=1`)


class DaskEngine:
    """Runs items on the workers of a connected `distributed.Client`."""

    def __init__(self, client: Client, name: str, gpu: bool | None) -> None:
        """Wrap a connected client (its owner closes it); `gpu` None: ask the scheduler's workers each time."""
        self.client = client
        self.name = name
        self._gpu = gpu
        self._abandoned = False  # interrupted: leave the futures to the engine's close, no cancel per item

    def abandon(self) -> None:
        """See `Engine.abandon`: a cancel at this point makes each busy worker log a warning and races the close."""
        self._abandoned = True

    @property
    def has_gpu_workers(self) -> bool:
        """Whether GPU items are routed to workers with the GPU resource (fixed by the cluster, or the workers now)."""
        return gpu_workers(self.client) if self._gpu is None else self._gpu

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T], gpu: Sequence[bool]) -> Iterator[tuple[int, R]]:
        """Submit every item now; yield (index, fn(item)) as each finishes. See `Engine.map_unordered`."""
        check_flags(items, gpu)
        pending = self._submit(fn, items, gpu)
        return self._collect(pending, items)

    def _submit(self, fn: Callable[[T], R], items: Sequence[T], gpu: Sequence[bool]) -> dict[str, tuple[int, Future]]:
        """Futures by key; keys are unique per call, so one client can map the same items twice."""
        token = uuid.uuid4().hex[:8]
        routed = self.has_gpu_workers
        pending: dict[str, tuple[int, Future]] = {}
        for index, item in enumerate(items):
            resources = GPU if gpu[index] and routed else None
            key = f"{getattr(fn, '__name__', 'fn')}-{index}-{token}"
            pending[key] = (index, self.client.submit(fn, item, pure=False, key=key, resources=resources))
        logger.info("engine %s: %d items submitted (GPU routing: %s)", self.name, len(pending), routed)
        return pending

    def _collect(self, pending: dict[str, tuple[int, Future]], items: Sequence[T]) -> Iterator[tuple[int, Any]]:
        """Yield results as futures finish; cancel what is left when the caller stops early or an item fails."""
        from distributed import as_completed

        try:
            for future in as_completed([future for _, future in pending.values()]):
                index, _ = pending.pop(future.key)
                yield index, _result(future, index, items[index])
        finally:
            if pending and not self._abandoned:
                logger.info("engine %s: cancelling %d unfinished items", self.name, len(pending))
                self.client.cancel([future for _, future in pending.values()])


def _result(future: Future, index: int, item: object) -> Any:
    """The future's value; a run given up by the scheduler (KilledWorker) becomes a ClipCacheError naming it."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        deaths, allowed = exc.allowed_failures + 1, exc.allowed_failures
        raise ClipCacheError(
            f"item {index} ({item!r}) was given up: {deaths} worker(s) died while it was running or queued on them "
            f"(distributed.scheduler.allowed-failures = {allowed}), the last one {exc.last_worker.address}. "
            "A run that kills its worker usually ran out of memory or crashed in native code; see the worker logs."
        ) from exc


def gpu_workers(client: Client) -> bool:
    """Whether any worker connected to the client's scheduler advertises the GPU resource."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return any(info.get("resources", {}).get("GPU", 0) > 0 for info in workers)

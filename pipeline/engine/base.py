"""The contract every engine keeps, and the in-process engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    """Executes `fn(item)` for many items somewhere; never changes what `fn` computes."""

    name: str  # 'in-process', 'local:2', 'cuda', 'slurm', 'jobqueue-local:1', 'tcp://host:port'

    @property
    def has_gpu_workers(self) -> bool:
        """Some worker advertises the dask resource GPU (read-only: an engine may ask its workers each time)."""
        ...

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T], gpu: Sequence[bool]) -> Iterator[tuple[int, R]]:
        """Yield (index of item, fn(item)) as each finishes.

        Args:
            fn: a picklable top-level function.
            items: picklable arguments, one call each.
            gpu: gpu[i] True: item i should run on a worker with a GPU (dask resources {'GPU': 1}) when the
                engine has GPU workers; otherwise anywhere.
        """
        ...

    def abandon(self) -> None:
        """The caller was interrupted (Ctrl-C): stop following its items without cancelling them one by one (closing
        the engine stops the workers it started; a run a worker finishes meanwhile is kept)."""
        ...


def check_flags(items: Sequence[object], gpu: Sequence[bool]) -> None:
    """Refuse a `gpu` sequence that does not pair up with `items` (a programming error, not a user's)."""
    if len(gpu) != len(items):
        raise ValueError(f"map_unordered got {len(items)} items but {len(gpu)} gpu flags")


class InProcessEngine:
    """`runtime.cluster: none`: each item runs here, one after another, in order. Imports no dask."""

    name = "in-process"
    has_gpu_workers = False  # no workers: a run picks its own device (runtime.device)

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T], gpu: Sequence[bool]) -> Iterator[tuple[int, R]]:
        """Yield (index, fn(item)) in the items' order; an exception from `fn` propagates as is."""
        check_flags(items, gpu)
        return ((index, fn(item)) for index, item in enumerate(items))

    def abandon(self) -> None:
        """Nothing runs elsewhere: the interrupted item stopped with this process's call stack."""

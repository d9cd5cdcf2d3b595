"""One DataLoader for every split of a (data set, model) pair: its decoding workers start once and stay (persistent,
prefetching), instead of starting again for each of the 30-odd split files of the papers' protocol.

The loader reads any split of the pair: its items are (split index, position) pairs, and the batches of the split
being encoded are set before each pass, in the fixed order the shards need (the bytes a serial encode writes). With
`decode: gpu` the workers read bytes only (pipeline/encode/jpeg.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.data.decode import ImageReader, collate, one_thread_worker
from pipeline.encode.jpeg import BytesReader, collate_bytes

PREFETCH = 4  # batches each worker decodes ahead


class SplitItems(Dataset[dict[str, Any]]):
    """The images of every split of a pair: item (split index, position in that split)."""

    def __init__(self, readers: Sequence[ImageReader | BytesReader]) -> None:
        self.readers = list(readers)

    def __len__(self) -> int:
        return sum(len(r) for r in self.readers)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        split, pos = key
        return self.readers[split][pos]


class Batches(Sampler[list[tuple[int, int]]]):
    """The batches of the pass to come, set by `PairLoader.batches` (the sampler is read in the driver's process)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class PairLoader:
    """A persistent, prefetching DataLoader over the readers of every split of a pair."""

    def __init__(self, readers: Sequence[ImageReader], workers: int, on_device: bool, pin_memory: bool) -> None:
        self.readers = list(readers)
        self.sampler = Batches()
        items = SplitItems([BytesReader(r) for r in readers] if on_device else readers)
        self.loader = DataLoader(items, batch_sampler=self.sampler, num_workers=workers,
                                 collate_fn=collate_bytes if on_device else collate,
                                 pin_memory=pin_memory and not on_device, persistent_workers=workers > 0,
                                 prefetch_factor=PREFETCH if workers else None,
                                 worker_init_fn=one_thread_worker if workers else None)

    def batches(self, split: int, batches: list[list[int]]) -> Iterator[Any]:
        """One pass over these batches (positions) of split `split`."""
        self.sampler.batches = [[(split, pos) for pos in batch] for batch in batches]
        return iter(self.loader)

    def close(self) -> None:
        """Stop the workers now rather than when the loader is collected."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None  # DataLoader keeps its persistent iterator (and workers) here


def pin(device: torch.device) -> bool:
    """Pinned host memory where the model runs on CUDA (the copies to it can then overlap)."""
    return device.type == "cuda"

"""A lazily opened, picklable view of one HDF5 dataset (safe in DataLoader workers and dask tasks).

Contiguous uncompressed datasets (our default) are read through a read-only numpy memmap at the dataset's byte
offset: the file is immutable once complete, and this reads random rows at raw-file speed. A dataset larger than
half the memory this process can keep cached (MemAvailable, or its memory cgroup's limit) is mapped MADV_RANDOM and
each read first asks for exactly the pages it touches (pipeline.store.rows.prefetch), so random rows of a file many
times larger than memory are read once, without a read-ahead window around each; a smaller one keeps the kernel's
read-ahead (it ends up cached whole, and small rows read fastest that way). Where the process may not map the file
(an address-space cap), the same rows are read with pread (PreadArray). Any other layout
(chunked, compressed) falls back to h5py with sorted indices.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.store.rows import PreadArray, memory_budget, plan, prefetch


class LazyArray:
    """Array-like over `path[name]`: shape, dtype, ndim and numpy-style indexing; opened per process on use."""

    def __init__(self, path: Path, name: str, shape: tuple[int, ...], dtype: np.dtype, offset: int | None) -> None:
        self.path, self.name, self.shape, self.dtype, self.offset = Path(path), name, shape, np.dtype(dtype), offset
        self.ndim = len(shape)
        self._pid: int | None = None
        self._source: Any = None
        self._exact = False  # ask for exactly the pages each read touches (a dataset larger than memory)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pid"], state["_source"], state["_exact"] = None, None, False  # handles never cross a process boundary
        return state

    def __len__(self) -> int:
        return self.shape[0]

    def _open(self) -> Any:
        if self._source is None or self._pid != os.getpid():
            if self.offset is not None:
                self._exact = self.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64)) > memory_budget() // 2
                self._source = open_contiguous(self.path, self.offset, self.shape, self.dtype, self._exact)
            else:
                self._source = h5py.File(self.path, "r")[self.name]
            self._pid = os.getpid()
        return self._source

    def __getitem__(self, index: Any) -> np.ndarray:
        source = self._open()
        if isinstance(source, np.memmap):
            found = plan(self.shape, self.dtype.itemsize, index) if self._exact else None
            mapped = mapping_of(source)
            if found is not None and mapped is not None and self.offset is not None:  # a memmap has an offset
                prefetch(mapped, self.offset % mmap.ALLOCATIONGRANULARITY, found.ranges)
            out = source[index]  # a slice is a view of the map: copy it so nothing holds the file or is read-only
            return np.array(out) if isinstance(out, np.memmap) else out  # fancy indexing already copied
        if isinstance(source, PreadArray):
            return source[index]
        return read_h5(source, index)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows in any order (duplicates allowed), read in ascending order: [len(rows), ...]."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size < 2 or bool(np.all(rows[1:] > rows[:-1])):  # already ascending and distinct: one gather
            return self[rows]
        unique, inverse = np.unique(rows, return_inverse=True)
        return self[unique][inverse]


def open_contiguous(path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype,
                    exact: bool) -> np.memmap | PreadArray:
    """A read-only map (`exact`: opened for random access, read-ahead only where `prefetch` asks), or pread reads
    where this process may not map the file."""
    try:
        source = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    except (OSError, ValueError, MemoryError):  # ENOMEM under an address-space cap (ulimit -v)
        return PreadArray(path, offset, shape, dtype)
    mapped = mapping_of(source)
    if exact and mapped is not None:
        mapped.madvise(mmap.MADV_RANDOM)  # read-ahead only where `prefetch` asks for it
    return source


def mapping_of(source: np.memmap) -> mmap.mmap | None:
    """The `mmap` under a numpy memmap (numpy's `_mmap`, which its type stubs do not declare); None for an empty map."""
    mapped: mmap.mmap | None = getattr(source, "_mmap", None)
    return mapped


def read_h5(dataset: h5py.Dataset, index: Any) -> np.ndarray:
    """h5py read; a row-index array is sorted and de-duplicated first, as h5py requires."""
    if isinstance(index, np.ndarray) and index.ndim == 1 and index.dtype.kind in "iu":
        unique, inverse = np.unique(index, return_inverse=True)
        return dataset[unique][inverse]
    return dataset[index]


def contiguous_offset(dataset: h5py.Dataset) -> int | None:
    """Byte offset of a contiguous, uncompressed, numeric dataset; None if it must be read through h5py."""
    if dataset.chunks is not None or dataset.compression is not None or dataset.dtype.kind not in "fiub":
        return None
    if dataset.size == 0:
        return None
    return dataset.id.get_offset()

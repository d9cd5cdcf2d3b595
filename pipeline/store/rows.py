"""Which bytes of a contiguous dataset an index reads, so that a read fetches those bytes and no others.

A contiguous C-order array of shape S is, for any leading integer indices i_0..i_{p-1}, a run of S[p] records of
prod(S[p+1:]) items each. An index (leading ints, then an int, slice or sorted 1-D int array on axis p, then
anything) therefore reads a set of records; consecutive records coalesce into one byte range. Two readers use it:
- `prefetch` tells a memory map exactly which pages will be touched (MADV_WILLNEED) on a map opened MADV_RANDOM, so
  random rows of a file larger than memory are read once, without read-ahead windows around each fault;
- `PreadArray` reads the ranges with pread into the result, for processes that may not map the file (an
  address-space cap).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Plan:
    """The records an index reads: byte ranges (start, length) relative to the array's first byte, the shape of the
    records read [k, *S[p+1:]], whether axis p was an integer (squeezed), and the index left for the result."""

    ranges: list[tuple[int, int]]
    shape: tuple[int, ...]
    squeeze: bool
    rest: tuple[Any, ...]


def plan(shape: tuple[int, ...], itemsize: int, index: Any) -> Plan | None:
    """The records `index` reads, or None for an index this plan does not cover (then read the whole array)."""
    index = index if isinstance(index, tuple) else (index,)
    if len(index) == 0 or (len(index) == 1 and index[0] is Ellipsis):
        index = (slice(None),)
    lead: list[int] = []
    position = 0
    while position < len(index) - 1 and isinstance(index[position], (int, np.integer)) and position < len(shape) - 1:
        lead.append(int(index[position]) % shape[position])
        position += 1
    if position >= len(shape):
        return None
    item, rest = index[position], tuple(index[position + 1 :])
    size = shape[position]
    if isinstance(item, (int, np.integer)):
        records, squeeze = np.array([int(item) % size]), True
    elif isinstance(item, slice):
        start, stop, step = item.indices(size)
        records, squeeze = np.arange(start, stop, step), False
    elif isinstance(item, np.ndarray) and item.ndim == 1 and item.dtype.kind in "iu":
        records, squeeze = np.asarray(item, np.int64) % max(size, 1), False
        if records.size > 1 and not bool(np.all(records[1:] > records[:-1])):
            return None  # callers sort and de-duplicate first (LazyArray.take)
    else:
        return None
    record = int(np.prod(shape[position + 1 :], dtype=np.int64)) * itemsize  # bytes of one record
    base = 0
    for axis, value in enumerate(lead):  # the first byte of the sub-array at the leading ints
        base += value * int(np.prod(shape[axis + 1 :], dtype=np.int64)) * itemsize
    ranges: list[tuple[int, int]] = []
    for run in np.split(records, np.flatnonzero(np.diff(records) != 1) + 1) if records.size else []:
        ranges.append((base + int(run[0]) * record, int(run.size) * record))
    return Plan(ranges, (int(records.size), *shape[position + 1 :]), squeeze, rest)


PAGE = mmap.PAGESIZE


def memory_budget() -> int:
    """Bytes of page cache this process can hope to keep: the smallest of MemAvailable, its memory cgroup's limit (v2
    memory.max or v1 memory.limit_in_bytes) and $CLIPCACHE_MEMORY_BUDGET (bytes) when set."""
    budget = int(os.environ.get("CLIPCACHE_MEMORY_BUDGET") or 1 << 62)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                budget = min(budget, int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, group = line.split(":", 2)
            candidates = ([Path("/sys/fs/cgroup") / group.lstrip("/") / "memory.max"] if controllers == "" else
                          [Path("/sys/fs/cgroup/memory") / group.lstrip("/") / "memory.limit_in_bytes"]
                          if "memory" in controllers.split(",") else [])
            for limit in candidates:
                text = limit.read_text().strip() if limit.is_file() else "max"
                if text != "max":
                    budget = min(budget, int(text))
    except (OSError, ValueError):
        pass
    return budget


def prefetch(view: mmap.mmap, data_start: int, ranges: list[tuple[int, int]]) -> None:
    """Ask the kernel to read exactly these byte ranges of the array that starts at `data_start` in the map."""
    for start, length in ranges:
        if length <= 0:
            continue
        first = (data_start + start) // PAGE * PAGE
        view.madvise(mmap.MADV_WILLNEED, first, data_start + start + length - first)


class PreadArray:
    """Reads of a contiguous array in a file with pread: exactly the records an index needs, no memory map."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, np.dtype(dtype)
        self.fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead around random rows

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # closed already, or __init__ failed before opening
            os.close(self.fd)

    def __getitem__(self, index: Any) -> np.ndarray:
        found = plan(self.shape, self.dtype.itemsize, index)
        if found is not None:
            return self.read(found)
        whole = plan(self.shape, self.dtype.itemsize, ())  # every record: covered for any array with a row axis
        if whole is None:
            raise ValueError(f"{str(self.path)!r}: a 0-d array has no records to read")
        return self.read(whole)[index]  # an index the plan does not cover: read the whole array, then index it

    def read(self, found: Plan) -> np.ndarray:
        out = np.empty(found.shape, dtype=self.dtype)  # [k, *record shape]
        buffer = out.reshape(-1).view(np.uint8).data  # the records' bytes, in order (a memoryview)
        at = 0
        for start, length in found.ranges:
            done = 0
            while done < length:
                got = os.preadv(self.fd, [buffer[at + done : at + length]], self.offset + start + done)
                if got <= 0:
                    raise OSError(f"{self.path}: short read at byte {self.offset + start + done}")
                done += got
            at += length
        return apply_rest(out, found)


def apply_rest(records: np.ndarray, found: Plan) -> np.ndarray:
    """The records read [k, ...] indexed by what the plan left over (on the axes after the record axis)."""
    result = records[0] if found.squeeze else records
    if not found.rest:
        return result
    return result[found.rest] if found.squeeze else result[(slice(None), *found.rest)]

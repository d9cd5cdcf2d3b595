"""Reads fetch exactly the records an index needs: the byte ranges of `plan`, a memory map opened for random access
that is told which pages to read, and pread where the process may not map the file (an address-space cap)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pipeline.store.lazy import LazyArray
from pipeline.store.rows import PreadArray, plan

OFFSET = 100  # the array starts inside the file, as an HDF5 dataset does

INDEXES = [(), (Ellipsis,), 3, slice(5, 20), slice(0, 50, 7), np.array([0, 1, 3]),
           (2, np.array([0, 4, 5, 49])), (1, slice(3, 9), 2), (slice(0, 2), slice(None), 1), (0, 5),
           (np.array([0, 2]), 3), (1, np.array([3, 1])), (np.array([1, 1, 2]),)]


@pytest.fixture
def stored(tmp_path: Path) -> tuple[np.ndarray, Path]:
    array = np.random.default_rng(0).standard_normal((4, 50, 3, 5)).astype(np.float32)  # [V, N, ...]
    path = tmp_path / "array.bin"
    path.write_bytes(b"\0" * OFFSET + array.tobytes())
    return array, path


@pytest.mark.parametrize("index", INDEXES, ids=str)
@pytest.mark.parametrize("budget", ["1", ""], ids=["exact-pages", "read-ahead"])
def test_every_reader_returns_what_numpy_returns(stored, index, budget: str, monkeypatch) -> None:
    """pread, and the map in both modes: exact pages (a dataset larger than the memory budget) or read-ahead."""
    array, path = stored
    monkeypatch.setenv("CLIPCACHE_MEMORY_BUDGET", budget)
    np.testing.assert_array_equal(PreadArray(path, OFFSET, array.shape, array.dtype)[index], array[index])
    lazy = LazyArray(path, "x", array.shape, array.dtype, OFFSET)
    np.testing.assert_array_equal(lazy[index], array[index])
    assert lazy._exact == (budget == "1")


def unsorted(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) and bool(np.any(np.diff(i) <= 0)) for i in parts)


@pytest.mark.parametrize("index", [i for i in INDEXES if unsorted(i)], ids=str)
def test_unsorted_or_repeated_rows_are_left_to_the_caller(stored, index) -> None:
    array, _ = stored
    assert plan(array.shape, array.itemsize, index) is None, "LazyArray.take sorts and de-duplicates them first"


@pytest.mark.parametrize("index", [i for i in INDEXES if not unsorted(i)], ids=str)
def test_the_plan_covers_exactly_the_bytes_of_the_selected_elements(stored, index) -> None:
    array, _ = stored
    found = plan(array.shape, array.itemsize, index)
    assert found is not None
    flat = np.arange(array.size).reshape(array.shape)  # each element's position in the file, in items
    wanted = np.unique(flat[index])
    covered = np.concatenate([np.arange(s, s + n) for s, n in found.ranges]) // array.itemsize if found.ranges \
        else np.array([], np.int64)
    covered = np.unique(covered)
    assert set(wanted) <= set(covered), "every element read is inside the ranges"
    if found.rest == ():
        assert np.array_equal(covered, wanted), "and no other byte is read"
    assert all(a + n < b for (a, n), (b, _) in itertools.pairwise(found.ranges)), "adjacent records coalesce"


def test_rows_are_read_under_an_address_space_cap_too_small_to_map_the_file(tmp_path: Path) -> None:
    """A 3 GiB file (sparse but for a few rows) in a process whose address space is capped 1 GiB above what it
    uses: the map fails, pread delivers the same rows."""
    script = textwrap.dedent(f"""
        import resource, numpy as np
        from pathlib import Path
        from pipeline.store.lazy import LazyArray
        from pipeline.store.rows import PreadArray
        path, rows, dim = Path({str(tmp_path / 'big.bin')!r}), 3 * 2**30 // 4096, 1024
        with path.open('wb') as f:
            f.truncate(rows * dim * 4)
            for r in (7, 8, rows - 1):
                f.seek(r * dim * 4); f.write(np.full(dim, r, np.float32).tobytes())
        used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, resource.RLIM_INFINITY))
        array = LazyArray(path, 'x', (rows, dim), np.float32, 0)
        got = array.take(np.array([rows - 1, 7, 8, 3]))
        assert isinstance(array._source, PreadArray), type(array._source)
        assert got[:, 0].tolist() == [rows - 1, 7, 8, 0] and np.all(got == got[:, :1])
        print('ok')
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

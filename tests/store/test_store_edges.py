"""Edges of the store that the encode and read paths meet rarely: string datasets read lazily, a file without its
build record, a dataset whose bytes run past the end of a file whose end-of-file address was cut to match, the
failpoints' default count, and the page-cache budget against the kernel's own figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.errors import ClipCacheError
from pipeline.store import FeatureSplit
from pipeline.store.provenance import ATTR_PROVENANCE, read_attrs
from pipeline.store.reader import dataset_specs
from pipeline.store.rows import memory_budget

EOF_ADDRESS = 40  # byte offset of the end-of-file address in a version-0 superblock (h5py's default libver)


def test_string_datasets_are_read_through_the_lazy_view_too(encoded) -> None:
    _, report = encoded
    split = FeatureSplit(report.folder / "test.h5")
    ids = [s.decode() for s in split.arrays["image_id"][:]]  # h5py's reader: a string dataset has no raw offset
    assert ids == split.image_ids and len(ids) == split.n and all(i.endswith(".jpg") for i in ids)


def test_a_file_without_a_build_record_reads_as_an_empty_one(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "x.h5", "w") as handle:
        handle.attrs[ATTR_PROVENANCE] = '{"a": 1}'
    with h5py.File(tmp_path / "x.h5", "r") as handle:
        assert read_attrs(handle, tmp_path / "x.h5") == ({"a": 1}, {})


def test_a_dataset_running_past_the_end_of_its_file_is_one_line(tmp_path: Path) -> None:
    """The file is cut 400 bytes short and its superblock's end-of-file address cut to match, so HDF5 opens the
    file (its own check compares the two) but refuses the dataset whose extent passes that address: a KeyError
    from h5py, which was a traceback; now one line naming the file."""
    path = tmp_path / "cut.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("global", data=np.arange(1000, dtype=np.float32))
    size = path.stat().st_size
    with path.open("r+b") as raw:
        raw.seek(EOF_ADDRESS)
        assert int.from_bytes(raw.read(8), "little") == size  # the layout this test assumes
        raw.seek(EOF_ADDRESS)
        raw.write((size - 400).to_bytes(8, "little"))
        raw.truncate(size - 400)
    with h5py.File(path, "r") as handle, pytest.raises(ClipCacheError) as refused:
        dataset_specs(handle, path)
    assert str(refused.value) == (f"cache file {str(path)!r} is corrupt: Unable to synchronously open object "
                                  "(invalid dataset size, likely file corruption)")


@pytest.mark.parametrize(("wanted", "passages", "killed"), [("spot", 1, True), ("spot@2", 1, False),
                                                             ("spot@2", 2, True), ("elsewhere", 3, False)])
def test_a_failpoint_kills_at_its_nth_passage_the_first_by_default(wanted: str, passages: int, killed: bool) -> None:
    code = ("from pipeline.store.failpoints import failpoint\n"
            f"for _ in range({passages}):\n    failpoint('spot')\nprint('alive')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CLIPCACHE_FAILPOINT": wanted})
    assert (done.returncode, done.stdout.strip()) == ((-9, "") if killed else (0, "alive")), done.stderr


def test_the_memory_budget_is_at_most_what_the_kernel_says_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIPCACHE_MEMORY_BUDGET", raising=False)
    available = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemAvailable:"))
    assert 0 < memory_budget() <= 1.5 * available  # MemAvailable moves between the two reads, not by half
    monkeypatch.setenv("CLIPCACHE_MEMORY_BUDGET", "12345")
    assert memory_budget() == 12345

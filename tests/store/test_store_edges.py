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


def test_a_failpoint_counts_its_passages_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rule seen from inside: the kill is recorded instead of sent (the subprocess test above sends it)."""
    from pipeline.store import failpoints

    sent: list[int] = []
    monkeypatch.setattr(failpoints.os, "kill", lambda pid, sig: sent.append(sig))
    monkeypatch.setattr(failpoints, "_SEEN", {})
    monkeypatch.setenv("CLIPCACHE_FAILPOINT", "spot")
    failpoints.failpoint("spot")
    assert sent == [9]
    monkeypatch.setenv("CLIPCACHE_FAILPOINT", "again@2")
    failpoints.failpoint("again")
    assert sent == [9]
    failpoints.failpoint("again")
    assert sent == [9, 9]


def test_a_short_read_names_the_byte_it_stopped_at(tmp_path: Path) -> None:
    from pipeline.store.rows import PreadArray

    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 16 + np.arange(6, dtype=np.float32).tobytes())  # a header, then 3 of 4 records of 2
    array = PreadArray(path, 16, (4, 2), np.dtype(np.float32))
    np.testing.assert_array_equal(array[np.array([0, 2])], [[0, 1], [4, 5]])
    with pytest.raises(OSError) as short:
        array[np.array([3])]
    assert str(short.value) == f"{path}: short read at byte 40"  # 16 + 3 records of 8 bytes


def test_a_missing_provenance_field_is_named_absent(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pipeline.store.together import check_together

    first = SimpleNamespace(path=tmp_path / "a.h5", provenance={"schema_version": 3, "dataset": {"name": "x"}})
    other = SimpleNamespace(path=tmp_path / "b.h5", provenance={"schema_version": 3, "dataset": {"name": "x"},
                                                                 "encoder": {"model": "m"}})
    with pytest.raises(ClipCacheError) as refused:
        check_together(first, other)
    assert str(refused.value).endswith("do not belong together: encoder is '<absent>' in the first, {'model': 'm'} in "
                                       "the second")


def test_verify_lists_final_files_not_shards_or_temporaries(encoded, tmp_path: Path) -> None:
    import shutil

    from pipeline.store.verify import verify_path

    folder = tmp_path / "cache"
    shutil.copytree(encoded[1].folder, folder)
    finals = sorted(str(p) for p in folder.rglob("*.h5"))
    (folder / "test.h5.parts").mkdir()
    shutil.copy(folder / "test.h5", folder / "test.h5.parts" / "shard-00000000-00000004.h5")
    shutil.copy(folder / "test.h5", folder / "test.h5.tmp-123-abc.h5")
    entries = verify_path(folder)
    assert sorted(e["path"] for e in entries) == finals and all(e["status"].startswith("ok") for e in entries)


def test_non_finite_features_are_refused_naming_the_dataset_and_items(tmp_path: Path) -> None:
    from pipeline.store.writer import Shard, SplitWriter

    writer = SplitWriter(tmp_path / "train.h5", {"a": 1}, {}, 8, 4)
    bad = np.ones((4, 3), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ClipCacheError) as refused:
        writer.write_shard(Shard(4, 8), {"labels": np.zeros(4, np.int64), "global": bad}, [])
    assert str(refused.value) == f"{tmp_path / 'train.h5'}: non-finite values in 'global' for items 4-8"
    assert not writer.parts.exists() or not any(writer.parts.iterdir())  # nothing was written

"""Every dataset carries a checksum written when its file is finalised and checked before its data is trusted:
flipped bytes inside the data are refused by name (file and dataset) everywhere, `verify` reads everything again,
and `encode --repair` rebuilds the damaged file bitwise. Real encodes of a tiny model, real byte flips."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import ClipCacheError
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.integrity import ATTR_CHECKSUMS, memo_file
from tests.helpers import encode_section, write_params

RUNTIME = {"workers": 0, "batch_size": 8, "shard_images": 4}


@pytest.fixture
def cache(image_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(params, cache folder) of a finished tiny encode."""
    params = write_params(tmp_path / "params.yaml", encode_section(image_root, "vit", tmp_path / "cache"), RUNTIME)
    assert main(["encode", "--params", str(params)]) == 0
    return params, next((tmp_path / "cache").rglob("test.h5")).parent


def flip(path: Path, dataset: str, length: int = 2048) -> None:
    """Invert `length` bytes inside a dataset's data, keeping the file's size and modification time (bit rot)."""
    with h5py.File(path, "r") as handle:
        offset, size = handle[dataset].id.get_offset(), handle[dataset].id.get_storage_size()
    stat = path.stat()
    with path.open("r+b") as raw:
        raw.seek(offset + max(0, size // 2 - length // 2))
        block = raw.read(min(length, size))
        raw.seek(offset + max(0, size // 2 - length // 2))
        raw.write(bytes(255 - b for b in block))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # a touched file: its memo entry no longer applies


def datasets(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as handle:
        out: dict[str, np.ndarray] = {}
        handle.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return out


def test_every_dataset_has_its_checksum(cache) -> None:
    _, folder = cache
    for path in [folder / "test.h5", folder / "text.h5", folder / "k2-s1" / "train.h5"]:
        with h5py.File(path, "r") as handle:
            visited: list[str] = []
            handle.visit(visited.append)
            names = [n for n in visited if isinstance(handle[n], h5py.Dataset)]
            stored = json.loads(handle.attrs[ATTR_CHECKSUMS])
        assert sorted(stored) == sorted(names) and all(v.startswith("xxh3_64:") for v in stored.values())


def test_flipped_data_is_refused_everywhere_by_file_and_dataset_then_repaired(cache, capsys) -> None:
    params, folder = cache
    test = folder / "test.h5"
    before = datasets(test)
    flip(test, "spatial")
    with pytest.raises(ClipCacheError, match=r"test\.h5' is damaged: dataset 'spatial': its bytes do not match"):
        FeatureSplit(test)
    capsys.readouterr()
    assert main(["inspect", str(folder)]) == 1
    assert "test.h5: damaged (" in capsys.readouterr().out
    assert main(["verify", str(folder)]) == 1
    out = capsys.readouterr()
    assert "dataset 'spatial'" in out.err and "3 of 4 verified whole" in out.out
    assert main(["encode", "--params", str(params)]) == 0, "without --repair a complete file is not read in full"
    assert main(["encode", "--params", str(params), "--repair"]) == 0
    after = datasets(test)
    assert sorted(after) == sorted(before) and all(np.array_equal(after[k], before[k]) for k in before)
    assert main(["verify", str(folder)]) == 0


def test_a_verified_file_is_not_read_again_until_it_changes_but_verify_always_reads(cache) -> None:
    _, folder = cache
    text = folder / "text.h5"
    TextFeatures(text)
    memo = json.loads(memo_file().read_text())
    assert list(memo[str(text.resolve())][:2]) == [text.stat().st_size, text.stat().st_mtime_ns]
    stat = text.stat()
    flip(text, "text/coop/per_template", 64)
    os.utime(text, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # damage that leaves size and time as they were
    TextFeatures(text)  # trusted: verified before at this size, time and fingerprint (no 100 GB re-read per open)
    assert main(["verify", str(text)]) == 1  # verify reads it again


@pytest.mark.parametrize(("edit", "says"), [
    (lambda h: h.attrs.__delitem__(ATTR_CHECKSUMS), "records no checksums"),
    (lambda h: h.attrs.__setitem__("schema_version", 1), "has schema version 1, this code reads 2"),
    (lambda h: h.attrs.__setitem__(ATTR_CHECKSUMS, json.dumps({"labels": "xxh3_64:0"})), "dataset 'global': it has no"),
])
def test_files_without_or_with_other_checksums_are_refused(cache, tmp_path: Path, edit, says: str) -> None:
    _, folder = cache
    path = tmp_path / "copy.h5"
    shutil.copy(folder / "test.h5", path)
    with h5py.File(path, "r+") as handle:
        edit(handle)
    with pytest.raises(ClipCacheError, match=says):
        FeatureSplit(path)

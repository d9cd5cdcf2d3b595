"""Resumable writer of one split file: rows go into atomic shards, then one contiguous file replaces them.

Layout on disk while encoding: `<split>.h5.parts/shard-<start>-<stop>.h5`, one per range of input items, each
stamped complete with the split's fingerprint. A rerun skips complete shards of the same fingerprint and
re-encodes the rest in the same batches, so the result is identical to an uninterrupted run. When all shards
exist they are copied into `<split>.h5` (atomic) and the parts folder is removed.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.errors import ClipCacheError
from pipeline.store.atomic import atomic_h5, exclusive, remove_stale_temporaries
from pipeline.store.failpoints import failpoint
from pipeline.store.integrity import dataset_names, verify
from pipeline.store.provenance import ATTR_COMPLETE, ATTR_FINGERPRINT, fingerprint, read_attrs, write_attrs
from pipeline.store.schema import image_axis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """A range of input items [start, stop) written as one shard file."""

    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"shard-{self.start:08d}-{self.stop:08d}.h5"


def is_complete(path: Path, expected_fingerprint: str, check_data: bool = False) -> bool:
    """True if `path` is a complete file of this fingerprint (with `check_data`, its datasets read in full also match
    their checksums); unreadable files count as incomplete."""
    try:
        with h5py.File(path, "r") as handle:
            if not (handle.attrs.get(ATTR_COMPLETE) and handle.attrs.get(ATTR_FINGERPRINT) == expected_fingerprint):
                return False
            if check_data:
                verify(handle, path, expected_fingerprint, force=True)
            return True
    except (OSError, RuntimeError):
        return False
    except ClipCacheError as exc:
        log.warning("%s: rebuilding it: %s", path, exc)
        return False


class SplitWriter:
    """Writes the split file at `path` for items 0..n_items-1, resuming from complete shards."""

    def __init__(self, path: Path, provenance: dict[str, Any], build: dict[str, Any], n_items: int,
                 shard_items: int) -> None:
        self.path, self.provenance, self.build = path, provenance, build
        self.fingerprint = fingerprint(provenance)
        self.parts = path.with_name(path.name + ".parts")
        self.shards = [Shard(s, min(s + shard_items, n_items)) for s in range(0, n_items, max(1, shard_items))]

    def locked(self) -> Any:
        """The split's lock (`.<split>.h5.lock` beside it): hold it from the up-to-date check to the final rename, so
        that a second `encode` of the same split waits, then finds it complete, instead of removing the first
        one's shards."""
        return exclusive(self.path.with_name(f".{self.path.name}.lock"), str(self.path))

    def up_to_date(self, check_data: bool = False) -> bool:
        """The final file exists, is complete and was made from the same provenance; with `check_data`, its datasets
        also match their checksums (read in full: `clipcache encode --repair`)."""
        return is_complete(self.path, self.fingerprint, check_data)

    def skipped(self) -> list[str]:
        """The images the final file left out as undecodable (--skip-bad-images): without that flag such a file is
        not up to date, so encoding again stops at the bad image and names it."""
        with h5py.File(self.path, "r") as handle:
            return list(json.loads(handle.attrs.get("build", "{}")).get("skipped", []))

    def drop_leftovers(self) -> None:
        """Remove the parts folder of a split whose final file is complete (a kill just after the final rename, or a
        concurrent writer, can leave up to a full copy of the split there; nothing reads it any more)."""
        if self.parts.is_dir() and self.up_to_date():
            log.info("%s: removing the leftover shards of a complete split", self.parts)
            shutil.rmtree(self.parts, ignore_errors=True)

    def pending(self) -> list[Shard]:
        """Shards still to encode; clears temporaries and shards of another plan or fingerprint (under `locked`)."""
        remove_stale_temporaries(self.parts)
        remove_stale_temporaries(self.path.parent, self.path.name)
        done = {s.name for s in self.shards if is_complete(self.parts / s.name, self.fingerprint)}
        if self.parts.is_dir():
            for stale in self.parts.glob("shard-*.h5"):
                if stale.name not in done:
                    stale.unlink()
        if done:
            log.info("%s: resuming, %d of %d shards already complete", self.path, len(done), len(self.shards))
        return [s for s in self.shards if s.name not in done]

    def write_shard(self, shard: Shard, arrays: dict[str, np.ndarray], skipped: list[str]) -> None:
        """Write one shard atomically; every array must be finite."""
        for name, array in arrays.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ClipCacheError(f"{self.path}: non-finite values in {name!r} for items {shard.start}-{shard.stop}")
        with atomic_h5(self.parts / shard.name, sum(a.nbytes for a in arrays.values())) as handle:
            for name, array in arrays.items():
                handle.create_dataset(name, data=array)
            write_attrs(handle, self.provenance, {**self.build, "skipped": skipped}, complete=True)
        failpoint("shard-written")

    def finalize(self) -> None:
        """Join the shards into one contiguous file at `path`, then drop the parts folder."""
        files = [h5py.File(self.parts / s.name, "r") for s in self.shards]
        try:
            skipped = [name for f in files for name in json.loads(f.attrs["build"]).get("skipped", [])]
            needed = sum(int(f[name].nbytes) for f in files for name in dataset_names(f))
            with atomic_h5(self.path, needed) as out:  # a full copy of the split, its shards removed afterwards
                copy_datasets(files, out)
                failpoint("consolidating")
                write_attrs(out, self.provenance, {**self.build, "skipped": skipped}, complete=True)
        finally:
            for handle in files:
                handle.close()
        failpoint("consolidated")
        shutil.rmtree(self.parts, ignore_errors=True)
        log.info("%s: complete", self.path)


def copy_datasets(shards: list[h5py.File], out: h5py.File) -> None:
    """Concatenate every dataset of the shards along its image axis into contiguous datasets of `out`."""
    for name in dataset_names(shards[0]):
        axis = image_axis(name)
        parts = [f[name] for f in shards]
        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        target = out.create_dataset(name, shape=tuple(shape), dtype=parts[0].dtype)
        offset = 0
        for part in parts:
            rows = part.shape[axis]
            if rows:
                index = (slice(None),) * axis + (slice(offset, offset + rows),)
                target[index] = part[()]
            offset += rows


def write_whole(path: Path, provenance: dict[str, Any], build: dict[str, Any], groups: dict[str, np.ndarray]) -> None:
    """Write a small file (text features) in one atomic step."""
    with atomic_h5(path, sum(a.nbytes for a in groups.values())) as handle:
        for name, array in groups.items():
            handle.create_dataset(name, data=array)
        write_attrs(handle, provenance, build, complete=True)


__all__ = ["Shard", "SplitWriter", "is_complete", "read_attrs", "write_whole"]

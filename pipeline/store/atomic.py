"""Atomic HDF5 files: write under a temporary name, fsync, os.replace into place, fsync the folder.

A SIGKILL at any moment leaves either the old file, the new complete file, or a stray temporary that the next
run deletes; never a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

TMP_MARK = ".tmp-"


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


@contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """Yield an HDF5 file open for writing that appears at `path` only if the block finishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with h5py.File(tmp, "w", libver="latest") as handle:
            yield handle
        with tmp.open("rb+") as raw:
            os.fsync(raw.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries that a killed writer left in `folder`."""
    if folder.is_dir():
        for stray in folder.glob(f"*{TMP_MARK}*"):
            stray.unlink(missing_ok=True)


def write_json_atomic(path: Path, content: object) -> None:
    """Write `content` as JSON at `path` through a temporary file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
    tmp.write_text(json.dumps(content, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)

"""Atomic HDF5 files: write under a temporary name, fsync, os.replace into place, fsync the folder.

A SIGKILL at any moment leaves either the old file, the new complete file, or a stray temporary that the next
run deletes; never a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from pipeline.errors import ClipCacheError

TMP_MARK = ".tmp-"
TMP_PREFIX, OLD_PREFIX = ".tmp-", ".old-"  # folders being written / set aside while a new one is renamed in


def unique_token() -> str:
    """host-pid-random: a temporary name no other writer, on any host, can share."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temp_folder(folder: Path) -> Path:
    """A fresh temporary folder name beside `folder` (the sweep's leftover pass removes abandoned ones)."""
    return folder.with_name(f"{TMP_PREFIX}{folder.name}-{unique_token()}")


def replace_folder(tmp: Path, folder: Path, keep: Callable[[], bool] | None = None) -> None:
    """Rename the complete folder `tmp` to `folder`, setting an existing one aside first (then deleting it), so that
    `folder` is only ever a whole old or a whole new folder. `keep()` true: another writer published an equivalent
    folder meanwhile; it is kept (the caller removes `tmp`)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        if keep is not None and keep():
            return
        if folder.exists():
            aside = folder.with_name(f"{OLD_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(folder, aside)
            except FileNotFoundError:
                continue
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another writer put a folder there in between: look again
            continue
        fsync_dir(folder.parent)
        return
    raise ClipCacheError(f"folder {str(folder)!r} keeps changing under this writer: is another process writing it?")


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

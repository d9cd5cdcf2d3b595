"""Atomic HDF5 files: write under a temporary name, fsync, os.replace into place, fsync the folder.

A SIGKILL at any moment leaves either the old file, the new complete file, or a stray temporary that the next
run deletes; never a half-written file under the final name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import random
import resource
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from pipeline.errors import ClipCacheError, NoSpace
from pipeline.store.integrity import stamp

log = logging.getLogger(__name__)
TMP_MARK = ".tmp-"
TMP_PREFIX, OLD_PREFIX = ".tmp-", ".old-"  # folders being written / set aside while a new one is renamed in
PUBLISH_ATTEMPTS = 50  # renames a publisher tries while other writers of the same folder keep renaming theirs


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
    for attempt in range(PUBLISH_ATTEMPTS):
        if attempt:  # another writer renamed a folder in between: let it finish, then look again
            time.sleep(random.uniform(0, 0.01 * min(attempt, 10)))
        if keep is not None and keep():
            return
        aside = folder.with_name(f"{OLD_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(folder, aside)  # the old folder set aside (a rename: never half there)
        except FileNotFoundError:
            pass  # none yet
        except OSError:
            continue
        try:
            os.replace(tmp, folder)  # at once, so the window without a folder is one rename long
        except OSError:
            continue
        finally:
            shutil.rmtree(aside, ignore_errors=True)
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


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota reached, file size limit


def no_space(exc: BaseException) -> bool:
    """True for a write that failed for want of space (HDF5 reports the errno inside its message)."""
    text = str(exc)
    return getattr(exc, "errno", None) in NO_SPACE or any(
        mark in text
        for mark in ("errno = 28", "errno = 122", "errno = 27", "No space left", "Disk quota", "File too large"))


def too_large(exc: BaseException | None) -> bool:
    """True for a write that failed on the process's file-size limit (ulimit -f), not on the disk."""
    return exc is not None and (getattr(exc, "errno", None) == errno.EFBIG or "errno = 27" in str(exc)
                                or "File too large" in str(exc))


def space_error(path: Path, needed: int | None, exc: BaseException | None = None) -> NoSpace:
    """The one line of a write refused or failed for want of space: the file, the bytes it needs, the bytes free; or,
    for a write stopped by the file-size limit (`exc` EFBIG), that limit, since the disk may have plenty."""
    if too_large(exc):
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        shown = "no limit now" if limit == resource.RLIM_INFINITY else f"{limit:,} bytes"
        return NoSpace(f"cannot write {str(path)!r}: the file grew past this process's file-size limit (ulimit -f: "
                       f"{shown}); raise the limit and run again (what is already written is kept)")
    try:
        free = f"{shutil.disk_usage(path.parent).free:,} bytes are free there"
    except OSError:
        free = "the free space could not be read"
    need = f"about {needed:,} bytes" if needed else "more space than is free"
    return NoSpace(f"not enough disk space to write {str(path)!r}: it needs {need}, {free}; free some space "
                          "and run again (what is already written is kept)")


def ensure_space(path: Path, needed: int) -> None:
    """Refuse before writing `needed` bytes at `path` when its device has not that much free (plus a margin for the
    file's own metadata), rather than fail half-way through the write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    margin = 64 * 1024 + needed // 100
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]  # the file-size limit of this process (ulimit -f)
    if limit != resource.RLIM_INFINITY and needed + margin > limit:
        raise NoSpace(f"cannot write {str(path)!r}: it needs about {needed + margin:,} bytes and this process may "
                      f"write files of at most {limit:,} bytes (ulimit -f); raise the limit and run again")
    if shutil.disk_usage(path.parent).free < needed + margin:
        raise space_error(path, needed + margin)


@contextmanager
def atomic_h5(path: Path, needed: int | None = None) -> Iterator[h5py.File]:
    """Yield an HDF5 file open for writing that appears at `path` only if the block finishes, stamped with the
    checksum of each of its datasets; `needed`, the bytes of data it will hold, is checked against the free space
    first, and a write that still runs out of space is one line naming the file, never a traceback."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if needed is not None:
        ensure_space(path, needed)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{unique_token()}")
    try:
        with h5py.File(tmp, "w", libver="latest") as handle:
            yield handle
            stamp(handle, tmp)  # the checksum of every dataset, read back from the file as written
        with tmp.open("rb+") as raw:
            os.fsync(raw.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except (OSError, RuntimeError) as exc:
        if no_space(exc):
            raise space_error(path, needed, exc) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path, name: str = "") -> None:
    """Delete temporaries that a killed writer left in `folder` (only those of file `name` when given); call it only
    while holding the lock of what they belong to (`exclusive`), so that no live writer's temporary is touched."""
    if folder.is_dir():
        for stray in folder.glob(f"{name}*{TMP_MARK}*"):
            stray.unlink(missing_ok=True)


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if absent) for the block: writers of one split, from any
    process, take turns; the kernel releases it if the holder is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process writing %s", what)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json_atomic(path: Path, content: object) -> None:
    """Write `content` as JSON at `path` through a temporary file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{unique_token()}")
    try:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True, default=str))
        os.replace(tmp, path)
    except OSError as exc:
        if no_space(exc):
            raise space_error(path, None, exc) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)

"""Checksums of every dataset of a cache file: written when the file is finalised, checked before its data is trusted.

Contiguous HDF5 datasets carry no checksum of their own (HDF5's checksums cover metadata only), so a file records
one in its `checksums` attribute: {dataset: "xxh3_64:<hex>"} over the dataset's bytes as stored (xxh3 hashes at
memory speed; the read is the cost). A file is verified once and remembered by (path, size, mtime, fingerprint): in
the process, and in the user's cache folder ($CLIPCACHE_STATE, or ~/.cache/clipcache/verified.json), never beside
the file (a DVC output must not change when a later stage reads it), so that a 100 GB cache is not read again on
every open; `clipcache verify` reads everything again whatever is remembered.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.digest import bytes_checksum, range_checksum
from pipeline.errors import ClipCacheError
from pipeline.store.lazy import contiguous_offset

log = logging.getLogger(__name__)
ATTR_CHECKSUMS = "checksums"
MEMO_LIMIT = 100_000  # entries kept in the memo (the oldest are dropped)

_VERIFIED: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, fingerprint) verified in this process


def dataset_checksum(path: Path, dataset: h5py.Dataset) -> str:
    """Checksum of a dataset's bytes: the raw file range of a contiguous dataset, else its values (variable-length
    strings as their UTF-8 bytes, each followed by a NUL)."""
    offset = contiguous_offset(dataset)
    if offset is not None:
        return range_checksum(path, offset, dataset.size * dataset.dtype.itemsize)
    values = dataset[()]
    if dataset.dtype.kind == "O":
        flat = np.asarray(values, dtype=object).ravel()  # [n] of bytes or str
        return bytes_checksum(b"".join((v.encode() if isinstance(v, str) else bytes(v)) + b"\0" for v in flat))
    return bytes_checksum(np.ascontiguousarray(values).tobytes())


def dataset_names(handle: h5py.File) -> list[str]:
    names: list[str] = []
    handle.visit(lambda name: names.append(name) if isinstance(handle[name], h5py.Dataset) else None)
    return sorted(names)


def stamp(handle: h5py.File, path: Path) -> None:
    """Write the checksum of every dataset of a file open for writing at `path` (its data already written)."""
    handle.flush()
    handle.attrs[ATTR_CHECKSUMS] = json.dumps({name: dataset_checksum(path, handle[name])
                                               for name in dataset_names(handle)}, sort_keys=True)


def damaged(handle: h5py.File, path: Path) -> tuple[str, str] | None:
    """(dataset, why) of the first dataset whose bytes do not match its checksum, or None when all match."""
    try:
        stored = json.loads(handle.attrs[ATTR_CHECKSUMS])
    except (KeyError, ValueError):
        return ("*", "the file records no checksums (written by an older clipcache or not by clipcache)")
    names = dataset_names(handle)
    for name in sorted(set(names) | set(stored)):
        if name not in stored:
            return (name, "it has no recorded checksum")
        if name not in names:
            return (name, "it is missing")
        try:
            if dataset_checksum(path, handle[name]) != stored[name]:
                return (name, "its bytes do not match the checksum written with it")
        except (OSError, UnicodeDecodeError) as exc:  # e.g. a damaged heap under variable-length strings
            return (name, f"it cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    return None


def memo_key(path: Path, fingerprint: str) -> tuple[str, int, int, str]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, fingerprint)


def memo_file() -> Path:
    """{absolute path: [size, mtime_ns, fingerprint]} of files verified whole, for this user."""
    if os.environ.get("CLIPCACHE_STATE"):
        return Path(os.environ["CLIPCACHE_STATE"]) / "verified.json"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clipcache" / "verified.json"


def read_memo() -> dict[str, Any]:
    try:
        entries = json.loads(memo_file().read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def remembered(key: tuple[str, int, int, str]) -> bool:
    if key in _VERIFIED:
        return True
    entry = read_memo().get(key[0])
    return isinstance(entry, list) and tuple(entry) == key[1:]


def remember(key: tuple[str, int, int, str]) -> None:
    """Record a verified file in the process and in the user's memo (atomically; a memo that cannot be written only
    means the next process verifies again)."""
    _VERIFIED.add(key)
    memo = memo_file()
    entries = read_memo()
    entries.pop(key[0], None)
    entries[key[0]] = list(key[1:])
    entries = dict(list(entries.items())[-MEMO_LIMIT:])
    tmp = memo.with_name(f"{memo.name}.tmp-{os.getpid()}-{id(entries)}")
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, memo)
    except OSError:
        tmp.unlink(missing_ok=True)


def verify(handle: h5py.File, path: Path, fingerprint: str, force: bool = False) -> None:
    """Refuse a file with a damaged dataset, in one line naming the file and the dataset; a file verified before at
    the same size, time and fingerprint is trusted unless `force`."""
    key = memo_key(path, fingerprint)
    if not force and remembered(key):
        return
    found = damaged(handle, path)
    if found:
        name, why = found
        raise ClipCacheError(f"cache file {str(path)!r} is damaged: dataset {name!r}: {why}; run `clipcache encode "
                             "--repair` to rebuild it")
    remember(key)

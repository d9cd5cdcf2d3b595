"""File checksums (checkpoints, model configs), without importing any model code."""

from __future__ import annotations

import hashlib
from pathlib import Path

_DONE: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime) -> sha256, for this process


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks; once per process while the file stays the same (a sweep names
    its runs' folders after a checkpoint's hash many times)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _DONE:
        digest = hashlib.sha256()
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DONE[key] = digest.hexdigest()
    return _DONE[key]


def path_of(sha256: str) -> str | None:
    """A file hashed by this process whose bytes have that sha256 and which is still there unchanged, or None."""
    for (path, inode, size, mtime), digest in _DONE.items():
        if digest == sha256:
            try:
                stat = Path(path).stat()
            except OSError:
                continue
            if (stat.st_ino, stat.st_size, stat.st_mtime_ns) == (inode, size, mtime):
                return path
    return None

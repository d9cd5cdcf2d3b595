"""The fast checksum of the store (xxh3_64): of bytes, of a byte range of a file, of a whole file. Imports nothing
heavy, so that the torch-free report can check a run's records too."""

from __future__ import annotations

from pathlib import Path

import xxhash

ALGORITHM = "xxh3_64"
BLOCK = 16 << 20  # bytes read at a time


def bytes_checksum(data: bytes | memoryview) -> str:
    return f"{ALGORITHM}:{xxhash.xxh3_64(data).hexdigest()}"


def range_checksum(path: Path, offset: int, length: int) -> str:
    """Checksum of `length` bytes of a file from `offset`, read in blocks (a short file gives another checksum)."""
    digest = xxhash.xxh3_64()
    with path.open("rb") as handle:
        handle.seek(offset)
        left = length
        while left:
            block = handle.read(min(BLOCK, left))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return f"{ALGORITHM}:{digest.hexdigest()}"


def file_checksum(path: Path) -> str:
    """Checksum of a whole file (a fitted head's weights, a run's records)."""
    return range_checksum(path, 0, path.stat().st_size)

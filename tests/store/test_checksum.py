"""sha256 of files: correct, and read again when the file changes (it is memoised per process)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.store.checksum import sha256_file


def test_hash_is_sha256_and_follows_changes(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(b"a" * (3 << 20))
    assert sha256_file(path) == hashlib.sha256(b"a" * (3 << 20)).hexdigest()
    assert sha256_file(path) == sha256_file(Path(str(path)))
    stat = path.stat()
    path.write_bytes(b"b" * (3 << 20))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert sha256_file(path) == hashlib.sha256(b"b" * (3 << 20)).hexdigest()
    replacement = tmp_path / "new.pt"
    replacement.write_bytes(b"c")
    os.replace(replacement, path)  # another file under the same name
    assert sha256_file(path) == hashlib.sha256(b"c").hexdigest()

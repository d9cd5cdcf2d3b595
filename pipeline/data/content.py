"""Image content hashes: a split file is identified by the bytes of its images, not only by their names.

Each image is hashed (sha256 of its file) once; the hash is remembered in an index beside the data set's caches,
keyed by the image's path with its size and modification time, so that a run over an unchanged data set costs one
`stat` per image. An image inside a container (a tar shard's member, a parquet/arrow row) is hashed by its bytes,
under the key '<container>#<member>' with the container's size and time: an unchanged shard costs one `stat` per
member, and a rewritten one is read again member by member. A replaced or repaired image (other size or time) is
hashed again, which changes the content hash of every split file holding it, and `encode` rebuilds exactly those
files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from stat import S_ISREG

from pipeline.data.members import MemberError, read_bytes
from pipeline.data.registry import ImageItem
from pipeline.store.atomic import write_json_atomic

log = logging.getLogger(__name__)


class ContentIndex:
    """{key: [size, mtime_ns, sha256]} of the images of one data set, loaded once and saved when it grew."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path, self.root, self.changed = path, root, False
        try:
            self.entries: dict[str, list] = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:  # a damaged index is only a cache of hashes: start again
            log.warning("%s is not readable JSON; hashing the images again", path)
            self.entries = {}

    def key(self, path: Path, member: str = "") -> str:
        return ImageItem(path, 0, member).name(self.root)  # the image's identity, as in the file-list hash

    def sha256(self, path: Path, member: str = "") -> str:
        """The hash of one image file (or of a container's member: its bytes, under the key '<container>#<member>'
        and the container's size and modification time), from the index while they are unchanged; an image that
        cannot be read hashes as 'unreadable' (decoding then stops at it, or skips it with --skip-bad-images)."""
        try:
            stat = path.stat()
            if not S_ISREG(stat.st_mode):  # a FIFO or a device would block or never end
                return "unreadable (not a regular file)"
            key = self.key(path, member)
            known = self.entries.get(key)
            if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
                return str(known[2])
            if member:
                digest = hashlib.sha256(read_bytes(ImageItem(path, 0, member))).hexdigest()
            else:
                with path.open("rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except MemberError as exc:
            return f"unreadable ({str(exc).partition(': ')[2] or exc})"
        except OSError as exc:
            return f"unreadable ({exc.strerror or type(exc).__name__})"
        self.entries[key], self.changed = [stat.st_size, stat.st_mtime_ns, digest], True
        return digest

    def save(self) -> None:
        """Write the index back (atomically) when an image was hashed in this run."""
        if self.changed:
            write_json_atomic(self.path, self.entries)
            self.changed = False


def items_sha256(items: Sequence[ImageItem], index: ContentIndex) -> str:
    """sha256 over the (image hash, label) of every item in row order: the content identity of a split file."""
    for item in sorted((i for i in items if i.member), key=ImageItem.sort_key):  # containers read front to back
        index.sha256(item.path, item.member)
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{index.sha256(item.path, item.member)}\t{item.label}\n".encode())
    return digest.hexdigest()

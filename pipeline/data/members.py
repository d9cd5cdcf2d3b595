"""The bytes of an image wherever it lives: a plain file, a member of a tar shard, a row of a parquet or arrow file.

An image inside a container is an `ImageItem` whose `path` is the container and whose `member` names it there:
- a tar shard (webdataset): the member's name, `<sample key>.<image extension>` ('000123.jpg'), read by random
  access through an index of member offsets (one pass over the tar headers, no data read), kept per process per
  shard while the shard's size and modification time are unchanged;
- a parquet or arrow file: `<row key>.<image column>` ('000123.jpg' for img2dataset's `key` and `jpg` columns,
  '12.image' for row 12 of a Hugging Face `save_to_disk` file, whose rows have no key). Parquet is read by row group,
  the row groups last read kept per process (up to ROW_GROUP_BYTES); arrow IPC files (stream or file format) are
  memory-mapped, so a row costs a slice.

Everything here is per process (DataLoader workers, dask workers each build their own), so items stay plain,
picklable values. A member that cannot be read raises `MemberError`, an OSError whose message names
`<container>#<member>`: decoding turns it into the same one-line message as a bad image file.
"""

from __future__ import annotations

import bisect
import tarfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pipeline.data.registry import ImageItem

TAR_SUFFIXES = (".tar",)
ARROW_SUFFIXES = (".arrow",)
PARQUET_SUFFIXES = (".parquet",)
CONTAINER_SUFFIXES = TAR_SUFFIXES + PARQUET_SUFFIXES + ARROW_SUFFIXES  # every container file this module reads
KEPT_CONTAINERS = 64  # tar indices / row-key maps / arrow tables kept per process
ROW_GROUP_BYTES = 128 << 20  # parquet row groups (their image column) kept per process, least recently used first out
KEY_COLUMN = "key"  # img2dataset's row key (a parquet file without it is keyed by row number)
ARROW_FILE_MAGIC = b"ARROW1"  # an arrow IPC *file* begins with it; a *stream* (datasets' save_to_disk) does not

T = TypeVar("T")


class MemberError(OSError):
    """A container's member that cannot be read; the message names `<container>#<member>`."""


def member_name(item: ImageItem) -> str:
    """How messages name an image: its path, or `<container>#<member>`."""
    return item.name()


def read_bytes(item: ImageItem) -> bytes:
    """The image's encoded bytes (a file's content, a tar member's, a parquet/arrow row's image cell)."""
    if not item.member:
        return item.path.read_bytes()
    suffix = item.path.suffix.lower()
    if suffix in TAR_SUFFIXES:
        return read_tar_member(item)
    if suffix in PARQUET_SUFFIXES or suffix in ARROW_SUFFIXES:
        return read_table_row(item)
    raise MemberError(f"{member_name(item)}: {item.path.suffix!r} is not a container this package reads")


def stamp(path: Path) -> tuple[int, int]:
    """(size, modification time) of a container: what its cached index is valid for."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def cached(store: OrderedDict[Any, tuple[tuple[int, int], T]], key: Any, path: Path, build: Callable[[], T],
           keep: int) -> T:
    """`build()` kept in `store` under `key` while `path` keeps its size and modification time (least recently used
    entries dropped beyond `keep`)."""
    now = stamp(path)
    hit = store.get(key)
    if hit is not None and hit[0] == now:
        store.move_to_end(key)
        return hit[1]
    value = build()
    store[key] = (now, value)
    while len(store) > keep:
        store.popitem(last=False)
    return value


# --- tar shards -------------------------------------------------------------------------------------------------

def tar_entries(path: Path) -> Iterator[tuple[str, int, int]]:
    """(name, data offset, size) of each regular file of an uncompressed tar, from its headers alone (the data are
    skipped by seeking); raises tarfile.TarError / OSError for a file that is not one."""
    with tarfile.open(path, mode="r:") as archive:
        while (info := archive.next()) is not None:
            if info.isreg():
                yield info.name, info.offset_data, info.size


DAMAGE = "\0damage"  # the index entry that marks a shard whose headers end in damage (no member has this name)
_DAMAGE: dict[Path, str] = {}  # what the damage was, per shard
_TAR_INDEX: OrderedDict[Path, tuple[tuple[int, int], dict[str, tuple[int, int]]]] = OrderedDict()


def tar_index(path: Path) -> dict[str, tuple[int, int]]:
    """{member name: (offset, size)} of a shard, built once per process while the shard is unchanged; a shard damaged
    part way keeps the members before the damage (each read checks its own length), and names the damage under
    DAMAGE for the members after it."""

    def build() -> dict[str, tuple[int, int]]:
        index: dict[str, tuple[int, int]] = {}
        try:
            for name, offset, size in tar_entries(path):
                index[name] = (offset, size)
        except (tarfile.TarError, EOFError) as exc:
            index[DAMAGE] = (-1, -1)
            _DAMAGE[path] = f"{type(exc).__name__}: {exc}"
        return index

    return cached(_TAR_INDEX, path, path, build, KEPT_CONTAINERS)


def read_tar_member(item: ImageItem) -> bytes:
    """A tar member's bytes by offset (a truncated shard or a missing member is a MemberError naming both)."""
    try:
        index = tar_index(item.path)
        where = index.get(item.member)
        if where is None:
            damage = f" (the shard is damaged before its end: {_DAMAGE.get(item.path)})" if DAMAGE in index else ""
            raise MemberError(f"{member_name(item)}: no such member in the shard{damage}")
        offset, size = where
        with item.path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
    except (OSError, tarfile.TarError) as exc:
        if isinstance(exc, MemberError):
            raise
        raise MemberError(f"{member_name(item)}: {type(exc).__name__}: {exc}") from exc
    if len(data) != size:
        raise MemberError(f"{member_name(item)}: the shard ends inside the member ({len(data)} of {size} bytes)")
    return data


# --- parquet and arrow files ------------------------------------------------------------------------------------

def split_member(member: str) -> tuple[str, str]:
    """'<row key>.<image column>' -> (row key, image column)."""
    key, _, column = member.rpartition(".")
    return key, column


def open_arrow(path: Path) -> Any:
    """The whole table of an arrow IPC file or stream, memory-mapped (no copy of the image bytes)."""
    import pyarrow as pa

    source = pa.memory_map(str(path), "r")
    is_file = source.read(len(ARROW_FILE_MAGIC)) == ARROW_FILE_MAGIC
    source.seek(0)
    reader = pa.ipc.open_file(source) if is_file else pa.ipc.open_stream(source)
    return reader.read_all()


_ARROW: OrderedDict[Path, tuple[tuple[int, int], Any]] = OrderedDict()
_ROW_KEYS: OrderedDict[tuple[Path, str], tuple[tuple[int, int], dict[str, int]]] = OrderedDict()
_ROW_GROUPS: OrderedDict[tuple[Path, int, str], tuple[tuple[int, int], Any]] = OrderedDict()
_PARQUET_LAYOUT: OrderedDict[Path, tuple[tuple[int, int], tuple[list[int], str | None]]] = OrderedDict()


def arrow_table(path: Path) -> Any:
    return cached(_ARROW, path, path, lambda: open_arrow(path), KEPT_CONTAINERS)


def row_keys(path: Path, key_column: str) -> dict[str, int]:
    """{row key: row number} of a parquet file's `key_column` (read once per process while the file is unchanged)."""
    import pyarrow.parquet as pq

    def build() -> dict[str, int]:
        keys = pq.ParquetFile(str(path)).read(columns=[key_column]).column(key_column).to_pylist()
        return {str(key): row for row, key in enumerate(keys)}

    return cached(_ROW_KEYS, (path, key_column), path, build, KEPT_CONTAINERS)


def row_of(path: Path, key: str, key_column: str | None) -> int:
    """The row number of `key`: itself for files without a key column (`key_column` None), else looked up."""
    if key_column is None:
        return int(key)
    row = row_keys(path, key_column).get(key)
    if row is None:
        raise KeyError(f"no row with {key_column} {key!r}")
    return row


def parquet_layout(path: Path) -> tuple[list[int], str | None]:
    """(the first row of each row group, the key column or None) of a parquet file, read once per process."""
    import pyarrow.parquet as pq

    def build() -> tuple[list[int], str | None]:
        meta = pq.ParquetFile(str(path)).metadata
        starts, total = [], 0
        for group in range(meta.num_row_groups):
            starts.append(total)
            total += meta.row_group(group).num_rows
        names = set(meta.schema.to_arrow_schema().names)
        return [*starts, total], KEY_COLUMN if KEY_COLUMN in names else None

    return cached(_PARQUET_LAYOUT, path, path, build, KEPT_CONTAINERS)


def row_group(path: Path, group: int, column: str) -> Any:
    """One row group's `column` of a parquet file, kept while the file is unchanged and the row groups kept in this
    process stay within ROW_GROUP_BYTES (so that few-shot draws, which visit rows out of order, read each group once
    when a worker's share of the file fits)."""
    import pyarrow.parquet as pq

    now, key = stamp(path), (path, group, column)
    hit = _ROW_GROUPS.get(key)
    if hit is not None and hit[0] == now:
        _ROW_GROUPS.move_to_end(key)
        return hit[1]
    values = pq.ParquetFile(str(path)).read_row_group(group, columns=[column]).column(column)
    _ROW_GROUPS[key] = (now, values)
    while len(_ROW_GROUPS) > 1 and sum(v.nbytes for _, v in _ROW_GROUPS.values()) > ROW_GROUP_BYTES:
        _ROW_GROUPS.popitem(last=False)
    return values


def parquet_cell(path: Path, row: int, column: str) -> Any:
    """One cell of a parquet file, through its row group."""
    bounds, _ = parquet_layout(path)  # [G + 1] first rows, then the total
    if not 0 <= row < bounds[-1]:
        raise IndexError(f"row {row} is past the file's {bounds[-1]} rows")
    group = bisect.bisect_right(bounds, row) - 1
    values = row_group(path, group, column)
    return values[row - bounds[group]].as_py()


def image_bytes(cell: Any) -> bytes:
    """The bytes of an image cell: binary (img2dataset), or datasets' Image struct {bytes, path}."""
    if isinstance(cell, dict):
        if cell.get("bytes") is None:
            raise ValueError(f"the image cell holds no bytes (only the path {cell.get('path')!r}, which is not read)")
        cell = cell["bytes"]
    if not isinstance(cell, bytes):
        raise ValueError(f"the image cell is {type(cell).__name__}, not bytes")
    return cell


def read_table_row(item: ImageItem) -> bytes:
    """The image bytes of one parquet/arrow row."""
    key, column = split_member(item.member)
    try:
        if item.path.suffix.lower() in ARROW_SUFFIXES:
            table = arrow_table(item.path)
            cell = table.column(column)[int(key)].as_py()
        else:
            cell = parquet_cell(item.path, row_of(item.path, key, parquet_layout(item.path)[1]), column)
        return image_bytes(cell)
    except (OSError, ValueError, KeyError, IndexError, ImportError) as exc:
        if isinstance(exc, MemberError):
            raise
        raise MemberError(f"{member_name(item)}: {type(exc).__name__}: {exc}") from exc

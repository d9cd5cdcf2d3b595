"""Read a split file: check completeness, integrity and provenance, then expose lazy views of its tensors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.errors import ClipCacheError
from pipeline.store.expected import check_against_provenance
from pipeline.store.integrity import verify
from pipeline.store.lazy import LazyArray, contiguous_offset
from pipeline.store.provenance import ATTR_COMPLETE, ATTR_FINGERPRINT, SCHEMA_VERSION, check_request, edited, read_attrs
from pipeline.store.schema import ENABLED_BY, image_axis, known


def open_h5(path: Path) -> h5py.File:
    """Open for reading; a missing, truncated or foreign file is a one-line error naming it."""
    if not path.is_file():
        parts = path.with_name(path.name + ".parts")
        hint = " (encoding was interrupted: run `clipcache encode` again to resume)" if parts.is_dir() else ""
        raise ClipCacheError(f"cache file {str(path)!r} does not exist{hint}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ClipCacheError(f"cache file {str(path)!r} is corrupt or not HDF5: {str(exc).splitlines()[0]}") from exc


Specs = dict[str, tuple[tuple[int, ...], np.dtype, int | None]]  # dataset -> (shape, dtype, byte offset)


def dataset_specs(handle: h5py.File, path: Path) -> Specs:
    """(shape, dtype, byte offset) of every dataset, after checking its bytes lie inside the file."""
    specs: dict[str, tuple[tuple[int, ...], np.dtype, int | None]] = {}
    size = path.stat().st_size

    external: list[str] = []

    def link(name: str, info: Any) -> None:  # raising inside h5py's link visitor is not safe: collect, raise after
        if isinstance(handle.get(name, getlink=True), h5py.ExternalLink):
            external.append(name)

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
            raise ClipCacheError(f"cache file {str(path)!r} is not ours: dataset {name!r} takes its bytes from "
                                 f"another file ({'external storage' if obj.external else 'a virtual dataset'})")
        if isinstance(obj, h5py.Dataset) and (obj.chunks is not None or obj.compression is not None):
            raise ClipCacheError(f"cache file {str(path)!r} is not ours: dataset {name!r} is chunked or compressed "
                                 "(clipcache writes contiguous, uncompressed datasets); encode it again")
        if isinstance(obj, h5py.Dataset):
            offset = contiguous_offset(obj)
            if offset is not None and offset + obj.size * obj.dtype.itemsize > size:
                raise ClipCacheError(f"cache file {str(path)!r} is truncated: dataset {name!r} runs past its end")
            specs[name] = (obj.shape, obj.dtype, offset)

    try:
        handle.visititems_links(link)
        if not external:
            handle.visititems(visit)
    except (RuntimeError, KeyError) as exc:  # "Link/Object visitation failed (incorrect metadata checksum ...)", or
        # a KeyError from opening a dataset whose extent passes the file's end address ("invalid dataset size")
        reason = str(exc.args[0] if exc.args else exc).splitlines()[0]
        raise ClipCacheError(f"cache file {str(path)!r} is corrupt: {reason}") from None
    if external:
        raise ClipCacheError(f"cache file {str(path)!r} is not ours: {external[0]!r} is an external link to another "
                             "file")
    return specs


@contextmanager
def checked(path: Path,
            expect: dict[str, Any] | None) -> Iterator[tuple[h5py.File, dict[str, Any], dict[str, Any], Specs]]:
    """Open a cache file and yield (handle, provenance, build) once it is complete, of our schema, unedited, as
    requested, whole, and its data matches its checksums (cheapest checks first)."""
    with open_h5(path) as handle:
        provenance, build = read_attrs(handle, path)
        if not handle.attrs.get(ATTR_COMPLETE):
            raise ClipCacheError(f"cache file {str(path)!r} is incomplete")
        if int(handle.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
            raise ClipCacheError(f"cache file {str(path)!r} has schema version "
                                 f"{handle.attrs.get('schema_version')}, this code reads {SCHEMA_VERSION}")
        if edited(handle, provenance):
            raise ClipCacheError(f"cache file {str(path)!r}: its provenance does not match the fingerprint it was "
                                 "written with (edited after encoding?); encode it again")
        check_request(provenance, expect or {}, path)
        specs = dataset_specs(handle, path)  # truncation and bytes from other files, before any data is read
        check_against_provenance(specs, provenance, build, path)  # rows, views, sizes, dtypes: still nothing read
        verify(handle, path, str(handle.attrs[ATTR_FINGERPRINT]))  # once per file, size, time and fingerprint
        yield handle, provenance, build, specs


class FeatureSplit:
    """One encoded split: labels in memory, every tensor as a lazy array (nothing large is read on open)."""

    def __init__(self, path: str | Path, expect: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        with checked(self.path, expect) as (handle, self.provenance, self.build, specs):
            try:
                self.labels = handle["labels"][()] if "labels" in handle else np.zeros(0, np.int64)  # [N]
                self.image_ids = [s.decode() for s in handle["image_id"][()]] if "image_id" in handle else []
            except (OSError, UnicodeDecodeError) as exc:  # checksummed, but read before the memo saw this copy
                raise ClipCacheError(f"cache file {str(self.path)!r}: labels or image ids cannot be read "
                                     f"({type(exc).__name__}); run `clipcache encode --repair`") from None
        self.arrays = {name: LazyArray(self.path, name, shape, dtype, offset)
                       for name, (shape, dtype, offset) in specs.items()}
        self.n = len(self.labels)
        for name, array in self.arrays.items():
            if known(name) and array.shape[image_axis(name)] != self.n:
                raise ClipCacheError(f"cache file {str(self.path)!r}: {name!r} has {array.shape} rows, labels {self.n}")

    @property
    def skipped(self) -> list[str]:
        """Images left out by --skip-bad-images when this file was encoded."""
        return list(self.build.get("skipped", []))

    @property
    def n_views(self) -> int:
        """V, the number of augmented views per image (0 when the split has none)."""
        return self.arrays["views/global"].shape[0] if "views/global" in self.arrays else 0

    def has(self, name: str) -> bool:
        return name in self.arrays

    def array(self, name: str) -> LazyArray:
        """The lazy array of dataset `name` ('global', 'spatial', 'views/global', ...)."""
        if name not in self.arrays:
            how = ENABLED_BY.get(name, "a schema dataset name")
            raise ClipCacheError(f"cache file {str(self.path)!r} has no {name!r}; re-encode with {how} "
                                 f"(present: {', '.join(sorted(self.arrays))})")
        return self.arrays[name]

    def read(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Rows of a row dataset (all when `rows` is None), in the order asked."""
        array = self.array(name)
        return array[()] if rows is None else array.take(rows)

    def read_views(self, name: str, rows: np.ndarray, views: np.ndarray) -> np.ndarray:
        """One view per image: out[i] = name[views[i], rows[i]] -> [B, ...]; reads each view's rows in order."""
        array = self.array(name)
        rows, views = np.asarray(rows, np.int64), np.asarray(views, np.int64)
        out = np.empty((len(rows), *array.shape[2:]), dtype=array.dtype)  # [B, ...]
        for view in np.unique(views):
            picked = np.flatnonzero(views == view)
            unique, inverse = np.unique(rows[picked], return_inverse=True)
            out[picked] = array[int(view), unique][inverse]
        return out

    def dask(self, name: str, rows_per_chunk: int = 4096) -> Any:
        """A dask array over dataset `name`, chunked along images; each task opens the file itself."""
        import dask.array as da

        array = self.array(name)
        chunks = tuple(rows_per_chunk if axis == image_axis(name) else size for axis, size in enumerate(array.shape))
        return da.from_array(array, chunks=chunks, lock=False, asarray=True, name=f"{self.path}:{name}")

    def batches(self, names: list[str], batch_size: int, shuffle: bool = True,
                seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Minibatches {'rows', 'labels', name...} streamed from the file, shuffled under `seed`."""
        order = np.random.default_rng(seed).permutation(self.n) if shuffle else np.arange(self.n)
        for start in range(0, self.n, batch_size):
            rows = order[start : start + batch_size]
            yield {"rows": rows, "labels": self.labels[rows], **{n: self.read(n, rows) for n in names}}

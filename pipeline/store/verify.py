"""`clipcache verify`: read every cache file and fitted run under a path in full and check it against its checksums,
whatever was verified before; name the damaged dataset of each damaged file. Imports no model code."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pipeline.digest import file_checksum
from pipeline.errors import ClipCacheError
from pipeline.layout import HEAD_META, HEAD_WEIGHTS, RUN_RECORD
from pipeline.store.expected import check_against_provenance
from pipeline.store.integrity import verify
from pipeline.store.provenance import ATTR_FINGERPRINT, edited, read_attrs
from pipeline.store.reader import dataset_specs, open_h5


def verify_file(path: Path) -> dict[str, Any]:
    """One cache file: 'ok (<n> datasets, <MiB> read)' or what is wrong with it."""
    try:
        with open_h5(path) as handle:
            provenance, build = read_attrs(handle, path)
            if edited(handle, provenance):
                raise ClipCacheError(f"{str(path)!r}: its provenance does not match its fingerprint")
            specs = dataset_specs(handle, path)
            check_against_provenance(specs, provenance, build, path)
            verify(handle, path, str(handle.attrs[ATTR_FINGERPRINT]), force=True)
    except ClipCacheError as exc:
        return {"path": str(path), "status": f"damaged ({exc})"}
    mib = sum(int(dtype.itemsize) * math.prod(shape) for shape, dtype, _ in specs.values()) / 2**20
    return {"path": str(path), "status": f"ok ({len(specs)} datasets, {mib:.1f} MiB read)"}


def verify_run(folder: Path) -> dict[str, Any]:
    """One run folder: the head's weights against head.json's checksum, and every file against run.json's."""
    try:
        meta = json.loads((folder / HEAD_META).read_text())
        if meta.get("weights_checksum") != file_checksum(folder / HEAD_WEIGHTS):
            raise ClipCacheError(f"{HEAD_WEIGHTS} does not match the checksum in {HEAD_META}")
        if (folder / RUN_RECORD).is_file():
            recorded = json.loads((folder / RUN_RECORD).read_text()).get("checksums") or {}
            for name, checksum in sorted(recorded.items()):
                if file_checksum(folder / name) != checksum:
                    raise ClipCacheError(f"{name} does not match the checksum in {RUN_RECORD}")
    except (OSError, ValueError) as exc:
        return {"path": str(folder), "status": f"damaged (cannot read: {exc})"}
    except ClipCacheError as exc:
        return {"path": str(folder), "status": f"damaged ({exc})"}
    return {"path": str(folder), "status": "ok (fitted run)"}


def verify_path(path: str | Path) -> list[dict[str, Any]]:
    """Every cache file and run folder under `path` (a file or a folder)."""
    path = Path(path)
    if not path.exists():
        raise ClipCacheError(f"nothing to verify at {str(path)!r}")
    if path.is_file():
        return [verify_file(path)]
    files = [f for f in sorted(path.rglob("*.h5")) if ".parts" not in f.parent.name and ".tmp-" not in f.name]
    runs = [f.parent for f in sorted(path.rglob(HEAD_META)) if not f.parent.name.startswith((".tmp-", ".old-"))]
    return [verify_file(f) for f in files] + [verify_run(r) for r in runs]

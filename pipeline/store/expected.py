"""What a cache file's provenance implies about its datasets, checked from the HDF5 metadata alone, before any
dataset is read: row counts, view counts, feature sizes and dtypes.

A file claiming 10^10 rows, a view axis the provenance does not ask for, or a feature size of another model is
refused in one line naming the file and the dataset, rather than discovered by an allocation or a wrong result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ClipCacheError
from pipeline.store.schema import image_axis, known

Specs = dict[str, tuple[tuple[int, ...], np.dtype, int | None]]  # as pipeline.store.reader.dataset_specs gives them
JOINT_SPACE = ("global", "spatial", "views/global", "views/spatial")  # last axis: the model's embed_dim
FIXED_DTYPES = {"labels": "int64", "item_index": "int64", "views/box": "int32"}


def expected_dtype(name: str, features: dict[str, Any]) -> str | None:
    """The dtype the provenance's features record implies for dataset `name` (None: not fixed by it)."""
    base = name.removeprefix("views/")
    if name in FIXED_DTYPES:
        return FIXED_DTYPES[name]
    key = "global_dtype" if base in ("global", "pooled") else "spatial_dtype" if base in ("spatial", "spatial_raw",
                                                                                 "late_tokens") else None
    return None if key is None or features.get(key) is None else str(features[key])


def fault(path: Path, name: str, what: str) -> ClipCacheError:
    return ClipCacheError(f"cache file {str(path)!r}: dataset {name!r} {what}, not what its provenance implies "
                          "(damaged or not written by clipcache); run `clipcache encode --repair`")


def check_split(specs: Specs, provenance: dict[str, Any], build: dict[str, Any], path: Path) -> None:
    """Every schema dataset of a split file against what its provenance states (rows: its images less those
    skipped; views: the count it records, none when it records `views: null`)."""
    skipped = build.get("skipped")
    rows = int(provenance["split"]["n_items"]) - (len(skipped) if isinstance(skipped, list) else 0)
    views = (provenance["views"] or {}).get("count", 0) if "views" in provenance else None
    dim = (provenance.get("encoder") or {}).get("embed_dim")
    features = provenance.get("features") or {}
    for name, (shape, dtype, _) in sorted(specs.items()):
        if not known(name):
            continue
        axis = image_axis(name)
        if len(shape) <= axis or shape[axis] != rows:
            raise fault(path, name, f"has shape {shape}: {shape[axis] if len(shape) > axis else 'no'} image rows "
                                    f"where {rows} are expected")
        if name.startswith("views/") and views is not None and shape[0] != views:
            raise fault(path, name, f"holds {shape[0]} views where {views} are expected")
        if name in JOINT_SPACE and dim is not None and shape[-1] != dim:
            raise fault(path, name, f"has feature size {shape[-1]} where the model's is {dim}")
        wanted = expected_dtype(name, features)
        if wanted is not None and np.dtype(dtype) != np.dtype(wanted):
            raise fault(path, name, f"is {np.dtype(dtype)} where {wanted} is expected")


def check_text(specs: Specs, provenance: dict[str, Any], path: Path) -> None:
    """Every template set of a text file: mean [C, D] and per_template [C, T, D] as its provenance implies."""
    dataset = provenance["dataset"]
    classes = dataset.get("n_classes", len(dataset["classnames"]) if "classnames" in dataset else None)
    dim = (provenance.get("encoder") or {}).get("embed_dim")
    templates = provenance.get("templates") or {}
    described = provenance.get("descriptions")
    for name, (shape, _, _) in sorted(specs.items()):
        if name.startswith("descriptions/"):
            check_descriptions(name, shape, described, classes, dim, path)
            continue
        parts = name.split("/")
        if len(parts) != 3 or parts[0] != "text" or parts[1] not in templates or parts[2] not in ("mean",
                                                                                                  "per_template"):
            raise fault(path, name, "is not one of its template sets' datasets")
        count = len(templates[parts[1]])
        wanted = (classes, dim) if parts[2] == "mean" else (classes, count, dim)
        if len(shape) != len(wanted) or any(w is not None and s != w for s, w in zip(shape, wanted, strict=True)):
            raise fault(path, name, f"has shape {shape} where {wanted} is expected")


def check_descriptions(name: str, shape: tuple[int, ...], described: dict[str, Any] | None, classes: int | None,
                       dim: int | None, path: Path) -> None:
    """The descriptions' datasets against the counts per class the provenance records."""
    if not described:
        raise fault(path, name, "holds descriptions the provenance does not record")
    total = sum(int(n) for n in described["counts"])
    wanted = {"descriptions/embeddings": (total, dim), "descriptions/offsets": (len(described["counts"]) + 1,),
              "descriptions/sentences": (total,), "descriptions/mean": (classes, dim)}.get(name)
    if wanted is None:
        raise fault(path, name, "is not one of the descriptions' datasets")
    if len(shape) != len(wanted) or any(w is not None and s != w for s, w in zip(shape, wanted, strict=True)):
        raise fault(path, name, f"has shape {shape} where {wanted} is expected")


def check_against_provenance(specs: Specs, provenance: dict[str, Any], build: dict[str, Any], path: Path) -> None:
    """A split file or a text file (which provenance says), checked before any dataset is read."""
    try:
        if "split" in provenance:
            check_split(specs, provenance, build, path)
        elif "templates" in provenance:
            check_text(specs, provenance, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ClipCacheError(f"cache file {str(path)!r}: its provenance lacks or mangles {exc} (not written by "
                             "clipcache?)") from None

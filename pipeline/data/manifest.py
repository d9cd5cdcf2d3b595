"""A manifest of (path, label[, split]) rows, as CSV with a header or as a JSON list of objects."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pipeline.data.custom import CUSTOM_DEFAULTS, with_custom_text
from pipeline.data.partition import PARTITION_DEFAULTS, partition
from pipeline.data.registry import (
    SPLITS,
    DataSet,
    ImageItem,
    inside_root,
    load_resource,
    register_dataset,
    take_options,
)
from pipeline.errors import ClipCacheError

MANIFEST_DEFAULTS: dict[str, Any] = {
    **PARTITION_DEFAULTS,
    "file": None,  # manifest file name under the root; None finds manifest.csv or manifest.json
    "allow_outside_root": False,  # image paths may leave the manifest's folder (absolute paths, '..')
}


def find_manifest(root: Path, name: str | None) -> Path:
    """The manifest file under `root`."""
    candidates = [root / name] if name else [root / "manifest.csv", root / "manifest.json"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ClipCacheError(f"no manifest {' or '.join(str(c) for c in candidates)!r} found")


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (header: path,label[,split]) or a JSON list of {path, label[, split]}."""
    try:
        if path.suffix.lower() == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
    except (OSError, ValueError) as exc:
        raise ClipCacheError(f"manifest {str(path)!r} cannot be read: {exc}") from exc
    if not isinstance(rows, list) or not rows:
        raise ClipCacheError(f"manifest {str(path)!r} holds no rows")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("path") or row.get("label") in (None, ""):
            raise ClipCacheError(f"manifest {str(path)!r} row {number} lacks 'path' or 'label'")
        if row.get("split") and row["split"] not in SPLITS:
            raise ClipCacheError(f"manifest {str(path)!r} row {number}: split {row['split']!r} is not one of {SPLITS}")
    return rows


@register_dataset("manifest")
def manifest(root: Path | None, options: dict[str, Any]) -> DataSet:
    """Images listed in a manifest; paths relative to the manifest's folder; class order = sorted labels."""
    if root is None:
        raise ClipCacheError("data set 'manifest' needs a root (the folder holding the manifest)")
    options = take_options("manifest", options, {**MANIFEST_DEFAULTS, **CUSTOM_DEFAULTS})
    custom = {k: options.pop(k) for k in CUSTOM_DEFAULTS}
    path = find_manifest(root, options["file"])
    rows = read_rows(path)
    classes = sorted({str(row["label"]) for row in rows})
    items = [ImageItem(inside_root(path.parent, str(row["path"]), f"manifest {str(path)!r} row {number}",
                                   bool(options["allow_outside_root"])), classes.index(str(row["label"])))
             for number, row in enumerate(rows, start=1)]
    if all(row.get("split") for row in rows):
        splits = {split: [item for item, row in zip(items, rows, strict=True) if row["split"] == split]
                  for split in SPLITS}
    else:
        splits = partition(items, options, str(path))
    template = load_resource("datasets/generic.json")["coop_template"]
    dataset = DataSet("manifest", root, tuple(c.replace("_", " ") for c in classes), splits, template, options)
    return with_custom_text(dataset, custom)

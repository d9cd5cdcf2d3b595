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


def image_file(manifest: Path, number: int, row: dict[str, str], allow_outside: bool) -> Path:
    """The image a manifest row names, inside the manifest's folder unless allowed; a path that exists but is not a
    regular file (a folder, a FIFO, a device) is refused here, before anything would block reading it."""
    where = f"manifest {str(manifest)!r} row {number}"
    image = inside_root(manifest.parent, str(row["path"]), where, allow_outside)
    if image.exists() and not image.is_file():
        raise ClipCacheError(f"{where}: {str(row['path'])!r} is not a regular file (only image files are read)")
    return image


def refuse_conflicts(manifest: Path, items: list[ImageItem], rows: list[dict[str, str]]) -> None:
    """One image listed under two labels would be trained or scored under both: refused, naming both rows."""
    first: dict[tuple[str, str], int] = {}
    for number, item in enumerate(items, start=1):
        seen = first.setdefault(item.sort_key(), number)
        if seen != number and items[seen - 1].label != item.label:
            raise ClipCacheError(f"manifest {str(manifest)!r} rows {seen} and {number} list the image "
                                 f"{str(rows[number - 1]['path'])!r} under two labels ({rows[seen - 1]['label']!r} "
                                 f"and {rows[number - 1]['label']!r}); keep one")


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
    items = [ImageItem(image_file(path, number, row, bool(options["allow_outside_root"])),
                       classes.index(str(row["label"]))) for number, row in enumerate(rows, start=1)]
    refuse_conflicts(path, items, rows)
    if all(row.get("split") for row in rows):
        splits = {split: [item for item, row in zip(items, rows, strict=True) if row["split"] == split]
                  for split in SPLITS}
    else:
        splits = partition(items, options, str(path))
    template = load_resource("datasets/generic.json")["coop_template"]
    dataset = DataSet("manifest", root, tuple(c.replace("_", " ") for c in classes), splits, template, options)
    return with_custom_text(dataset, custom)

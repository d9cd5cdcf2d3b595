"""`layout: parquet`: images as bytes in the rows of parquet or arrow files, read in place with pyarrow.

Two kinds of root:
- parquet files as img2dataset writes them (`output_format: parquet`): the image bytes in a binary column (`jpg`,
  or the first present of jpg, jpeg, png, webp, image; option `image_column`), the row key in `key` (else rows are
  keyed by number), the label, a whole number, in `label_column` (default: the first present of cls, label); class
  names from classnames.txt or `classnames_file`; files found as pipeline/data/containers.py says.
- a folder written by Hugging Face datasets' `save_to_disk`: a DatasetDict (`dataset_dict.json` {"splits": [...]},
  one sub-folder per split) or one Dataset (its `state.json` at the root: partitioned). Each split folder's
  `state.json` lists its `_data_files` (arrow IPC streams, `data-00000-of-00001.arrow`), its `dataset_info.json`
  the features: the image is the column of type Image (a struct {bytes, path}), the label the ClassLabel column
  (its `names` are the class names). The split `validation` is our val.
The label and key columns are read streaming (record batch by batch); the image column only when an image is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.data.containers import (
    CONTAINER_DEFAULTS,
    build_container_dataset,
    container_splits,
    finish,
    read_classnames,
)
from pipeline.data.members import KEY_COLUMN, open_arrow
from pipeline.data.registry import DataSet, register_dataset, take_options
from pipeline.errors import ClipCacheError

PARQUET_DEFAULTS: dict[str, Any] = {
    **CONTAINER_DEFAULTS,
    "image_column": None,  # the column of image bytes; None: the first present of IMAGE_COLUMNS
    "label_column": None,  # the column of labels; None: the first present of LABEL_COLUMNS
}
IMAGE_COLUMNS = ("jpg", "jpeg", "png", "webp", "image")
LABEL_COLUMNS = ("cls", "label")
HF_SPLITS = {"train": "train", "validation": "val", "valid": "val", "val": "val", "test": "test"}


def pick(path: Path, names: list[str], given: str | None, candidates: tuple[str, ...], what: str) -> str:
    """The column the option names, or the first present candidate; a missing one is named with the file's columns."""
    chosen = given or next((c for c in candidates if c in names), None)
    if chosen is None or chosen not in names:
        wanted = repr(given) if given else f"one of {', '.join(candidates)}"
        raise ClipCacheError(f"{str(path)!r} has no {what} column {wanted}; its columns: {', '.join(names)}")
    if "." in chosen:
        raise ClipCacheError(f"{str(path)!r}: {what} column {chosen!r} has a '.' (images are named <key>.<column>)")
    return chosen


def batches(path: Path) -> tuple[list[str], Any]:
    """(the file's column names, columns -> an iterator of record batches of those columns) of a parquet or arrow
    file (a parquet file read streaming, an arrow file memory-mapped)."""
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".arrow":
        table = open_arrow(path)
        return table.column_names, (lambda cols: table.select(cols).to_batches())
    handle = pq.ParquetFile(str(path))
    return handle.schema_arrow.names, (lambda cols: handle.iter_batches(columns=cols, batch_size=65536))


def table_lister(image_column: str | None, label_column: str | None) -> Any:
    """The (member '<key>.<image column>', label) pairs of one file."""

    def listed(path: Path) -> list[tuple[str, int]]:
        try:
            names, read = batches(path)
            image = pick(path, names, image_column, IMAGE_COLUMNS, "image")
            label = pick(path, names, label_column, LABEL_COLUMNS, "label")
            keyed = KEY_COLUMN in names and path.suffix.lower() != ".arrow"
            out: list[tuple[str, int]] = []
            for batch in read([KEY_COLUMN, label] if keyed else [label]):
                keys = batch.column(0).to_pylist() if keyed else range(len(out), len(out) + batch.num_rows)
                out += [(f"{key}.{image}", value) for key, value in zip(keys, labels(path, batch, label), strict=True)]
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError, its IO errors OSErrors
            raise ClipCacheError(f"{str(path)!r} cannot be read as parquet / arrow: {exc}") from None
        return out

    return listed


def labels(path: Path, batch: Any, column: str) -> list[int]:
    """The batch's labels (its last column), each a whole number."""
    values = batch.column(batch.num_columns - 1).to_pylist()
    wrong = next((v for v in values if isinstance(v, bool) or not isinstance(v, int)), None)
    if wrong is not None or None in values:
        raise ClipCacheError(f"{str(path)!r}: label column {column!r} holds {wrong!r}, not a whole number")
    return values


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClipCacheError(f"{str(path)!r} cannot be read as datasets' JSON: {exc}") from None


def hf_split(folder: Path) -> tuple[list[Path], str, str, tuple[str, ...]]:
    """(arrow files, image column, label column, class names) of one save_to_disk Dataset folder."""
    state, info = read_json(folder / "state.json"), read_json(folder / "dataset_info.json")
    try:
        files = [folder / entry["filename"] for entry in state["_data_files"]]
        features = info["features"]
        image = next(name for name, f in features.items() if f.get("_type") == "Image")
        label = next(name for name, f in features.items() if f.get("_type") == "ClassLabel")
        names = tuple(str(n) for n in features[label]["names"])
    except (KeyError, TypeError, AttributeError, StopIteration):
        raise ClipCacheError(f"{str(folder)!r}: state.json must list _data_files and dataset_info.json's features "
                             "hold one Image and one ClassLabel (with names) column") from None
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ClipCacheError(f"{str(folder / 'state.json')!r} lists {str(missing[0])!r}, which is not there")
    return files, image, label, names


def saved_dataset(root: Path, options: dict[str, Any]) -> DataSet:
    """A save_to_disk folder: a DatasetDict's splits, or one Dataset partitioned."""
    if (root / "dataset_dict.json").is_file():
        listed = read_json(root / "dataset_dict.json").get("splits", [])
        known = [s for s in listed if s in HF_SPLITS]
        if "train" not in known or "test" not in known:
            raise ClipCacheError(f"{str(root / 'dataset_dict.json')!r} lists splits {listed}; train and test are "
                                 "needed")
        parts = {HF_SPLITS[s]: hf_split(root / s) for s in known}
    else:
        parts = {"all": hf_split(root)}
    columns = {(image, label, names) for _, image, label, names in parts.values()}
    if len(columns) != 1:
        raise ClipCacheError(f"{str(root)!r}: the splits differ in their image / label columns or class names")
    (image, label, names), = columns
    lister = table_lister(options["image_column"] or image, options["label_column"] or label)
    if options["files"] is not None:
        raise ClipCacheError(f"{str(root)!r} is a datasets save_to_disk folder: its state.json files name its "
                             "files (the option files does not apply)")
    found: dict[str, list[Path]] | list[Path] = parts["all"][0] if "all" in parts else \
        {s: parts[s][0] if s in parts else [] for s in ("train", "val", "test")}
    names = read_classnames(root, options["classnames_file"]) if options["classnames_file"] else names
    return finish("parquet", root, options, names, container_splits(root, options, found, lister, names))


@register_dataset("parquet")
def parquet(root: Path | None, options: dict[str, Any]) -> DataSet:
    """Parquet files with image bytes, or a datasets save_to_disk folder (see the module's docstring)."""
    if root is None:
        raise ClipCacheError("data set 'parquet' needs a root (the folder holding the files)")
    options = take_options("parquet", options, PARQUET_DEFAULTS)
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        return saved_dataset(root, options)
    lister = table_lister(options["image_column"], options["label_column"])
    return build_container_dataset("parquet", root, options, ".parquet", lister)

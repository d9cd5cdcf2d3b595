"""The 11 few-shot benchmarks in CoOp's local layouts (DATASETS.md of CoOp); no downloads.

Nine read `split_zhou_<Name>.json` ({"train"|"val"|"test": [[relative path, label, class name], ...]}).
ImageNet reads `classnames.txt` and `images/{train,val}/<wnid>/`; its `val` folder is the test split and, unlike
CoOp (which validates on test), its validation shots are drawn from train images outside the few-shot set.
FGVC-Aircraft reads `variants.txt` and `images_variant_{train,val,test}.txt`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.data.folder import IMAGE_SUFFIXES, list_images
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

log = logging.getLogger(__name__)

# registry name -> the folder name CoOp gives the data set under $DATA
COOP_FOLDERS = {
    "imagenet": "imagenet", "caltech101": "caltech-101", "oxford_pets": "oxford_pets",
    "stanford_cars": "stanford_cars", "oxford_flowers": "oxford_flowers", "food101": "food-101",
    "fgvc_aircraft": "fgvc_aircraft", "sun397": "sun397", "dtd": "dtd", "eurosat": "eurosat", "ucf101": "ucf101",
    "imagenet_v2": "imagenetv2", "imagenet_sketch": "imagenet-sketch", "imagenet_a": "imagenet-adversarial",
    "imagenet_r": "imagenet-rendition",
}


def dataset_dir(name: str, root: Path | None, marker: str) -> Path:
    """The data set's own folder: `root` itself, or `root/<CoOp folder>` when `root` is CoOp's $DATA."""
    if root is None:
        raise ClipCacheError(f"data set {name!r} needs a root (its CoOp folder, or $DATA holding "
                             f"{COOP_FOLDERS[name]!r})")
    for candidate in (root, root / COOP_FOLDERS[name]):
        if (candidate / marker).exists():
            return candidate
    raise ClipCacheError(f"data set {name!r}: {marker!r} not found under {str(root)!r} (CoOp layout expected)")


def read_split_zhou(name: str, root: Path | None, allow_outside: bool = False) -> DataSet:
    """A data set described by CoOp's split_zhou JSON file."""
    spec = load_resource(f"datasets/{name}.json")
    folder = dataset_dir(name, root, spec["split_file"])
    split_path = folder / spec["split_file"]
    try:
        raw = json.loads(split_path.read_text(encoding="utf-8"))
        entries = {split: [(str(p), int(y), str(c)) for p, y, c in raw.get(split, [])] for split in SPLITS}
    except (OSError, ValueError, TypeError) as exc:
        raise ClipCacheError(f"split file {str(split_path)!r} is not CoOp's [[path, label, class], ...] JSON: "
                             f"{exc}") from exc
    names: dict[int, str] = {}
    for rows in entries.values():
        names.update({label: classname for _, label, classname in rows})
    if sorted(names) != list(range(len(names))):
        raise ClipCacheError(f"split file {str(split_path)!r}: labels are not 0..C-1")
    renames = spec.get("rename_classes", {})
    classnames = tuple(renames.get(names[i], names[i]).replace("_", " ") for i in range(len(names)))
    image_dir = folder / spec["image_dir"]
    where = f"split file {str(split_path)!r}"
    splits = {split: [ImageItem(inside_root(image_dir, p, where, allow_outside), y) for p, y, _ in rows]
              for split, rows in entries.items()}
    return DataSet(name, folder, classnames, splits, spec["coop_template"])


def make_split_zhou_builder(name: str) -> None:
    """Register one split_zhou data set under `name`."""

    @register_dataset(name)
    def build(root: Path | None, options: dict[str, Any]) -> DataSet:
        options = take_options(name, options, {"allow_outside_root": False})  # split paths may leave the folder
        return read_split_zhou(name, root, bool(options["allow_outside_root"]))


for _name in ("caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101", "sun397", "dtd",
              "eurosat", "ucf101"):
    make_split_zhou_builder(_name)


@register_dataset("imagenet")
def imagenet(root: Path | None, options: dict[str, Any]) -> DataSet:
    """ImageNet as CoOp lays it out: classnames.txt ('<wnid> <name>' per line) and images/{train,val}/<wnid>/.

    As CoOp's `ImageNet.read_data`, the classes are the wnid folders present under images/train, in sorted order,
    named by classnames.txt (a line without its folder is left out and logged); test images are read by wnid from
    images/val/<wnid>/. Within a class the images are in sorted file-name order (CoOp lists them unsorted, in the file
    system's order)."""
    take_options("imagenet", options, {})
    folder = dataset_dir("imagenet", root, "classnames.txt")
    names = wnid_names(folder / "classnames.txt")
    train_dir, val_dir = folder / "images" / "train", folder / "images" / "val"
    for sub in (train_dir, val_dir):
        if not sub.is_dir():
            raise ClipCacheError(f"data set 'imagenet': {str(sub)!r} is missing (CoOp's layout: images/train/<wnid>/ "
                                 "and images/val/<wnid>/)")
    flat = [p for p in val_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if flat:
        raise ClipCacheError(f"data set 'imagenet': {str(val_dir)!r} holds {len(flat)} image file(s) directly; "
                             "CoOp's layout needs images/val/<wnid>/<image> (the official validation download is "
                             "flat: sort it into one folder per wnid with its ground-truth labels first)")
    wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    unnamed = [w for w in wnids if w not in names]
    if unnamed:
        raise ClipCacheError(f"data set 'imagenet': folder images/train/{unnamed[0]} has no line in "
                             f"{str(folder / 'classnames.txt')!r}")
    if len(wnids) < len(names):
        log.info("imagenet: %d of the %d classes of classnames.txt have no images/train folder; the %d present are "
                 "kept, as CoOp does", len(names) - len(wnids), len(names), len(wnids))
    splits: dict[str, list[ImageItem]] = {"val": []}
    for split, sub in (("train", train_dir), ("test", val_dir)):
        splits[split] = [ImageItem(p, label) for label, w in enumerate(wnids) for p in list_images(sub / w)]
    classnames = tuple(names[w] for w in wnids)
    return DataSet("imagenet", folder, classnames, splits, load_resource("datasets/imagenet.json")["coop_template"],
                   class_ids=tuple(wnids))


def wnid_names(path: Path) -> dict[str, str]:
    """classnames.txt of CoOp's ImageNet folders: '<wnid> <class name>' per line, in the file's order (Dassl's
    `ImageNet.read_classnames`); a line without a name or a wnid twice is named."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClipCacheError(f"{str(path)!r} cannot be read as '<wnid> <class name>' lines: {exc}") from exc
    names: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        wnid, _, name = line.strip().partition(" ")
        if not name.strip() or wnid in names:
            problem = "has no class name" if not name.strip() else f"repeats wnid {wnid!r}"
            raise ClipCacheError(f"{str(path)!r} line {number} {problem} ('<wnid> <class name>' per line expected)")
        names[wnid] = name  # as Dassl: the rest of the stripped line after the first space
    return names


@register_dataset("fgvc_aircraft")
def fgvc_aircraft(root: Path | None, options: dict[str, Any]) -> DataSet:
    """FGVC-Aircraft: variants.txt (class order) and images_variant_<split>.txt ('<image id> <variant>')."""
    take_options("fgvc_aircraft", options, {})
    folder = dataset_dir("fgvc_aircraft", root, "variants.txt")
    classnames = tuple(line.strip() for line in (folder / "variants.txt").read_text().splitlines() if line.strip())
    splits = {}
    for split in SPLITS:
        listing = folder / f"images_variant_{split}.txt"
        if not listing.is_file():
            raise ClipCacheError(f"data set 'fgvc_aircraft': split file {str(listing)!r} is missing")
        rows = [line.strip().split(" ", 1) for line in listing.read_text().splitlines() if line.strip()]
        unknown = [variant for _, variant in rows if variant not in classnames]
        if unknown:
            raise ClipCacheError(f"{str(listing)!r}: variant {unknown[0]!r} is not in variants.txt")
        splits[split] = [ImageItem(folder / "images" / f"{image}.jpg", classnames.index(v)) for image, v in rows]
    template = load_resource("datasets/fgvc_aircraft.json")["coop_template"]
    return DataSet("fgvc_aircraft", folder, classnames, splits, template)

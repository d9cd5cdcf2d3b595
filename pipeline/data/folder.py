"""Generic image folder: `root/<class>/*.jpg`, or `root/{train,val,test}/<class>/*.jpg` with its own splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.data.custom import CUSTOM_DEFAULTS, with_custom_text
from pipeline.data.partition import PARTITION_DEFAULTS, partition
from pipeline.data.registry import DataSet, ImageItem, inside_root, load_resource, register_dataset, take_options
from pipeline.errors import ClipCacheError

LINK_DEFAULTS = {"allow_outside_root": False}  # image files may be symbolic links leading out of the root
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def list_images(folder: Path) -> list[Path]:
    """Image files directly or recursively under `folder`, sorted for a stable order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def class_folders(root: Path) -> list[Path]:
    """Sub-folders of `root`, one per class, sorted by name (the class index order)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ClipCacheError(f"image folder {str(root)!r} has no class sub-folders")
    return folders


def read_class_tree(root: Path, class_names: list[str]) -> list[ImageItem]:
    """Items of `root/<class>/...` for the given class folder names; a missing folder is empty."""
    items: list[ImageItem] = []
    for label, name in enumerate(class_names):
        if (root / name).is_dir():
            items += [ImageItem(path, label) for path in list_images(root / name)]
    return items


def build_folder(
    name: str, root: Path, options: dict[str, Any], renames: dict[str, str], coop_template: str
) -> DataSet:
    """Shared body of the folder-based layouts (generic folder, textile)."""
    options = take_options(name, options, PARTITION_DEFAULTS)
    if all((root / split).is_dir() for split in ("train", "test")):
        folders = [p.name for p in class_folders(root / "train")]
        splits = {split: read_class_tree(root / split, folders) for split in ("train", "val", "test")}
    else:
        folders = [p.name for p in class_folders(root)]
        splits = partition(read_class_tree(root, folders), options, str(root))
    classnames = tuple(renames.get(folder, folder.replace("_", " ")) for folder in folders)
    return DataSet(name, root, classnames, splits, coop_template, options)


@register_dataset("image_folder")
def image_folder(root: Path | None, options: dict[str, Any]) -> DataSet:
    """One sub-folder per class; fixed seeded partition unless train/ and test/ folders exist; class names and
    templates from files when `classnames_file` / `templates_file` name them (pipeline.data.custom)."""
    if root is None:
        raise ClipCacheError("data set 'image_folder' needs a root (encode.dataset.root)")
    options = take_options("image_folder", options, {**PARTITION_DEFAULTS, **CUSTOM_DEFAULTS, **LINK_DEFAULTS})
    custom = {k: options.pop(k) for k in CUSTOM_DEFAULTS}
    allow_outside = bool(options.pop("allow_outside_root"))
    dataset = build_folder("image_folder", root, options, {}, load_resource("datasets/generic.json")["coop_template"])
    for items in dataset.splits.values():  # a symbolic link leading out of the root is refused, as in a manifest
        for item in items:
            inside_root(root, item.path.relative_to(root).as_posix(), f"image folder {str(root)!r}", allow_outside)
    return with_custom_text(dataset, custom)

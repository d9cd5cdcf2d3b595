"""What the container layouts (webdataset shards, parquet / arrow files) share: finding their files, class names and
templates, splits, and the order of their items.

A root is a folder (the grid checks it). Its files are found
- from the `files` option: a brace pattern (`shards-{000..009}.tar`), a list of names, or a mapping of split ->
  pattern or list; names relative to the root;
- else from split sub-folders `train/`, `test/` and an optional `val/` (CLIP_benchmark's layout);
- else from the files directly under the root, partitioned per class with the seeded fractions (as image_folder).
Class names come from `classnames.txt` at the root (CLIP_benchmark's file) or the `classnames_file` option, one per
line in label order; prompt templates from `zeroshot_classification_templates.txt` or `templates_file`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import braceexpand

from pipeline.data.custom import CUSTOM_DEFAULTS, read_lines, with_custom_text
from pipeline.data.partition import PARTITION_DEFAULTS, partition
from pipeline.data.registry import SPLITS, DataSet, ImageItem, inside_root, load_resource
from pipeline.errors import ClipCacheError

CLASSNAMES_FILE = "classnames.txt"  # CLIP_benchmark's names of a data set's classes, one per line
TEMPLATES_FILE = "zeroshot_classification_templates.txt"  # CLIP_benchmark's prompt templates, one per line
CONTAINER_DEFAULTS: dict[str, Any] = {
    **PARTITION_DEFAULTS, **CUSTOM_DEFAULTS,
    "files": None,  # brace pattern, list, or {split: pattern or list} of container files under the root
    "allow_outside_root": False,  # the files may lie outside the root (absolute paths, '..')
}

Lister = Callable[[Path], list[tuple[str, int]]]  # container file -> [(member, label)] in file order


def expand(root: Path, given: Any, allow_outside: bool) -> list[Path]:
    """The files a pattern or list names, in its order, each an existing file under the root."""
    names = list(braceexpand.braceexpand(given)) if isinstance(given, str) else given
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ClipCacheError(f"data set at {str(root)!r}: option files must be a brace pattern, a list of file names "
                             f"or a mapping of split -> either; got {given!r}")
    paths = [inside_root(root, name, f"data set at {str(root)!r} (option files)", allow_outside) for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ClipCacheError(f"data set at {str(root)!r}: {str(missing[0])!r} is not a file (option files: {given!r})")
    return paths


def find_files(root: Path, options: dict[str, Any], suffix: str) -> dict[str, list[Path]] | list[Path]:
    """{split: files} when the data set has its own splits, else one list to partition."""
    given, allow = options["files"], bool(options["allow_outside_root"])
    if isinstance(given, dict):
        unknown = sorted(set(given) - set(SPLITS))
        if unknown:
            raise ClipCacheError(f"data set at {str(root)!r}: option files names split {unknown[0]!r}; splits are "
                                 f"{', '.join(SPLITS)}")
        return {split: expand(root, given[split], allow) if split in given else [] for split in SPLITS}
    if given is not None:
        return expand(root, given, allow)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return {split: sorted((root / split).glob(f"*{suffix}")) for split in SPLITS}
    found = sorted(root.glob(f"*{suffix}"))
    if not found:
        raise ClipCacheError(f"data set at {str(root)!r} has no {suffix} files (directly, under train/ and test/, or "
                             f"named by the option files)")
    return found


def read_classnames(root: Path, option: str | None) -> tuple[str, ...]:
    """The class names in label order, from `classnames_file` or the root's classnames.txt."""
    if option is None and not (root / CLASSNAMES_FILE).is_file():
        raise ClipCacheError(f"data set at {str(root)!r} has no class names: put {CLASSNAMES_FILE} (one name per "
                             f"line, in label order) at its root or name a file with the option classnames_file")
    path, names = read_lines(root, option or CLASSNAMES_FILE, "classnames_file")
    if not names:
        raise ClipCacheError(f"classnames_file {str(path)!r} holds no class name")
    return tuple(names)


def check_label(label: int, classnames: tuple[str, ...], where: str) -> int:
    if not 0 <= label < len(classnames):
        raise ClipCacheError(f"{where}: label {label} is outside the {len(classnames)} class names (0..."
                             f"{len(classnames) - 1})")
    return label


def list_items(files: list[Path], lister: Lister, classnames: tuple[str, ...]) -> list[ImageItem]:
    """Every file's items, in file order, labels checked against the class names."""
    items: list[ImageItem] = []
    for path in files:
        listed = lister(path)
        seen: set[str] = set()
        for member, _ in listed:  # one name, one image: the identity of an item is (file, member)
            if member in seen:
                raise ClipCacheError(f"{path}#{member}: two images of the file have this name")
            seen.add(member)
        items += [ImageItem(path, check_label(label, classnames, f"{path}#{member}"), member)
                  for member, label in listed]
    return items


def container_splits(root: Path, options: dict[str, Any], found: dict[str, list[Path]] | list[Path],
                     lister: Lister, classnames: tuple[str, ...]) -> dict[str, list[ImageItem]]:
    """The split lists: the data set's own, or a seeded partition kept in file order (so that a worker reads each
    container front to back)."""
    if isinstance(found, dict):
        return {split: list_items(files, lister, classnames) for split, files in found.items()}
    items = list_items(found, lister, classnames)
    position = {(item.path, item.member): i for i, item in enumerate(items)}
    splits = partition(items, {k: options[k] for k in PARTITION_DEFAULTS}, str(root))
    return {split: sorted(chosen, key=lambda item: position[item.path, item.member])
            for split, chosen in splits.items()}


def with_templates(dataset: DataSet, option: str | None) -> DataSet:
    """The data set with its own prompt templates: `templates_file`, else the root's CLIP_benchmark file if any."""
    name = option or (TEMPLATES_FILE if (dataset.root / TEMPLATES_FILE).is_file() else None)
    read = with_custom_text(dataset, {"templates_file": name}) if name else dataset
    return dataclasses.replace(read, options={**dataset.options, **({"templates_file": option} if option else {})})


def finish(name: str, root: Path, options: dict[str, Any], classnames: tuple[str, ...],
           splits: dict[str, list[ImageItem]]) -> DataSet:
    """The data set with its templates; the options given are recorded (those left unset are not)."""
    recorded = {k: v for k, v in options.items() if k != "templates_file" and v is not None}
    template = load_resource("datasets/generic.json")["coop_template"]
    return with_templates(DataSet(name, root, classnames, splits, template, recorded), options["templates_file"])


def build_container_dataset(name: str, root: Path, options: dict[str, Any], suffix: str, lister: Lister) -> DataSet:
    """A container layout's data set: files found, class names read, items listed, templates added."""
    found = find_files(root, options, suffix)
    classnames = read_classnames(root, options["classnames_file"])
    return finish(name, root, options, classnames, container_splits(root, options, found, lister, classnames))

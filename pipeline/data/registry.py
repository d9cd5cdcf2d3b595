"""The data-set registry: a data set is a root on disk turned into labelled train/val/test image lists."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.errors import ClipCacheError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageItem:
    """One labelled image: a file, or a member of a container file (a tar shard's sample, a parquet/arrow row)."""

    path: Path  # absolute path of the image file, or of the container (tar shard, parquet or arrow file)
    label: int  # class index into DataSet.classnames
    # inside a container: the tar member's name (sample key + image extension, '000123.jpg') or the row's key (the
    # img2dataset `key` column, else the row number); "" for a plain file (whose identities are those they always were)
    member: str = ""

    def name(self, root: Path | None = None) -> str:
        """The image's identity: its path (relative to `root` when inside it), '#<member>' for a container's member."""
        path = self.path.relative_to(root).as_posix() if root and self.path.is_relative_to(root) else str(self.path)
        return f"{path}#{self.member}" if self.member else path

    def sort_key(self) -> tuple[str, str]:
        """A stable order of images: by container path, then member."""
        return str(self.path), self.member


@dataclass(frozen=True)
class DataSet:
    """A labelled data set with fixed train/val/test splits and its prompt material."""

    name: str  # the data set's own name (the grid's `name`); its layout's name when it has no other
    root: Path  # the directory the layout was read from
    classnames: tuple[str, ...]  # index -> class name used in prompts
    splits: dict[str, list[ImageItem]]  # 'train' / 'val' / 'test' -> items; 'val' may be empty
    coop_template: str  # CoOp's single hand-written template for this data set
    options: dict[str, Any] = field(default_factory=dict)  # the layout options it was built with
    # its own prompt templates (a templates_file), the 'coop' set instead of coop_template
    templates: tuple[str, ...] = ()
    layout: str = ""  # the registered layout that read it; "" until create_dataset names it
    # each class's identifier in the data set's own scheme (ImageNet's wnids), index-aligned with classnames; () for
    # layouts that have none. Transfer between data sets maps classes by it (names can repeat: ImageNet's 'missile')
    class_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        return describe(self.name, self.layout)

    def file_list_hash(self) -> str:
        """sha256 over every split's (relative path, label) and the class names: the data set's identity."""
        digest = hashlib.sha256()
        digest.update(json.dumps(list(self.classnames)).encode())
        for split in SPLITS:
            for item in self.splits.get(split, []):
                digest.update(f"{split}\t{item.name(self.root)}\t{item.label}\n".encode())
        return digest.hexdigest()


def describe(name: str | None, layout: str) -> str:
    """How messages name a data set: 'parts (layout image_folder)', or just 'textile' when its name is its layout's."""
    return name if name and layout in ("", name) else f"{name} (layout {layout})" if name else layout


Builder = Callable[[Path | None, dict[str, Any]], DataSet]
_REGISTRY: dict[str, Builder] = {}
_TEST_ONLY: set[str] = set()  # layouts with a test split only (ImageNet-V2, -Sketch, -A, -R): scored, never fitted


def register_dataset(name: str, test_only: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: join a builder `(root, options) -> DataSet` to the registry under `name`; `test_only`: the layout
    has no training images (encode writes its test and text files only; sweeps score it as a transfer target)."""

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"data set {name!r} is registered twice")
        _REGISTRY[name] = builder
        if test_only:
            _TEST_ONLY.add(name)
        return builder

    return wrap


def is_test_only(layout: str) -> bool:
    """Whether a registered layout holds a test split only (read from the registry, no image is listed)."""
    return layout in _TEST_ONLY


def list_datasets() -> list[str]:
    """Registered data-set names, sorted."""
    return sorted(_REGISTRY)


def create_dataset(layout: str, root: str | Path | None, options: dict[str, Any] | None = None,
                   name: str | None = None) -> DataSet:
    """Build a data set with the registered `layout` from its local root; `name` is its own name (the grid's), which
    every record, table and message then carries (the layout's name when there is none)."""
    label = describe(name, layout)
    if layout not in _REGISTRY:
        raise ClipCacheError(f"unknown data set {label!r}; known layouts: {', '.join(list_datasets())}")
    root_path = None if root is None else Path(root).expanduser().resolve()
    if root_path is not None and not root_path.is_dir():
        raise ClipCacheError(f"data set root {str(root_path)!r} for {label!r} is not a directory")
    dataset = replace(_REGISTRY[layout](root_path, dict(options or {})), name=name or layout, layout=layout)
    for split in ("test",) if layout in _TEST_ONLY else ("train", "test"):
        if not dataset.splits.get(split):
            raise ClipCacheError(f"data set {label!r} at {str(dataset.root)!r} has no images in its {split!r} split")
    return dataset


def layout_of(dataset_prov: dict[str, Any]) -> str:
    """The layout a cached data set was read with, from its provenance record (`layout` is kept only where it differs
    from the name): what the authors' per-data-set rules key on (ImageNet's templates, CoOp's epochs)."""
    return str(dataset_prov.get("layout") or dataset_prov["name"])


def load_resource(filename: str) -> dict[str, Any]:
    """Read one JSON file shipped in pipeline/data/resources/."""
    text = resources.files("pipeline.data").joinpath("resources", filename).read_text(encoding="utf-8")
    return json.loads(text)


def inside_root(root: Path, relative: str, where: str, allow_outside: bool = False) -> Path:
    """The image path `relative` resolved against `root`; refused, naming `where`, when it leaves the root (an absolute
    path, '..', or a symbolic link pointing out) unless the user allowed it."""
    path = (root / relative).resolve()
    if not allow_outside and not path.is_relative_to(root.resolve()):
        raise ClipCacheError(f"{where}: image path {relative!r} leaves the data root {str(root)!r} "
                             f"(set the data set option allow_outside_root: true if that is intended)")
    return path


def take_options(name: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Merge `options` over `defaults`, refusing keys the layout does not know."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ClipCacheError(f"data set {name!r} has no option {unknown[0]!r}; known: {', '.join(sorted(defaults))}")
    return {**defaults, **options}

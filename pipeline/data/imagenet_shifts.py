"""ImageNet's four test-only shifts, in the folders CoOp's DATASETS.md lays out (the archives their users download,
with ImageNet's classnames.txt copied beside them). Each is a test split only: a run fitted on ImageNet scores it
(train.protocol: domain_generalisation); its classes carry their wnids, so a head with per-class parameters keeps the
columns of the classes a shift holds.

Classes and labels follow CoOp's readers (github KaiyangZhou/CoOp at ff61507c790454bce7c5052c3ac39e60772f1f89,
datasets/imagenetv2.py, imagenet_sketch.py, imagenet_a.py, imagenet_r.py):
- ImageNet-V2 (`imagenetv2/imagenetv2-matched-frequency-format-val/<0..999>/`): folder i is the i-th wnid of
  classnames.txt, label i.
- ImageNet-Sketch (`imagenet-sketch/images/<wnid>/`, or `sketch/<wnid>/` as the archive unpacks), ImageNet-A
  (`imagenet-adversarial/imagenet-a/<wnid>/`, 200 classes) and ImageNet-R (`imagenet-rendition/imagenet-r/<wnid>/`,
  200 classes): labels over the wnid folders present, sorted (README.txt and other files ignored).
classnames.txt is read from the shift's own folder, as CoOp does, or else from `imagenet/classnames.txt` beside it
under CoOp's $DATA. Within a class the images are in sorted file-name order (CoOp lists them in the file system's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.data.coop import COOP_FOLDERS, wnid_names
from pipeline.data.folder import list_images
from pipeline.data.registry import DataSet, ImageItem, load_resource, register_dataset, take_options
from pipeline.errors import ClipCacheError

# layout -> (image folders it accepts, first the one CoOp names; how its class folders are named)
IMAGE_DIRS = {"imagenet_v2": (("imagenetv2-matched-frequency-format-val",), "index"),
              "imagenet_sketch": (("images", "sketch"), "wnid"), "imagenet_a": (("imagenet-a",), "wnid"),
              "imagenet_r": (("imagenet-r",), "wnid")}


def shift_folder(layout: str, root: Path | None) -> tuple[Path, Path]:
    """(the shift's own folder, its image folder): `root` itself or `root/<CoOp folder>` when `root` is $DATA."""
    if root is None:
        raise ClipCacheError(f"data set {layout!r} needs a root (its CoOp folder {COOP_FOLDERS[layout]!r}, or $DATA "
                             "holding it)")
    accepted, _ = IMAGE_DIRS[layout]
    for folder in (root, root / COOP_FOLDERS[layout]):
        for name in accepted:
            if (folder / name).is_dir():
                return folder, folder / name
    raise ClipCacheError(f"data set {layout!r}: no {' or '.join(accepted)} folder under {str(root)!r} (CoOp's layout: "
                         f"{COOP_FOLDERS[layout]}/{accepted[0]}/<{'0..999' if layout == 'imagenet_v2' else 'wnid'}>/)")


def classnames_file(layout: str, folder: Path) -> Path:
    """classnames.txt in the shift's folder, else ImageNet's beside it under $DATA; named when neither exists."""
    for candidate in (folder / "classnames.txt", folder.parent / COOP_FOLDERS["imagenet"] / "classnames.txt"):
        if candidate.is_file():
            return candidate
    raise ClipCacheError(f"data set {layout!r}: {str(folder / 'classnames.txt')!r} is missing (copy ImageNet's "
                         "classnames.txt there, as CoOp's DATASETS.md says)")


def class_dirs(layout: str, images: Path, names: dict[str, str]) -> list[tuple[str, Path]]:
    """(wnid, folder) per class in label order."""
    if IMAGE_DIRS[layout][1] == "index":  # ImageNet-V2: folder i holds the i-th class of classnames.txt
        wnids = list(names)
        present = sorted(int(p.name) for p in images.iterdir() if p.is_dir() and p.name.isdigit())
        if not present or present[-1] >= len(wnids):
            raise ClipCacheError(f"data set {layout!r}: {str(images)!r} needs folders 0..{len(wnids) - 1} (one per "
                                 f"line of classnames.txt), found {present[-1:] or 'none'}")
        return [(wnids[i], images / str(i)) for i in range(len(wnids))]
    wnids = sorted(p.name for p in images.iterdir() if p.is_dir() and not p.name.startswith("."))
    unnamed = [w for w in wnids if w not in names]
    if not wnids or unnamed:
        problem = f"folder {unnamed[0]!r} has no line in classnames.txt" if unnamed else "holds no class folder"
        raise ClipCacheError(f"data set {layout!r}: {str(images)!r} {problem} (CoOp's layout: one folder per wnid)")
    return [(w, images / w) for w in wnids]


def read_shift(layout: str, root: Path | None, options: dict[str, Any]) -> DataSet:
    """One ImageNet shift as a test-only data set."""
    take_options(layout, options, {})
    folder, images = shift_folder(layout, root)
    names = wnid_names(classnames_file(layout, folder))
    classes = class_dirs(layout, images, names)
    test = [ImageItem(path, label) for label, (_, class_dir) in enumerate(classes)
            for path in (list_images(class_dir) if class_dir.is_dir() else [])]
    template = load_resource("datasets/imagenet.json")["coop_template"]  # CoOp's "a photo of a {}." for all four
    return DataSet(layout, folder, tuple(names[w] for w, _ in classes), {"train": [], "val": [], "test": test},
                   template, class_ids=tuple(w for w, _ in classes))


def make_shift(layout: str) -> None:
    """Register one shift under `layout`, as a test-only layout."""

    @register_dataset(layout, test_only=True)
    def build(root: Path | None, options: dict[str, Any]) -> DataSet:
        return read_shift(layout, root, options)


for _layout in IMAGE_DIRS:
    make_shift(_layout)

"""ImageNet-V2, -Sketch, -A and -R in CoOp's folders, read as CoOp's readers read them (an independent transcription
of datasets/imagenetv2.py, imagenet_sketch.py, imagenet_a.py and imagenet_r.py at KaiyangZhou/CoOp ff61507 runs on
the same folders), test-only, their classes keyed by wnid."""

from __future__ import annotations

import os
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest

from pipeline.data import create_dataset, is_test_only
from pipeline.errors import ClipCacheError
from tests.helpers import SHIFT_FOLDERS, make_image, make_imagenet_shift

NAMES = ["tench", "goldfish", "great white shark", "missile", "missile"]  # CLIP's names repeat ('missile')


def coop_classnames(text_file: Path) -> OrderedDict[str, str]:
    """ImageNet.read_classnames: folder -> the rest of the stripped line."""
    classnames: OrderedDict[str, str] = OrderedDict()
    for line in text_file.read_text().splitlines():
        parts = line.strip().split(" ")
        classnames[parts[0]] = " ".join(parts[1:])
    return classnames


def listdir_nohidden(path: Path, sort: bool = False) -> list[str]:
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    return sorted(items) if sort else items


def coop_items(layout: str, data_root: Path) -> list[tuple[str, int, str]]:
    """(image path, label, class name) as CoOp's reader of `layout` yields them."""
    folder, image_dir_name = SHIFT_FOLDERS[layout]
    classnames = coop_classnames(data_root / folder / "classnames.txt")
    image_dir = data_root / folder / image_dir_name
    items = []
    if layout == "imagenet_v2":
        folders = list(classnames.keys())
        for label in range(len(folders)):  # CoOp: range(1000)
            class_dir = image_dir / str(label)
            for name in listdir_nohidden(class_dir) if class_dir.is_dir() else []:
                items.append((str(class_dir / name), label, classnames[folders[label]]))
        return items
    folders = [f for f in listdir_nohidden(image_dir, sort=True) if f != "README.txt"]
    for label, wnid in enumerate(folders):
        for name in listdir_nohidden(image_dir / wnid):
            items.append((str(image_dir / wnid / name), label, classnames[wnid]))
    return items


@pytest.mark.parametrize("layout", sorted(SHIFT_FOLDERS))
def test_each_shift_reads_as_coops_reader(layout: str, tmp_path: Path) -> None:
    """Classes, labels and images as CoOp's reader; a test split only; wnids as class ids. A and R hold a subset."""
    classes = [1, 3, 4] if layout in ("imagenet_a", "imagenet_r") else list(range(len(NAMES)))
    make_imagenet_shift(tmp_path, layout, NAMES, classes, 2)
    dataset = create_dataset(layout, tmp_path, {})
    ours = sorted((str(i.path), i.label, dataset.classnames[i.label]) for i in dataset.splits["test"])
    assert ours == sorted(coop_items(layout, tmp_path))
    assert is_test_only(layout) and not is_test_only("imagenet")
    assert dataset.splits["train"] == [] and dataset.splits["val"] == []
    expected = [f"n{c:08d}" for c in (classes if layout != "imagenet_v2" else range(len(NAMES)))]
    assert list(dataset.class_ids) == expected and len(dataset.classnames) == len(expected)
    assert create_dataset(layout, tmp_path / SHIFT_FOLDERS[layout][0], {}).classnames == dataset.classnames


def test_sketch_accepts_the_archives_sketch_folder_and_classnames_from_imagenet_beside_it(tmp_path: Path) -> None:
    """The ImageNet-Sketch archive unpacks to sketch/<wnid>/; classnames.txt may be ImageNet's, under $DATA."""
    make_imagenet_shift(tmp_path, "imagenet_sketch", NAMES, [0, 2], 1)
    root = tmp_path / "imagenet-sketch"
    (root / "images").rename(root / "sketch")
    (tmp_path / "imagenet").mkdir()
    (root / "classnames.txt").rename(tmp_path / "imagenet" / "classnames.txt")
    dataset = create_dataset("imagenet_sketch", tmp_path, {})
    assert dataset.classnames == ("tench", "great white shark") and dataset.class_ids == ("n00000000", "n00000002")


def test_shift_layout_errors_name_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(ClipCacheError, match=r"'imagenet_a': no imagenet-a folder under .*CoOp's layout: "
                                             r"imagenet-adversarial/imagenet-a/<wnid>/"):
        create_dataset("imagenet_a", tmp_path, {})
    make_imagenet_shift(tmp_path, "imagenet_r", NAMES, [1], 1)
    (tmp_path / "imagenet-rendition" / "classnames.txt").unlink()
    with pytest.raises(ClipCacheError, match=r"classnames\.txt' is missing \(copy ImageNet's classnames\.txt there"):
        create_dataset("imagenet_r", tmp_path, {})
    make_imagenet_shift(tmp_path, "imagenet_r", NAMES, [1], 1)
    make_image(tmp_path / "imagenet-rendition" / "imagenet-r" / "n07777777" / "x.jpg", 0, 1)
    with pytest.raises(ClipCacheError, match=r"folder 'n07777777' has no line in classnames\.txt"):
        create_dataset("imagenet_r", tmp_path, {})
    make_imagenet_shift(tmp_path, "imagenet_v2", NAMES, [0], 1)
    make_image(tmp_path / "imagenetv2" / SHIFT_FOLDERS["imagenet_v2"][1] / "5" / "x.jpg", 0, 1)
    with pytest.raises(ClipCacheError, match=r"needs folders 0\.\.4 \(one per line of classnames\.txt\), found \[5\]"):
        create_dataset("imagenet_v2", tmp_path, {})
    shutil.rmtree(tmp_path / "imagenetv2" / SHIFT_FOLDERS["imagenet_v2"][1] / "0")
    shutil.rmtree(tmp_path / "imagenetv2" / SHIFT_FOLDERS["imagenet_v2"][1] / "5")
    with pytest.raises(ClipCacheError, match=r"needs folders 0\.\.4 .*found none"):
        create_dataset("imagenet_v2", tmp_path, {})
    (tmp_path / "imagenetv2" / "classnames.txt").write_text("n00000000 tench\nn00000001\n")
    with pytest.raises(ClipCacheError, match=r"line 2 has no class name"):
        create_dataset("imagenet_v2", tmp_path, {})

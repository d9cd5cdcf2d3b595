"""Test helpers: tiny images on disk and tiny encode runs (random-weight open_clip configs, real files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from pipeline.backbone.naming import model_label
from pipeline.layout import pair_label

CONFIGS = Path(__file__).parent / "configs"
TINY = {"resnet": str(CONFIGS / "tiny-RN.json"), "vit": str(CONFIGS / "tiny-ViT.json")}
# how the tiny models are named (by content: <stem>-<sha256[:8]>) and their cache / run folders with random weights
LABEL = {kind: model_label(path) for kind, path in TINY.items()}
PAIR = {kind: pair_label(path, "none") for kind, path in TINY.items()}


def make_image(path: Path, label: int, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A small JPEG/PNG whose colour depends on the class, with noise so every image differs."""
    rng = np.random.default_rng(seed)
    base = np.array([(60 + 80 * label) % 256, (200 - 50 * label) % 256, (30 * label) % 256], np.float64)
    pixels = np.clip(base + rng.normal(0, 40, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_folder(root: Path, classes: list[str], per_class: int, suffix: str = ".jpg") -> Path:
    """root/<class>/img_<i><suffix>, per_class images each."""
    for label, name in enumerate(classes):
        for i in range(per_class):
            make_image(root / name / f"img_{i:03d}{suffix}", label, seed=1000 * label + i)
    return root


def encode_section(root: Path, model: str, cache: Path, **changes: Any) -> dict[str, Any]:
    """A small `encode` section over an image folder (6 per class -> 3 train / 1 val / 2 test); ViTs keep the tokens
    entering their last block (late_tokens: 1) for the late-prompt heads."""
    section = {
        "dataset": {"name": "image_folder", "root": str(root),
                    "options": {"val_fraction": 0.2, "test_fraction": 0.3, "split_seed": 0}},
        "model": {"name": TINY.get(model, model), "pretrained": "none"},
        "protocol": {"shots": [2], "seeds": [1]},
        "views": {"count": 3, "seed": 0, "scale": [0.5, 1.0], "spatial": True},
        "features": {"spatial": True, "spatial_raw": True, "global_dtype": "float32", "spatial_dtype": "float32",
                     "late_tokens": 1 if model == "vit" else 0},
        "templates": ["imagenet80", "tip7", "coop"],
        "cache_dir": str(cache),
    }
    for dotted, value in changes.items():
        node = section
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return section


def write_params(path: Path, encode: dict[str, Any], runtime: dict[str, Any] | None = None, **sections: Any) -> Path:
    """A params.yaml with the given sections."""
    params = {"encode": encode, "runtime": runtime or {"workers": 0, "batch_size": 8}, **sections}
    path.write_text(yaml.safe_dump(params))
    return path


def make_imagenet(root: Path, names: list[str], train_per_class: int) -> Path:
    """CoOp's ImageNet layout: classnames.txt, images/train/<wnid>/ and one images/val/<wnid>/ image per class."""
    wnids = [f"n{label:08d}" for label in range(len(names))]
    root.mkdir(parents=True, exist_ok=True)
    (root / "classnames.txt").write_text("".join(f"{w} {n}\n" for w, n in zip(wnids, names, strict=True)))
    for label, wnid in enumerate(wnids):
        for i in range(train_per_class):
            make_image(root / "images" / "train" / wnid / f"{i}.JPEG", label, i)
        make_image(root / "images" / "val" / wnid / "v.JPEG", label, 99)
    return root


def cache_tensors(folder: Path) -> dict[str, np.ndarray]:
    """Every dataset of every cache file under `folder`, keyed 'relative/file.h5:dataset' (bitwise comparisons)."""
    import h5py

    out: dict[str, np.ndarray] = {}
    for path in sorted(folder.rglob("*.h5")):
        with h5py.File(path, "r") as handle:
            names: list[str] = []
            handle.visit(names.append)  # every group and dataset, in h5py's order
            for name in names:
                if isinstance(handle[name], h5py.Dataset):
                    out[f"{path.relative_to(folder)}:{name}"] = handle[name][()]
    return out


def assert_same_tensors(got: Path, want: Path) -> None:
    """The cache under `got` holds the same files, datasets and bytes as the one under `want`."""
    mine, theirs = cache_tensors(got), cache_tensors(want)
    assert sorted(mine) == sorted(theirs) and len(theirs) > 0
    for key in theirs:
        assert np.array_equal(mine[key], theirs[key]), f"{key} differs"


SHIFT_FOLDERS = {"imagenet_v2": ("imagenetv2", "imagenetv2-matched-frequency-format-val"),
                 "imagenet_sketch": ("imagenet-sketch", "images"), "imagenet_a": ("imagenet-adversarial", "imagenet-a"),
                 "imagenet_r": ("imagenet-rendition", "imagenet-r")}


def make_imagenet_shift(data_root: Path, layout: str, names: list[str], classes: list[int], per_class: int,
                        seed: int = 500) -> Path:
    """One of ImageNet's shifts in CoOp's layout under $DATA (`data_root`), ImageNet's classnames.txt (wnids as
    make_imagenet's) copied beside it, images of `classes` (indices into `names`), drawn like that class's images;
    ImageNet-A and -R carry their README.txt."""
    folder, images = SHIFT_FOLDERS[layout]
    root = data_root / folder
    wnids = [f"n{label:08d}" for label in range(len(names))]
    root.mkdir(parents=True, exist_ok=True)
    (root / "classnames.txt").write_text("".join(f"{w} {n}\n" for w, n in zip(wnids, names, strict=True)))
    for label in classes:
        class_dir = root / images / (str(label) if layout == "imagenet_v2" else wnids[label])
        for i in range(per_class):
            make_image(class_dir / f"{i}.jpg", label, seed + 10 * label + i)
    if layout in ("imagenet_a", "imagenet_r"):
        (root / images / "README.txt").write_text("wnid folders\n")
    return root

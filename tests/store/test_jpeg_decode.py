"""`encode.features.decode: gpu` on the CPU (the same code the GPU runs, libjpeg instead of nvJPEG): JPEG bytes
decoded in batches on the encoder's device, resized, cropped and normalised as open_clip's preprocess does, the views
from the same boxes; PNGs take the PIL path. The tolerance against the PIL path is stated and checked: pixels within
0.1 of the normalised range on average (the decoders' IDCT and the resizers' rounding differ), features within cosine
0.995; the boxes identical; `decode` recorded in each split file's identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data.decode import ImageReader
from pipeline.data.views import ViewSpec
from pipeline.encode import run_encode
from pipeline.encode.jpeg import BytesReader, decode_batch
from pipeline.params import encode_params, runtime_params
from pipeline.store import FeatureSplit
from tests.helpers import PAIR, encode_section, make_folder, make_image

RUNTIME = runtime_params({"workers": 0, "batch_size": 8, "shard_images": 8, "device": "cpu"})
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 10 JPEGs, and one PNG among them (decoded by PIL on either path)."""
    root = make_folder(tmp_path_factory.mktemp("photos"), ["red", "green", "blue"], 10)
    make_image(root / "red" / "img_999.png", 0, 999, size=(120, 90))
    return root


def test_the_pixels_and_boxes_of_both_paths_agree_within_the_stated_tolerance(tmp_path: Path) -> None:
    from torchvision import transforms

    from pipeline.data.registry import ImageItem

    items = [ImageItem(make_image(tmp_path / f"{i}.jpg", i % 3, i, size=(150, 100)), 0) for i in range(4)]
    items.append(ImageItem(make_image(tmp_path / "p.png", 1, 7, size=(150, 100)), 0))
    preprocess = transforms.Compose([transforms.Resize(64, transforms.InterpolationMode.BICUBIC, antialias=True),
                                     transforms.CenterCrop(64), transforms.ToTensor(),
                                     transforms.Normalize(MEAN, STD)])
    reader = ImageReader(items, np.arange(len(items)), preprocess, ViewSpec(3, 0, (0.5, 1.0)), 64, MEAN, STD)
    batch = decode_batch([BytesReader(reader)[i] for i in range(len(items))], reader, torch.device("cpu"))
    cpu = [reader[i] for i in range(len(items))]
    assert batch["pos"] == list(range(len(items))) and not batch["errors"]
    assert np.array_equal(batch["boxes"], np.stack([c["boxes"] for c in cpu]))  # the same seeded crops
    difference = (batch["pixels"] - torch.stack([c["pixels"] for c in cpu])).abs()  # [5, 4, 3, 64, 64]
    assert float(difference[:4].mean()) < 0.1 and float(difference[:4].max()) > 0  # JPEGs: close, not equal
    assert float(difference[4].max()) == 0.0  # the PNG took the PIL path


def test_a_gpu_decoded_cache_is_another_cache_within_the_tolerance(photos: Path, tmp_path: Path) -> None:
    def encode(decode: str) -> FeatureSplit:
        section = encode_section(photos, "vit", tmp_path / decode, features__decode=decode, views__count=2,
                                 protocol__shots=[1], protocol__seeds=[1])
        run_encode(encode_params(section), RUNTIME)
        return FeatureSplit(tmp_path / decode / "image_folder" / PAIR["vit"] / "k1-s1" / "train.h5")

    cpu, gpu = encode("cpu"), encode("gpu")
    assert "decode" not in cpu.provenance["features"] and gpu.provenance["features"]["decode"] == "gpu"
    assert np.array_equal(cpu.read("views/box"), gpu.read("views/box"))
    a, b = cpu.read("global"), gpu.read("global")
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.995 and not np.array_equal(a, b)
    print(f"global features, GPU path against PIL: cosine min {cosine.min():.5f}")

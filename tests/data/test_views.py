"""Augmented views are RandomResizedCrop(0.5-1, bicubic) + flip, stored per view and reproducible from their seed."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pipeline.backbone import load_encoder
from pipeline.data.views import ViewSpec, crop_box, render_view
from pipeline.store import FeatureSplit
from tests.helpers import TINY


def test_crop_boxes_are_reproducible_in_bounds_and_in_the_scale_range() -> None:
    spec = ViewSpec(count=10, seed=7)
    boxes = [crop_box(spec, item, v, 250, 200) for item in range(20) for v in range(10)]
    assert boxes == [crop_box(spec, item, v, 250, 200) for item in range(20) for v in range(10)]
    areas = [h * w / (250 * 200) for top, left, h, w, _ in boxes]
    assert all(t >= 0 and t + h <= 200 and left >= 0 and left + w <= 250 for t, left, h, w, _ in boxes)
    assert min(areas) >= 0.45 and max(areas) <= 1.0 and len(set(boxes)) > 150
    flips = [f for *_, f in boxes]
    assert 0.3 < np.mean(flips) < 0.7
    assert crop_box(ViewSpec(seed=8), 0, 0, 250, 200) != crop_box(spec, 0, 0, 250, 200)


def test_stored_views_are_rebuilt_exactly_from_seed_item_and_view(encoded, image_root) -> None:
    kind, report = encoded
    split = FeatureSplit(report.folder / "k2-s1" / "train.h5")
    views = split.provenance["views"]
    spec = ViewSpec(views["count"], views["seed"], tuple(views["scale"]))
    assert split.n_views == 3 and split.read("views/global").shape[:2] == (3, split.n)
    encoder = load_encoder(TINY[kind], "none", torch.device("cpu"))
    pre = encoder.provenance["preprocess"]
    item_index = split.read("item_index")
    for row in range(split.n):
        image = Image.open(image_root / split.image_ids[row]).convert("RGB")
        for view in range(spec.count):
            box = crop_box(spec, int(item_index[row]), view, *image.size)
            assert tuple(split.array("views/box")[view, row]) == box
            pixels = render_view(image, box, encoder.image_size, pre["mean"], pre["std"])
            with torch.inference_mode():
                feature = encoder.model.encode_image(pixels[None])[0].numpy()
            np.testing.assert_allclose(split.array("views/global")[view, row], feature, rtol=1e-4, atol=1e-5)
    assert not np.allclose(split.read("views/global")[0], split.read("global")), "views differ from the plain image"


def test_sixteen_bit_grey_images_are_scaled_not_clipped(tmp_path) -> None:
    """A 16-bit PNG (mode I;16) becomes round(v / 257) in 8 bits, not PIL's clip at 255 (a near-white image)."""
    import numpy as np
    from PIL import Image

    from pipeline.data.decode import to_rgb

    values = np.linspace(0, 65535, 32 * 48).reshape(32, 48).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as raw:
        assert raw.mode == "I;16"
        clipped = np.asarray(raw.convert("RGB"))
        rgb = np.asarray(to_rgb(raw))
    expected = np.round(values.astype(np.float64) / 257).astype(np.uint8)
    assert rgb.shape == (32, 48, 3) and np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert clipped.mean() > 250 > rgb.mean()  # what the plain conversion did
    eight = Image.fromarray(expected).convert("RGB")
    assert np.array_equal(np.asarray(to_rgb(eight)), np.asarray(eight))  # 8-bit images pass through

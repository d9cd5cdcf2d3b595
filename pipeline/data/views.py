"""Augmented views of few-shot images: RandomResizedCrop (bicubic) + horizontal flip, each view reproducible.

View v of the image at data-set index i is drawn from `numpy.random.default_rng([seed, i, v])`, so any view can be
rebuilt from (seed, i, v) alone, whatever batch or shard it was encoded in. The crop box is stored with the features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF


@dataclass(frozen=True)
class ViewSpec:
    """How the augmented views are drawn."""

    count: int = 10  # V views per training image
    seed: int = 0  # base seed of every view's RNG
    scale: tuple[float, float] = (0.5, 1.0)  # RandomResizedCrop area range
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop aspect range
    flip: float = 0.5  # probability of a horizontal flip


def crop_box(spec: ViewSpec, item_index: int, view: int, width: int, height: int) -> tuple[int, int, int, int, int]:
    """(top, left, crop height, crop width, flipped) of one view, as torchvision's RandomResizedCrop draws them."""
    rng = np.random.default_rng([spec.seed, item_index, view])
    area = width * height
    log_ratio = (math.log(spec.ratio[0]), math.log(spec.ratio[1]))
    flipped = int(rng.random() < spec.flip)
    for _ in range(10):
        target = area * rng.uniform(*spec.scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w, flipped
    side = min(width, height)  # fallback: the central square, as torchvision does for out-of-range ratios
    return (height - side) // 2, (width - side) // 2, side, side, flipped


def render_view(image: Image.Image, box: tuple[int, int, int, int, int], size: int, mean: tuple,
                std: tuple) -> torch.Tensor:
    """The normalised [3, size, size] tensor of one view."""
    top, left, h, w, flipped = box
    view = TF.resized_crop(image, top, left, h, w, [size, size], InterpolationMode.BICUBIC, antialias=True)
    if flipped:
        view = TF.hflip(view)
    return TF.normalize(TF.to_tensor(view), mean, std)

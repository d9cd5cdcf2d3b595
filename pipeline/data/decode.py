"""Decode images in DataLoader workers: the base (evaluation) tensor and, for training images, every view."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from pipeline.data.registry import ImageItem
from pipeline.data.views import ViewSpec, crop_box, render_view


class ImageReader(torch.utils.data.Dataset):
    """Item `pos` -> {'pos', 'pixels' [1+V, 3, S, S], 'boxes' [V, 5]} or {'pos', 'error'} for a bad file."""

    def __init__(self, items: list[ImageItem], item_index: np.ndarray, preprocess: Callable,
                 views: ViewSpec | None, size: int, mean: tuple, std: tuple) -> None:
        self.items, self.item_index, self.preprocess = items, item_index, preprocess
        self.views, self.size, self.mean, self.std = views, size, tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, pos: int) -> dict[str, Any]:
        path = self.items[pos].path
        try:
            with Image.open(path) as raw:
                image = raw.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            return {"pos": pos, "error": f"{path}: {type(exc).__name__}: {exc}"}
        tensors = [self.preprocess(image)]  # [3, S, S]
        boxes = np.zeros((0, 5), np.int32)
        if self.views is not None and self.views.count:
            index = int(self.item_index[pos])
            boxes = np.array([crop_box(self.views, index, v, *image.size) for v in range(self.views.count)], np.int32)
            tensors += [render_view(image, tuple(box), self.size, self.mean, self.std) for box in boxes]
        return {"pos": pos, "pixels": torch.stack(tensors), "boxes": boxes}  # [1+V, 3, S, S], [V, 5]


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the decoded samples; keep the failures apart with their messages."""
    good = [s for s in samples if "error" not in s]
    return {
        "positions": [s["pos"] for s in samples],
        "pos": [s["pos"] for s in good],
        "pixels": torch.stack([s["pixels"] for s in good]) if good else None,  # [b, 1+V, 3, S, S]
        "boxes": np.stack([s["boxes"] for s in good]) if good else None,  # [b, V, 5]
        "errors": [(s["pos"], s["error"]) for s in samples if "error" in s],
    }


def one_thread_worker(_: int) -> None:
    """DataLoader worker init: decoding workers use one thread each and leave the rest to the model."""
    torch.set_num_threads(1)

"""Decode images in DataLoader workers: the base (evaluation) tensor and, for training images, every view."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline.data.members import MemberError, read_bytes
from pipeline.data.registry import ImageItem
from pipeline.data.views import ViewSpec, crop_box, render_view

WIDE_INTEGER_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit (or 32-bit integer) grey images


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB image. 16-bit grey images are scaled to 8 bits (round(v / 257), the inverse of 8-to-16 bit
    replication) first: PIL's own convert('RGB') clips them at 255, which turns a 16-bit photograph near-white."""
    if image.mode in WIDE_INTEGER_MODES:
        values = np.asarray(image, dtype=np.int64)
        grey = np.clip((values * 255 + 32767) // 65535, 0, 255).astype(np.uint8)  # [H, W]
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "F":
        return Image.fromarray(float_to_8bit(np.asarray(image, dtype=np.float64)), mode="L").convert("RGB")
    return image.convert("RGB")


def float_to_8bit(values: np.ndarray) -> np.ndarray:
    """[H, W] 8-bit grey from a float image, by the range it holds: [0, 1] (the usual float convention) is scaled by
    255, [0, 255] kept as it is, anything else stretched from its minimum to its maximum; NaN reads as 0."""
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low >= 0 and high <= 1:
        scaled = values * 255
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        scaled = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


class ImageReader(torch.utils.data.Dataset):
    """Item `pos` -> {'pos', 'pixels' [1+V, 3, S, S], 'boxes' [V, 5]} or {'pos', 'error'} for a bad file."""

    def __init__(self, items: list[ImageItem], item_index: np.ndarray, preprocess: Callable,
                 views: ViewSpec | None, size: int, mean: tuple, std: tuple) -> None:
        self.items, self.item_index, self.preprocess = items, item_index, preprocess
        self.views, self.size, self.mean, self.std = views, size, tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, pos: int) -> dict[str, Any]:
        item = self.items[pos]
        if not item.path.is_file():  # only regular files: a FIFO would block the worker for ever
            return {"pos": pos, "error": f"{item.name()}: not a regular file"}
        try:
            with Image.open(io.BytesIO(read_bytes(item)) if item.member else item.path) as raw:
                image = to_rgb(raw)
        except MemberError as exc:  # its message names the container and member
            return {"pos": pos, "error": str(exc)}
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            return {"pos": pos, "error": f"{item.name()}: {type(exc).__name__}: {exc}"}
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

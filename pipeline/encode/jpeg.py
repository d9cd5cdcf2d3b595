"""`encode.features.decode: gpu`: DataLoader workers only read each file's bytes; the JPEGs of a batch are decoded
together on the encoder's device (`torchvision.io.decode_jpeg`: nvJPEG on CUDA, libjpeg on the CPU, where the tests
run this same code), then resized, cropped and normalised there as open_clip's preprocess does (shortest side to S,
bicubic with antialiasing, centre crop S x S; the views' boxes from the same seeded rule as the CPU path,
`data.views.crop_box`). Files that are not JPEGs, and JPEGs the decoder refuses (CMYK, progressive on some GPUs),
take the CPU path (PIL) one by one.

The two decoders differ in their IDCT and the two resizers in rounding, so the features are close, not bitwise equal
to the CPU path's: `decode` is part of each split file's identity (pipeline/encode/plan.feature_record), and
tests/store/test_jpeg_decode.py states and checks the tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from pipeline.data.decode import ImageReader
from pipeline.data.members import MemberError, read_bytes
from pipeline.data.views import crop_box
from pipeline.errors import ClipCacheError

JPEG_START = b"\xff\xd8"  # the SOI marker every JPEG file begins with
RESIZE_MODES = ("shortest",)  # open_clip preprocess modes this path reproduces (others: decode on the CPU)


class BytesReader(torch.utils.data.Dataset):
    """Item `pos` -> {'pos', 'data' (the file's bytes, uint8 [n])} or {'pos', 'error'}: workers only read files."""

    def __init__(self, reader: ImageReader) -> None:
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, pos: int) -> dict[str, Any]:
        item = self.reader.items[pos]
        if not item.path.is_file():  # only regular files: a FIFO would block the worker for ever
            return {"pos": pos, "error": f"{item.name()}: not a regular file"}
        try:
            data = read_bytes(item)  # a file's bytes, or a tar member's / parquet row's (pipeline.data.members)
        except MemberError as exc:  # its message names the container and member
            return {"pos": pos, "error": str(exc)}
        except OSError as exc:
            return {"pos": pos, "error": f"{item.name()}: {type(exc).__name__}: {exc}"}
        return {"pos": pos, "data": torch.frombuffer(bytearray(data), dtype=torch.uint8)}


def collate_bytes(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A batch stays a list: files differ in length."""
    return samples


def check_preprocess(preprocess: dict[str, Any]) -> None:
    """The GPU path reproduces open_clip's 'shortest' resize mode; another is named before anything is decoded."""
    if preprocess.get("resize_mode", "shortest") not in RESIZE_MODES:
        raise ClipCacheError(f"encode.features.decode 'gpu' reproduces open_clip's resize mode 'shortest'; this "
                             f"model's preprocess uses {preprocess.get('resize_mode')!r}: use decode 'cpu'")


def decode_images(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """[3, H, W] uint8 per file on `device` (RGB), or None where the decoder refuses it; one batched call, then one
    call per file if the batch fails."""
    jpegs = [i for i, d in enumerate(data) if bytes(d[:2].tolist()) == JPEG_START]
    out: list[torch.Tensor | None] = [None] * len(data)
    try:
        decoded = decode_jpeg([data[i] for i in jpegs], mode=ImageReadMode.RGB, device=device) if jpegs else []
        for i, image in zip(jpegs, decoded, strict=True):
            out[i] = image
    except RuntimeError:
        for i in jpegs:
            try:
                out[i] = decode_jpeg(data[i], mode=ImageReadMode.RGB, device=device)
            except RuntimeError:
                out[i] = None
    return out


def normalise(image: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [3, S, S] -> float [3, S, S], scaled to [0, 1] and normalised."""
    return (image.float() / 255 - mean) / std


def render(image: torch.Tensor, reader: ImageReader, pos: int, mean: torch.Tensor,
           std: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """([1+V, 3, S, S] the base tensor and every view, [V, 5] the views' boxes) of one decoded image; `mean` and
    `std` [3, 1, 1] on its device."""
    size = reader.size
    base = TF.resize(image, [size], InterpolationMode.BICUBIC, antialias=True)  # shortest side to S
    tensors = [normalise(TF.center_crop(base, [size, size]), mean, std)]
    boxes = np.zeros((0, 5), np.int32)
    if reader.views is not None and reader.views.count:
        height, width = image.shape[1:]
        index = int(reader.item_index[pos])
        boxes = np.array([crop_box(reader.views, index, v, width, height) for v in range(reader.views.count)],
                         np.int32)
        for top, left, h, w, flipped in boxes.tolist():
            view = TF.resized_crop(image, top, left, h, w, [size, size], InterpolationMode.BICUBIC, antialias=True)
            tensors.append(normalise(TF.horizontal_flip(view) if flipped else view, mean, std))
    return torch.stack(tensors), boxes


def decode_batch(samples: list[dict[str, Any]], reader: ImageReader, device: torch.device) -> dict[str, Any]:
    """What `data.decode.collate` gives for a batch of the CPU path, decoded on `device` (the refused files by the
    CPU path, in the worker's place)."""
    readable = [s for s in samples if "error" not in s]
    images = decode_images([s["data"] for s in readable], device)
    done: dict[int, dict[str, Any]] = {s["pos"]: s for s in samples if "error" in s}
    mean = torch.tensor(reader.mean, device=device).view(3, 1, 1)  # [3, 1, 1], once per batch
    std = torch.tensor(reader.std, device=device).view(3, 1, 1)
    for sample, image in zip(readable, images, strict=True):
        pos = sample["pos"]
        if image is None:
            done[pos] = reader[pos]  # PIL, as the CPU path
            continue
        pixels, boxes = render(image, reader, pos, mean, std)
        done[pos] = {"pos": pos, "pixels": pixels, "boxes": boxes}
    ordered = [done[s["pos"]] for s in samples]
    good = [s for s in ordered if "error" not in s]
    return {
        "positions": [s["pos"] for s in ordered],
        "pos": [s["pos"] for s in good],
        "pixels": torch.stack([s["pixels"].to(device) for s in good]) if good else None,  # [b, 1+V, 3, S, S]
        "boxes": np.stack([s["boxes"] for s in good]) if good else None,  # [b, V, 5]
        "errors": [(s["pos"], s["error"]) for s in ordered if "error" in s],
    }

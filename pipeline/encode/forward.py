"""One batch through the frozen image tower, split into base-image rows and view rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.backbone import Encoder, encode_images, tower_kind
from pipeline.params import EncodeParams, FeatureParams, RuntimeParams, ViewParams

AUTOCAST = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}  # resolved encode.features.precision
COMPILE_BACKEND = "inductor"  # torch.compile's backend for runtime.compile (tests use the quicker 'eager')
_COMPILED: dict[int, Callable[..., dict[str, torch.Tensor]]] = {}  # id(model) -> its compiled encode_images


@dataclass(frozen=True)
class Speed:
    """The runtime settings that change how fast the tower runs (runtime.channels_last, runtime.compile)."""

    channels_last: bool = False
    compile: bool = False


def speed_of(runtime: RuntimeParams) -> Speed:
    return Speed(runtime.channels_last, runtime.compile)


def prepare(encoder: Encoder, speed: Speed) -> None:
    """Put a ResNet image tower in channels_last layout when asked (a ViT's tokens have no such layout)."""
    if speed.channels_last and tower_kind(encoder.model.visual) == "resnet":
        encoder.model.visual.to(memory_format=torch.channels_last)


def images_function(encoder: Encoder, speed: Speed) -> Callable[..., dict[str, torch.Tensor]]:
    """encode_images, or its torch.compile'd form for this model (compiled once per process)."""
    if not speed.compile:
        return encode_images
    key = id(encoder.model)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(encode_images, backend=COMPILE_BACKEND, dynamic=False)
    return _COMPILED[key]


def with_precision(params: EncodeParams, device: torch.device) -> EncodeParams:
    """The params with encode.features.precision resolved on the encoder's device: 'auto' is fp16 under CUDA (as
    every GPU run so far), fp32 elsewhere; an explicit value stays."""
    if params.features.precision != "auto":
        return params
    precision = "fp16" if device.type == "cuda" else "fp32"
    return dataclasses.replace(params, features=dataclasses.replace(params.features, precision=precision))


def forward_batch(encoder: Encoder, pixels: torch.Tensor, features: FeatureParams,
                  views: ViewParams | None, speed: Speed = Speed()) -> dict[str, np.ndarray]:
    """Features of pixels [b, 1+V, 3, S, S]: row datasets [b, ...] and, with views, view datasets [V, b, ...]."""
    b, n_images = pixels.shape[:2]
    flat = pixels.flatten(0, 1).to(encoder.device, non_blocking=True)  # [b*(1+V), 3, S, S]
    if speed.channels_last:
        flat = flat.contiguous(memory_format=torch.channels_last)  # [b*(1+V), 3, S, S], NHWC in memory
    dtype = AUTOCAST[features.precision]
    autocast = torch.autocast(encoder.device.type, dtype=dtype) if dtype is not None else nullcontext()
    with torch.inference_mode(), autocast:
        out = images_function(encoder, speed)(encoder.model, flat, spatial=features.spatial or features.spatial_raw,
                                              late=features.late_tokens, pooled=features.pooled)
    dtypes = {"global": features.global_dtype, "spatial": features.spatial_dtype, "spatial_raw": features.spatial_dtype,
              "late_tokens": features.spatial_dtype, "pooled": features.global_dtype}
    wanted = {"global": True, "spatial": features.spatial, "spatial_raw": features.spatial_raw,
              "late_tokens": features.late_tokens > 0, "pooled": features.pooled}
    spatial_views = views is not None and views.spatial
    viewed = {"global": True, "spatial": spatial_views, "spatial_raw": spatial_views, "late_tokens": True,
              "pooled": True}
    arrays: dict[str, np.ndarray] = {}
    for name, tensor in out.items():
        if not wanted[name]:
            continue
        # [b*(1+V), ...] -> [b, 1+V, ...]
        grouped = tensor.float().cpu().numpy().reshape(b, n_images, *tensor.shape[1:])
        arrays[name] = grouped[:, 0].astype(dtypes[name])  # [b, ...]
        if views is not None and n_images > 1 and viewed[name]:
            arrays[f"views/{name}"] = np.swapaxes(grouped[:, 1:], 0, 1).astype(dtypes[name])  # [V, b, ...]
    return arrays


def probe_shapes(encoder: Encoder, features: FeatureParams,
                 views: ViewParams | None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per-image shape and dtype of every dataset a batch yields (used for shards whose images were all skipped)."""
    size = encoder.image_size
    n_images = 1 + (views.count if views is not None else 0)
    arrays = forward_batch(encoder, torch.zeros(1, n_images, 3, size, size), features, views)
    return {name: (a.shape[:1] + a.shape[2:] if name.startswith("views/") else a.shape[1:], a.dtype)
            for name, a in arrays.items()}

"""Frozen open_clip encoders: (model, pretrained) -> global features, spatial maps, text features.

Exports resolve lazily: importing the package does not import open_clip until an encoder is needed.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "pick_device": "pipeline.encoders.device", "Encoder": "pipeline.encoders.model",
    "load_encoder": "pipeline.encoders.model", "encode_images": "pipeline.encoders.image",
    "require_spatial": "pipeline.encoders.image", "tower_kind": "pipeline.encoders.image",
    "require_late_tokens": "pipeline.encoders.image",
    "encode_classes": "pipeline.encoders.text",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipeline.encoders' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)

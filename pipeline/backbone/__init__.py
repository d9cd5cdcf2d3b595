"""Frozen open_clip encoders: (model, pretrained) -> global features, spatial maps, text features.

Exports resolve lazily: importing the package does not import open_clip until an encoder is needed.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "pick_device": "pipeline.backbone.device", "Encoder": "pipeline.backbone.model",
    "load_encoder": "pipeline.backbone.model", "encode_images": "pipeline.backbone.image",
    "tower_kind": "pipeline.backbone.image", "require_late_tokens": "pipeline.backbone.image",
    "final_projection": "pipeline.backbone.image",
    "encode_classes": "pipeline.backbone.text", "encode_sentences": "pipeline.backbone.text",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipeline.backbone' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)

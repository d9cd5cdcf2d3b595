"""Rebuild, in stage 2, the frozen open_clip model a cache was encoded with, from that cache's provenance.

Prompt learners run part of an encoder (the text tower for CoOp, the last ViT blocks for late visual prompts), so
they need the very weights stage 1 used: the same architecture (or model-config file), the same pretrained tag or
checkpoint (its sha256 must match), or, for 'none', the same seeded random initialisation.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from pipeline.encoders.model import Encoder, load_encoder
from pipeline.errors import ClipCacheError


_BUILT: dict[tuple[str, str], Encoder] = {}  # one frozen model per (source, device) in a long-lived worker


def rebuild_encoder(provenance: dict[str, Any], device: torch.device) -> Encoder:
    """The frozen pair named by a cache file's `encoder` provenance, checked against it; built once per process."""
    key = (json.dumps(provenance, sort_keys=True, default=str), str(device))
    if key not in _BUILT:
        _BUILT[key] = build_checked(provenance, device)
    return _BUILT[key]


def build_checked(provenance: dict[str, Any], device: torch.device) -> Encoder:
    """Load the pair and refuse it unless it is the very model the cache was encoded with."""
    name = provenance.get("model_config") or provenance["model"]
    encoder = load_encoder(name, provenance["pretrained"], device)
    for key in ("model", "model_config_sha256", "checkpoint_sha256", "random_init_seed", "pretrained"):
        if provenance.get(key) != encoder.provenance.get(key):
            raise ClipCacheError(f"the encoder rebuilt for stage 2 differs from the cache's in {key!r}: "
                                 f"{encoder.provenance.get(key)!r} != {provenance.get(key)!r} (re-encode, or restore "
                                 f"the model file the cache was made with)")
    return encoder


def encoder_source(provenance: dict[str, Any]) -> dict[str, Any]:
    """The part of the provenance that `rebuild_encoder` needs (saved beside a fitted prompt learner)."""
    keys = ("model", "model_config", "model_config_sha256", "pretrained", "pretrained_kind", "checkpoint_sha256",
            "random_init_seed", "random_weights")
    return {k: provenance.get(k) for k in keys}

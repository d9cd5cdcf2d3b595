"""Rebuild, in stage 2, the frozen open_clip model a cache was encoded with, from that cache's provenance.

Prompt learners run part of an encoder (the text tower for CoOp, the last ViT blocks for late visual prompts), so
they need the very weights stage 1 used: the same architecture (or model-config file), the same pretrained tag or
checkpoint (its sha256 must match), or, for 'none', the same seeded random initialisation.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from pipeline.backbone.model import Encoder, load_encoder, locate
from pipeline.errors import ClipCacheError

_BUILT: dict[tuple[str, str], Encoder] = {}  # one frozen model per (source, device) in a long-lived worker


def rebuild_encoder(source: dict[str, Any], device: torch.device) -> Encoder:
    """The frozen pair named by `encoder_source`, checked against it; built once per process and device."""
    identity = {k: v for k, v in source.items() if k != "paths"}  # a moved file is the same model
    key = (json.dumps(identity, sort_keys=True, default=str), str(device))
    if key not in _BUILT:
        _BUILT[key] = build_checked(source, device)
    return _BUILT[key]


def build_checked(source: dict[str, Any], device: torch.device) -> Encoder:
    """Load the pair, its files found by sha256, and refuse it unless it is the very model the cache was encoded
    with."""
    paths = source.get("paths") or {}
    name = source["model"]
    if source.get("model_config_sha256"):
        name = locate(source["model_config_sha256"], paths.get("model_config"), "model config")
    pretrained = source["pretrained"]
    if source.get("pretrained_kind") == "file":
        pretrained = locate(source["checkpoint_sha256"], paths.get("checkpoint"), "checkpoint")
    encoder = load_encoder(name, pretrained, device)
    for key in ("model", "model_config_sha256", "checkpoint_sha256", "random_init_seed", "pretrained"):
        if source.get(key) != encoder.provenance.get(key):
            raise ClipCacheError(f"the encoder rebuilt for stage 2 differs from the cache's in {key!r}: "
                                 f"{encoder.provenance.get(key)!r} != {source.get(key)!r} (re-encode, or restore "
                                 f"the model file the cache was made with)")
    return encoder


def encoder_source(provenance: dict[str, Any], sources: dict[str, str] | None = None) -> dict[str, Any]:
    """What `rebuild_encoder` needs (saved beside a fitted prompt learner): the cache's `encoder` provenance, which
    identifies the files by sha256, and `sources`, the paths they were last read from (its build record)."""
    keys = ("model", "model_config_sha256", "pretrained", "pretrained_kind", "checkpoint_sha256",
            "random_init_seed", "random_weights")
    return {**{k: provenance.get(k) for k in keys}, "paths": dict(sources or {})}

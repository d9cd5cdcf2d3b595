"""The train stage from a params file: what both `clipcache train` and stages/train.py call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.encode.config import encode_params, runtime_params
from pipeline.encoders.device import pick_device
from pipeline.errors import ClipCacheError
from pipeline.params import apply_overrides, load_params
from pipeline.train.config import train_params
from pipeline.train.run import TrainResult, train_head


def train_from_params(params_path: str | Path, overrides: list[str], head: str | None,
                      runtime: dict[str, Any]) -> TrainResult:
    """Read params.yaml (`encode` locates the cache, `train` and `heads.<name>` configure the fit) and fit one head."""
    params = apply_overrides(load_params(params_path), overrides)
    train = train_params(params.get("train"))
    name = head or train.head
    heads = params.get("heads") or {}
    if not isinstance(heads, dict):
        raise ClipCacheError("params.yaml: 'heads' must map head names to their parameters")
    settings = {**(params.get("runtime") or {}), **{k: v for k, v in runtime.items() if v is not None}}
    device = pick_device(runtime_params(settings).device)
    return train_head(encode_params(params.get("encode")), train, name, heads.get(name) or {}, device)

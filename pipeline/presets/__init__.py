"""Paper protocols as data (resources/<name>.yaml): data sets, backbones and weights, shots x seeds, views, features,
templates and each head's parameters (`apply.py` turns one into a params.yaml). Torch-free: the report reads the
presets' head parameters to tell whether a run follows a paper."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from pipeline.errors import ClipCacheError

FIELDS = ("title", "citation", "code", "notes", "datasets", "models", "encode", "heads")


@dataclass(frozen=True)
class Preset:
    """One paper's protocol."""

    name: str
    title: str
    citation: str
    code: str  # the authors' repository and commit our heads follow (or 'none public')
    notes: tuple[str, ...]  # where the protocol is the paper's, and where we cannot follow it
    datasets: tuple[str, ...]  # registered data-set names
    models: tuple[dict[str, str], ...]  # {name, pretrained}
    encode: dict[str, Any]  # the encode sections it sets (protocol, views, features, templates)
    heads: dict[str, dict[str, Any]]  # head -> the parameters the paper's protocol fixes
    protocol: str = "all"  # train.protocol: 'all' classes, 'base_to_novel', 'cross_dataset' or 'domain_generalisation'
    transductive: dict[str, Any] | None = None  # params.yaml's `transductive` section, for a transductive method's
    #                                             paper (its heads' rows are named <head>+transclip)
    transfer: dict[str, Any] | None = None  # train.transfer (source, targets) of a transfer protocol


def _folder() -> Any:
    return resources.files("pipeline.presets").joinpath("resources")


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in _folder().iterdir() if p.name.endswith(".yaml"))


@cache
def load_preset(name: str) -> Preset:
    """The named preset, its fields checked; an error naming the preset and field otherwise."""
    if name not in list_presets():
        raise ClipCacheError(f"unknown preset {name!r}; known: {', '.join(list_presets())}")
    data = yaml.safe_load(_folder().joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
    missing = [f for f in FIELDS if f not in (data or {})]
    if missing:
        raise ClipCacheError(f"preset {name!r} lacks the field {missing[0]!r}")
    return Preset(name, str(data["title"]), str(data["citation"]), str(data["code"]), tuple(data["notes"]),
                  tuple(data["datasets"]), tuple(dict(m) for m in data["models"]), dict(data["encode"]),
                  {head: dict(values or {}) for head, values in data["heads"].items()},
                  str(data.get("protocol", "all")), dict(data["transductive"]) if "transductive" in data else None,
                  dict(data["transfer"]) if "transfer" in data else None)


def protocol_differences(preset: Preset, head: str, head_params: dict[str, Any]) -> list[str]:
    """'key: ours != paper' for every parameter the preset fixes for `head` that a run's parameters do not match."""
    fixed = preset.heads.get(head.split("+")[0])  # <head>+transclip: the head's own parameters
    if fixed is None:
        return [f"{head} is not part of the {preset.name} protocol"]
    return [f"{key}: {head_params.get(key)!r} != {value!r}" for key, value in sorted(fixed.items())
            if _normal(head_params.get(key)) != _normal(value)]


def _normal(value: Any) -> Any:
    """Lists and tuples compare equal; ints equal floats."""
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

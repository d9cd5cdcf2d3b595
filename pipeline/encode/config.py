"""Typed `encode` and `runtime` sections of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.data.templates import TEMPLATE_SETS
from pipeline.errors import ClipCacheError
from pipeline.params import build

DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class DatasetParams:
    name: str = "textile"  # registry name (`clipcache datasets`)
    root: str | None = None  # the layout's local root; None for 'textile' uses the installed package's images
    options: dict[str, Any] = field(default_factory=dict)  # layout options (partition fractions, manifest file...)


@dataclass(frozen=True)
class ModelParams:
    name: str = "ViT-B-32"  # open_clip architecture, or a path to an open_clip model-config JSON
    pretrained: str = "none"  # a tag (`clipcache models`), a local checkpoint file, or 'none' (random weights)


@dataclass(frozen=True)
class ProtocolParams:
    shots: tuple[int, ...] = (1, 2, 4, 8, 16)  # K training images per class, one few-shot set per (K, seed)
    seeds: tuple[int, ...] = (1, 2, 3)  # few-shot draw seeds


@dataclass(frozen=True)
class ViewParams:
    count: int = 10  # augmented views per few-shot training image (0: none)
    seed: int = 0  # base seed of the views' RNG
    scale: tuple[float, float] = (0.5, 1.0)  # RandomResizedCrop area range
    spatial: bool = True  # also store the spatial map of every view (VT-CLIP trains on random views)


@dataclass(frozen=True)
class FeatureParams:
    spatial: bool = True  # store the spatial map in the joint space [HW, D]
    spatial_raw: bool = False  # also store the pre-projection map [HW, C_s]
    global_dtype: str = "float32"  # dtype of global features
    spatial_dtype: str = "float16"  # dtype of spatial maps (and of late tokens)
    late_tokens: int = 0  # k > 0 (ViTs): also store the token sequence entering block L-k, [1+HW, width], views too


@dataclass(frozen=True)
class EncodeParams:
    dataset: DatasetParams = field(default_factory=DatasetParams)
    model: ModelParams = field(default_factory=ModelParams)
    protocol: ProtocolParams = field(default_factory=ProtocolParams)
    views: ViewParams = field(default_factory=ViewParams)
    features: FeatureParams = field(default_factory=FeatureParams)
    templates: tuple[str, ...] = TEMPLATE_SETS  # template sets whose text features are stored
    cache_dir: str = "cache"  # root of the feature files


@dataclass(frozen=True)
class RuntimeParams:
    """Settings that change speed, not tensors; DVC does not track them, so changing them re-encodes nothing."""

    device: str = "auto"  # 'auto' (cuda > mps > cpu), or a torch device name
    batch_size: int = 64  # images (counting views) per forward pass
    workers: int = 1  # DataLoader processes decoding images
    shard_images: int = 256  # images per resumable shard; keep it fixed between a kill and its resume
    skip_bad_images: bool = False  # skip undecodable images (listed in the file) instead of stopping
    repair: bool = False  # read every complete file in full and rebuild those whose data fails its checksums


def encode_params(section: dict[str, Any] | None) -> EncodeParams:
    """The checked `encode` section."""
    params = build(EncodeParams, section, "encode")
    for name in ("global_dtype", "spatial_dtype"):
        if getattr(params.features, name) not in DTYPES:
            raise ClipCacheError(f"encode.features.{name} must be one of {DTYPES}, got {getattr(params.features, name)!r}")
    if params.features.late_tokens < 0:
        raise ClipCacheError(f"encode.features.late_tokens must be >= 0 (0: off), got {params.features.late_tokens}")
    if params.views.count < 0 or not params.protocol.shots or not params.protocol.seeds:
        raise ClipCacheError("encode.views.count must be >= 0 and encode.protocol.shots/seeds non-empty")
    if min(params.protocol.seeds) < 0 or params.views.seed < 0:
        raise ClipCacheError(f"encode.protocol.seeds and encode.views.seed must be >= 0, got "
                             f"{list(params.protocol.seeds)} and {params.views.seed}")
    low, high = params.views.scale
    if not 0 < low <= high <= 1:
        raise ClipCacheError(f"encode.views.scale must be [low, high] with 0 < low <= high <= 1 (crop area fractions), "
                             f"got {list(params.views.scale)}")
    for name in params.templates:
        if name not in TEMPLATE_SETS:
            raise ClipCacheError(f"unknown template set {name!r} in encode.templates; known: {', '.join(TEMPLATE_SETS)}")
    return params


# runtime keys that belong to the engine (pipeline.engine.config.ClusterParams checks them when a sweep starts)
ENGINE_KEYS = frozenset({"cluster", "threads_per_worker", "worker_timeout", "slurm"})


def runtime_section(params: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's `runtime` section with the command line's values (those given, i.e. not None) on top."""
    return {**(params.get("runtime") or {}), **{k: v for k, v in given.items() if v is not None}}


def runtime_params(section: dict[str, Any] | None) -> RuntimeParams:
    """The checked `runtime` section, less the engine's keys."""
    own = {k: v for k, v in (section or {}).items() if k not in ENGINE_KEYS}
    params = build(RuntimeParams, own, "runtime")
    if params.batch_size < 1 or params.workers < 0 or params.shard_images < 1:
        raise ClipCacheError("runtime.batch_size and runtime.shard_images must be >= 1, runtime.workers >= 0")
    return params

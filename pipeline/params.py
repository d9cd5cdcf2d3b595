"""Every section of params.yaml and its loader: load the file, apply `--set dotted.key=value` overrides, and build
typed sections that reject unknown keys. Torch-free: `clipcache report` reads its section here.

Sections: `grid` (pipeline/grid.py expands it), `encode` and `runtime` (stage 1, and the runtime of every stage),
`train`, `evaluate` (where run folders and the report go: pipeline/evaluate_params.py), `heads` (each head's own
Params dataclass checks its entry: pipeline/heads/registry.py) and `transductive` (scoring that reads the test split's
image features, off unless a head is listed there: pipeline/transductive_params.py). The engine's runtime keys are
checked by pipeline/engine/config.py.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ClipCacheError
from pipeline.strict_yaml import load_yaml
from pipeline.typed import as_dict as as_dict  # re-exported: every section's dataclass is built and dumped by these
from pipeline.typed import build as build

log = logging.getLogger(__name__)


# every top-level section params.yaml may hold
SECTIONS = ("grid", "encode", "runtime", "train", "heads", "transductive", "evaluate")


def load_params(path: str | Path) -> dict[str, Any]:
    """The whole params file as a dict; a section we do not know (a misspelling) is one line naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClipCacheError(f"params file {str(path)!r} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ClipCacheError(f"params file {str(path)!r} is not UTF-8 text: {exc.reason}") from exc
    data = load_yaml(text, f"params file {str(path)!r}")  # bounded; a key given twice is refused
    if not isinstance(data, dict):
        raise ClipCacheError(f"params file {str(path)!r} must hold a mapping of sections")
    unknown = sorted(str(k) for k in set(data) - set(SECTIONS))
    if unknown:
        raise ClipCacheError(f"params file {str(path)!r}: unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    return data


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply 'a.b.c=value' overrides (value parsed as YAML) to a copy of `params`."""
    out = yaml.safe_load(yaml.safe_dump(params))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ClipCacheError(f"override {item!r} is not of the form dotted.key=value")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ClipCacheError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = load_yaml(raw, f"override {item!r}: the value")
        if key.split(".")[0] not in SECTIONS:
            raise ClipCacheError(f"override {item!r}: unknown section {key.split('.')[0]!r}; known: "
                                 f"{', '.join(SECTIONS)}")
    return out


# --- encode and runtime: stage 1, and the runtime settings of every stage ---


# the prompt-template sets pipeline/data/resources ships (<name>.json), named here so that params need no data code
TEMPLATE_SETS = ("imagenet80", "tip7", "coop")
SAMPLERS = ("dassl", "numpy")  # few-shot draws (pipeline.data.fewshot)
VAL_RULES = ("coop", "full")  # min(K, 4) validation images per class, or the whole validation split
SHORT_CLASS_RULES = ("refuse", "keep_all")  # a class with fewer than K images: an error, or all of its images (CoOp)


DTYPES = ("float16", "float32")
DECODERS = ("cpu", "gpu")  # where images are decoded and resized (encode.features.decode)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # the image tower's compute precision (encode.features.precision)
MAX_VIEWS = 1000  # augmented views per image (the papers: 10; Tip-Adapter's augment_epoch)
MAX_SHOTS = 100_000  # images per class of a few-shot set (the papers: 1-16; "all" of ImageNet's train: 1,300)


@dataclass(frozen=True)
class DatasetParams:
    name: str = "textile"  # the data set's name: its cache and results folders, --dataset, the report
    root: str | None = None  # the layout's local root; None for 'textile' uses the installed package's images
    options: dict[str, Any] = field(default_factory=dict)  # layout options (partition fractions, manifest file...)
    layout: str | None = None  # the registered layout that reads it (`clipcache datasets`); None: `name` itself

    @property
    def registered(self) -> str:
        """The registry name the data set is read with: its layout, or its own name when that is registered."""
        return self.layout or self.name


FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # a data set's own name becomes a folder name


@dataclass(frozen=True)
class ModelParams:
    name: str = "ViT-B-32"  # open_clip architecture, or a path to an open_clip model-config JSON
    pretrained: str = "none"  # a tag (`clipcache models`), a local checkpoint file, or 'none' (random weights)


@dataclass(frozen=True)
class ProtocolParams:
    shots: tuple[int, ...] = (1, 2, 4, 8, 16)  # K training images per class, one few-shot set per (K, seed)
    seeds: tuple[int, ...] = (1, 2, 3)  # few-shot draw seeds
    sampler: str = "dassl"  # 'dassl': the images Dassl (CoOp, Tip-Adapter...) draws for a seed; 'numpy': our older draw
    val: str = "coop"  # validation: 'coop' (min(K, 4) per class) or 'full' (the whole val split; Tip-Adapter, GDA)
    short_classes: str = "refuse"  # a class with fewer than K images: 'refuse' (named) or 'keep_all' (CoOp's rule)


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
    pooled: bool = False  # also store the pooled feature before the final projection [width] (images and views)
    precision: str = "auto"  # the image tower's compute precision: 'auto' (fp16 where the encoder runs on CUDA, fp32
    #                          elsewhere), 'fp32', 'fp16' or 'bf16' (autocast); part of every split file's identity
    decode: str = "cpu"  # 'cpu': PIL in the DataLoader workers; 'gpu': the workers read bytes, JPEGs are decoded in
    #                      batches on the encoder's device (pipeline/encode/jpeg.py); part of every split's identity


@dataclass(frozen=True)
class EncodeParams:
    dataset: DatasetParams = field(default_factory=DatasetParams)
    model: ModelParams = field(default_factory=ModelParams)
    protocol: ProtocolParams = field(default_factory=ProtocolParams)
    views: ViewParams = field(default_factory=ViewParams)
    features: FeatureParams = field(default_factory=FeatureParams)
    templates: tuple[str, ...] = TEMPLATE_SETS  # template sets whose text features are stored
    descriptions: dict[str, str] = field(default_factory=dict)  # data set name -> class descriptions file (CuPL JSON)
    cache_dir: str = "cache"  # root of the feature files


@dataclass(frozen=True)
class RuntimeParams:
    """Settings that change speed, not tensors; DVC does not track them, so changing them re-encodes nothing."""

    device: str = "auto"  # 'auto' (cuda > mps > cpu), or a torch device name
    batch_size: int = 64  # images (counting views) per forward pass
    workers: int | str = "auto"  # DataLoader processes decoding images; 'auto': the usable cores less one
    shard_images: int = 256  # images per resumable shard; keep it fixed between a kill and its resume
    skip_bad_images: bool = False  # skip undecodable images (listed in the file) instead of stopping
    repair: bool = False  # read every complete file in full and rebuild those whose data fails its checksums
    channels_last: bool = False  # ResNet image towers and their inputs in channels_last layout (a GPU's convolutions)
    compile: bool = False  # torch.compile the image tower's forward (speed; RESULTS says how far the floats move)


def encode_params(section: dict[str, Any] | None) -> EncodeParams:
    """The checked `encode` section."""
    params = build(EncodeParams, section, "encode")
    if not FOLDER_NAME.fullmatch(params.dataset.name):
        raise ClipCacheError(f"data set name {params.dataset.name!r} must be letters, digits and . _ + - (it names "
                             f"its cache and results folders)")
    for name in ("global_dtype", "spatial_dtype"):
        if getattr(params.features, name) not in DTYPES:
            raise ClipCacheError(f"encode.features.{name} must be one of {DTYPES}, got "
                                 f"{getattr(params.features, name)!r}")
    if params.features.late_tokens < 0:
        raise ClipCacheError(f"encode.features.late_tokens must be >= 0 (0: off), got {params.features.late_tokens}")
    if params.features.decode not in DECODERS:
        raise ClipCacheError(f"encode.features.decode must be one of {', '.join(DECODERS)}, got "
                             f"{params.features.decode!r}")
    if params.features.precision not in PRECISIONS:
        raise ClipCacheError(f"encode.features.precision must be one of {', '.join(PRECISIONS)}, got "
                             f"{params.features.precision!r}")
    if params.views.count < 0 or not params.protocol.shots or not params.protocol.seeds:
        raise ClipCacheError("encode.views.count must be >= 0 and encode.protocol.shots/seeds non-empty")
    if params.views.count > MAX_VIEWS:
        raise ClipCacheError(f"encode.views.count must be at most {MAX_VIEWS} (views of every few-shot image are "
                             f"stored), got {params.views.count}")
    if max(params.protocol.shots) > MAX_SHOTS:
        raise ClipCacheError(f"encode.protocol.shots must be at most {MAX_SHOTS} per class, got "
                             f"{max(params.protocol.shots)}")
    for name, known in (("sampler", SAMPLERS), ("val", VAL_RULES), ("short_classes", SHORT_CLASS_RULES)):
        if getattr(params.protocol, name) not in known:
            raise ClipCacheError(f"encode.protocol.{name} must be one of {', '.join(known)}, got "
                                 f"{getattr(params.protocol, name)!r}")
    if min(params.protocol.seeds) < 0 or params.views.seed < 0:
        raise ClipCacheError(f"encode.protocol.seeds and encode.views.seed must be >= 0, got "
                             f"{list(params.protocol.seeds)} and {params.views.seed}")
    low, high = params.views.scale
    if not 0 < low <= high <= 1:
        raise ClipCacheError(f"encode.views.scale must be [low, high] with 0 < low <= high <= 1 (crop area fractions), "
                             f"got {list(params.views.scale)}")
    for name in params.templates:
        if name not in TEMPLATE_SETS:
            raise ClipCacheError(f"unknown template set {name!r} in encode.templates; known: "
                                 f"{', '.join(TEMPLATE_SETS)}")
    check_descriptions(params.descriptions)
    return params


def check_descriptions(descriptions: Any) -> None:
    """encode.descriptions: a mapping of data set names to description files (read at encode)."""
    if not isinstance(descriptions, dict):
        raise ClipCacheError(f"encode.descriptions must map data set names to files, got {str(descriptions)[:40]!r}")
    for name, path in descriptions.items():
        if not isinstance(name, str) or not isinstance(path, str) or not path:
            raise ClipCacheError(f"encode.descriptions.{name} must be a file path, got {path!r}")


# runtime keys that belong to the engine (pipeline.engine.config.ClusterParams checks them when a sweep starts)
ENGINE_KEYS = frozenset({"cluster", "threads_per_worker", "worker_timeout", "slurm"})


def runtime_section(params: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's `runtime` section with the command line's values (those given, i.e. not None) on top."""
    return {**(params.get("runtime") or {}), **{k: v for k, v in given.items() if v is not None}}


def runtime_params(section: dict[str, Any] | None) -> RuntimeParams:
    """The checked `runtime` section, less the engine's keys."""
    own = {k: v for k, v in (section or {}).items() if k not in ENGINE_KEYS}
    params = build(RuntimeParams, own, "runtime")
    if params.workers == "auto":
        from pipeline.cores import auto_workers

        params = dataclasses.replace(params, workers=auto_workers())
    if not isinstance(params.workers, int) or isinstance(params.workers, bool):
        raise ClipCacheError(f"runtime.workers must be a whole number or 'auto', got {params.workers!r}")
    if params.batch_size < 1 or params.workers < 0 or params.shard_images < 1:
        raise ClipCacheError("runtime.batch_size and runtime.shard_images must be >= 1, runtime.workers >= 0")
    return params


# --- train ---

@dataclass(frozen=True)
class TransferParams:
    """The data sets of train.protocol cross_dataset / domain_generalisation: fit on `source`, score on each target."""

    source: str = ""  # the grid data set the heads are fitted on ('': the grid's first, e.g. imagenet)
    targets: tuple[str, ...] = ()  # grid data sets scored besides the source's test split (none: every other one)


@dataclass(frozen=True)
class TrainParams:
    head: str = "tip_adapter"  # head fitted by `clipcache train` when --head is not given
    shots: int = 16  # which few-shot cache (k<shots>-s<seed>) to fit on
    seed: int = 1
    out_dir: str | None = None  # no longer used: a run's fitted head and evaluation share its folder under
    #                             evaluate.results_dir (pipeline/layout.py); accepted so that older params still load
    heads: tuple[str, ...] = ()  # the heads `clipcache sweep` runs by default (and dvc.yaml's sweep stages)
    protocol: str = "all"  # sweep runs: 'all' classes, 'base_to_novel' (CoCoOp: fit the first half, score both),
    #                        'validation_free' (no validation image read; each head's authors' fixed choices), or
    #                        'cross_dataset' / 'domain_generalisation' (fit on transfer.source, score its targets too)
    transfer: TransferParams = field(default_factory=TransferParams)


TRANSFER_PROTOCOLS = ("cross_dataset", "domain_generalisation")  # fitted on one data set, scored on others
PROTOCOLS = ("all", "base_to_novel", "validation_free", *TRANSFER_PROTOCOLS)


def train_params(section: dict[str, Any] | None) -> TrainParams:
    """The checked `train` section."""
    params = build(TrainParams, section, "train")
    if params.shots < 1 or params.seed < 0:
        raise ClipCacheError(f"train.shots must be >= 1 and train.seed >= 0, got {params.shots} and {params.seed}")
    if params.protocol not in PROTOCOLS:
        raise ClipCacheError(f"train.protocol must be one of {', '.join(PROTOCOLS)}, got {params.protocol!r}")
    if len(set(params.transfer.targets)) != len(params.transfer.targets):
        raise ClipCacheError(f"train.transfer.targets lists a data set twice: {list(params.transfer.targets)}")
    return params

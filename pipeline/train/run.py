"""Stage 2 as a library call: fit one head on the cached train/val tensors of one (shots, seed) and save it.

Only the few-shot train and val files and the text file are opened; the test split is never touched, no image is
decoded and no encoder is built.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.encode.config import EncodeParams
from pipeline.encode.plan import cache_folder, few_shot_folder
from pipeline.encoders.naming import model_label
from pipeline.errors import ClipCacheError
from pipeline.heads import REQUIREMENTS, FitData, Head, create_head
from pipeline.heads.base import val_accuracy
from pipeline.heads.io import save_head
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.atomic import write_json_atomic
from pipeline.store.provenance import fingerprint
from pipeline.train.config import TrainParams

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    folder: Path  # where head.safetensors, head.json and metrics.json were written
    metrics: dict[str, Any]


def check_requires(head: Head, train: FeatureSplit, val: FeatureSplit) -> None:
    """Fail before fitting when the cache lacks what the head needs, naming the encode setting that adds it."""
    names = sorted({name for need in head.requires for name in REQUIREMENTS[need]}, key=lambda n: (n.startswith("views/"), n))
    for name in names:  # row datasets first: their error names the setting most directly
        for split in (train,) if name.startswith("views/") else (train, val):
            try:
                split.array(name)  # the split's own error names the encode setting that produces `name`
            except ClipCacheError as exc:
                raise ClipCacheError(f"head {head.name!r} needs {name!r}: {exc}") from exc


def cache_provenance(*files: FeatureSplit | TextFeatures) -> dict[str, Any]:
    """Which cache files a head came from, and what they hold."""
    first = files[0].provenance
    return {
        "files": {f"{f.path.parent.name}/{f.path.name}": {"path": str(f.path), "fingerprint": fingerprint(f.provenance)}
                  for f in files},
        "encoder": {k: first["encoder"].get(k) for k in ("model", "pretrained", "pretrained_kind", "random_weights",
                                                           "checkpoint_sha256", "open_clip_version")},
        "dataset": {k: first["dataset"].get(k) for k in ("name", "n_classes", "file_list_sha256", "classnames")},
    }


def run_folder(root: str | Path, head: str, shots: int, seed: int) -> Path:
    """<root>/<head>/k<K>-s<seed>: where a run's head (models/) or evaluation (results/) goes; the JSON inside names
    the data set and model, and DVC tracks one configuration per workspace (several models: `dvc exp` or another root).
    """
    return Path(root) / head / f"k{shots}-s{seed}"


def train_head(encode: EncodeParams, train: TrainParams, name: str, head_params: dict[str, Any],
               device: torch.device) -> TrainResult:
    """Fit head `name` on the (train.shots, train.seed) cache of `encode`'s data set and model; save it."""
    arch, folder = model_label(encode.model.name), cache_folder(encode)
    shots = few_shot_folder(folder, train.shots, train.seed)
    expect = {"split.shots": train.shots, "split.seed": train.seed, "encoder.model": arch}
    train_split = FeatureSplit(shots / "train.h5", expect={**expect, "split.name": "train"})
    val_split = FeatureSplit(shots / "val.h5", expect={**expect, "split.name": "val"})
    text = TextFeatures(folder / "text.h5", expect={"encoder.model": arch})
    head = create_head(name, head_params)
    check_requires(head, train_split, val_split)
    torch.manual_seed(train.seed)
    started = time.perf_counter()
    head.to(device).fit(FitData(train_split, val_split, text, train.seed, device))
    seconds = time.perf_counter() - started
    provenance = {**cache_provenance(train_split, val_split, text), "shots": train.shots, "seed": train.seed}
    out = run_folder(train.out_dir, name, train.shots, train.seed)
    save_head(head, out, provenance)
    metrics = {"head": name, "shots": train.shots, "seed": train.seed, "val_acc": val_accuracy(head, val_split),
               "selected": head.selected, "fit_seconds": round(seconds, 3), "history": head.history,
               "model": arch, "pretrained": encode.model.pretrained,
               "random_weights": provenance["encoder"]["random_weights"], "dataset": encode.dataset.name}
    write_json_atomic(out / "metrics.json", metrics)
    log.info("%s: val acc %.4f, selected %s, fit %.2f s -> %s", name, metrics["val_acc"] or 0.0,
             {k: v for k, v in head.selected.items() if k != "val_acc"}, seconds, out)
    return TrainResult(out, metrics)

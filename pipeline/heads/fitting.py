"""Stage 2 as a library call: fit one head on the cached train/val tensors of one (data set, model, shots, seed).

Only the few-shot train and val files and the text file are opened; the test split is never touched, no image is
decoded and no image encoder runs on pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.backbone.naming import model_label
from pipeline.errors import ClipCacheError, NotApplicable
from pipeline.heads import REQUIREMENTS, FitData, Head, create_head, head_class
from pipeline.heads.base import recorded_val_accuracy
from pipeline.heads.classes import SubsetSplit, SubsetText
from pipeline.heads.inputs import NoValidation, SplitReader, TextReader, has_validation
from pipeline.heads.io import save_head
from pipeline.layout import FIT_RECORD, TEXT_FILE, pair_folder, split_file
from pipeline.params import EncodeParams
from pipeline.runlog import detail_log
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.atomic import write_json_atomic
from pipeline.store.provenance import fingerprint
from pipeline.store.together import check_together, identity

detail = detail_log()  # the run's own log file (the console with --verbose)


@dataclass
class Fitted:
    """A head fitted on one few-shot cache, with what it came from."""

    head: Head
    provenance: dict[str, Any]  # the cache files and their fingerprints, model, data set, shots, seed
    metrics: dict[str, Any]  # validation accuracy, selection, history, fit seconds, provenance keys


@dataclass
class TrainResult:
    folder: Path  # where head.safetensors, head.json and fit.json were written
    metrics: dict[str, Any]


LATE = frozenset({"late_tokens", "late_token_views"})


def check_requires(head: Head, train: SplitReader, val: SplitReader) -> None:
    """Fail before fitting when the cache lacks what the head needs, naming the encode setting that adds it.

    Raises:
        NotApplicable: the head prompts CLIP ViT blocks and the cache's model has another image tower, or it reads
            a feature the model's tower has none of (encode skipped it, noting why).
        ClipCacheError: anything else the cache lacks.
    """
    features, model = train.provenance.get("features", {}), train.provenance["encoder"]["model"]
    tower = features.get("late_tokens_skipped") or features.get("tower")
    if head.requires & LATE and tower:
        raise NotApplicable(f"head {head.name!r} prompts CLIP ViT blocks; model {model!r} has a {tower} image tower")
    for need, skipped in (("spatial", "spatial_skipped"), ("pooled", "pooled_skipped")):
        if any(need in name for name in head.requires) and features.get(skipped):
            raise NotApplicable(f"head {head.name!r} reads {need} features, which model {model!r} has none of: "
                                f"{features[skipped]}")
    names = sorted({name for need in head.requires for name in REQUIREMENTS[need]},
                   key=lambda n: (n.startswith("views/"), n))
    for name in names:  # row datasets first: their error names the setting most directly
        for split in (train,) if name.startswith("views/") or not has_validation(val) else (train, val):
            try:
                split.array(name)  # the split's own error names the encode setting that produces `name`
            except ClipCacheError as exc:
                raise ClipCacheError(f"head {head.name!r} needs {name!r}: {exc}") from exc


def check_classes(train: SplitReader, classnames: list[str], shots: int) -> None:
    """Every class has its K training images (or all it has, where the draw recorded it under short_classes:
    keep_all): a class some of whose images were skipped as undecodable (--skip-bad-images) is named, not fitted and
    reported as a K-shot run with fewer."""
    counts = np.bincount(np.asarray(train.labels, dtype=np.int64), minlength=len(classnames))
    kept = set(train.provenance.get("split", {}).get("short_classes", []))  # all their images (short_classes: keep_all)
    short = [c for c in range(len(classnames)) if counts[c] < shots and not (classnames[c] in kept and counts[c])]
    if short:
        first = classnames[short[0]]
        more = f" (and {len(short) - 1} more)" if len(short) > 1 else ""
        raise ClipCacheError(f"{str(train.path)!r} has {counts[short[0]]} usable training image(s) of class "
                             f"{first!r}{more} where {shots} shots are asked for: were some skipped as unreadable? "
                             "Fix or remove those images and encode again")


def cache_provenance(*files: SplitReader | TextReader) -> dict[str, Any]:
    """Which cache files a head came from, and what they hold."""
    first = files[0].provenance
    return {
        "files": {f"{f.path.parent.name}/{f.path.name}": {"path": str(f.path), "fingerprint": fingerprint(f.provenance)}
                  for f in files},
        "encoder": {k: first["encoder"].get(k) for k in ("model", "pretrained", "pretrained_kind", "random_weights",
                                                           "checkpoint_sha256", "open_clip_version")},
        "dataset": {k: first["dataset"][k] for k in ("name", "layout", "n_classes", "file_list_sha256",
                                                     "classnames") if k in first["dataset"]},
        "identity": identity(first),  # fingerprints of the encoder and data set, checked against test.h5 at evaluation
        "draw": draw_record(files[0].provenance, files[1].provenance if len(files) > 2 else None),
    }


def draw_record(train: dict[str, Any], val: dict[str, Any] | None) -> dict[str, Any]:
    """How the few-shot files were drawn: the sampler, the validation rule and the validation size (files written
    before the sampler was recorded were drawn with numpy, validation min(K, 4) per class)."""
    split = train.get("split", {})
    record = {"sampler": split.get("sampler", "numpy"), "val_rule": split.get("val_rule", "coop")}
    return record | ({"val_images": val.get("split", {}).get("n_items")} if val is not None else {})


def fit_inputs(encode: EncodeParams, shots: int, seed: int) -> tuple[FeatureSplit, FeatureSplit, TextFeatures]:
    """The few-shot train and val files and the text file of one (K, seed) of a pair, checked on open."""
    train, text = train_and_text(encode, shots, seed, check=False)
    val = FeatureSplit(split_file(pair_folder(encode), "val", shots, seed),
                       expect={**split_expect(encode, shots, seed), "split.name": "val"})
    check_together(train, val, text)
    return train, val, text


def train_and_text(encode: EncodeParams, shots: int, seed: int, check: bool = True) -> tuple[FeatureSplit,
                                                                                             TextFeatures]:
    """The few-shot train file and the text file (a validation-free run never opens val), checked on open."""
    folder = pair_folder(encode)
    train = FeatureSplit(split_file(folder, "train", shots, seed),
                         expect={**split_expect(encode, shots, seed), "split.name": "train"})
    text = TextFeatures(folder / TEXT_FILE, expect={"encoder.model": model_label(encode.model.name)})
    if check:
        check_together(train, text)
    return train, text


def split_expect(encode: EncodeParams, shots: int, seed: int) -> dict[str, Any]:
    return {"split.shots": shots, "split.seed": seed, "encoder.model": model_label(encode.model.name)}


def fit_head(encode: EncodeParams, shots: int, seed: int, name: str, head_params: dict[str, Any],
             device: torch.device, classes: list[int] | None = None, validation_free: bool = False) -> Fitted:
    """Fit head `name` on the (shots, seed) cache of `encode`'s data set and model, on `classes` only when given
    (base-to-novel: the base classes, labels renumbered); `validation_free`: the val file is never opened, the head's
    authors' validation-free parameters apply (NotApplicable for a head that has none); nothing is written."""
    train_split: SplitReader
    val_split: SplitReader
    text: TextReader
    if validation_free:
        fixed = head_class(name).validation_free
        if fixed is None:
            raise NotApplicable(f"{name} selects its hyper-parameters or epoch on validation and has no "
                                "validation-free form")
        head_params = {**head_params, **dict(fixed)}
        train_split, text = train_and_text(encode, shots, seed)
        val_split = NoValidation(name)  # any read of it is an error naming the head
    else:
        train_split, val_split, text = fit_inputs(encode, shots, seed)
    if classes is not None:
        val_split = SubsetSplit(val_split, classes) if isinstance(val_split, FeatureSplit) else val_split
        train_split, text = SubsetSplit(train_split, classes), SubsetText(text, classes)
    head = create_head(name, head_params)
    check_requires(head, train_split, val_split)
    check_classes(train_split, text.classnames, shots)
    torch.manual_seed(seed)
    started = time.perf_counter()
    head.to(device).fit(FitData(train_split, val_split, text, seed, device))
    seconds = time.perf_counter() - started
    read = (train_split, val_split, text) if has_validation(val_split) else (train_split, text)
    provenance = {**cache_provenance(*read), "shots": shots, "seed": seed, "validation_free": validation_free}
    if classes is not None:
        provenance["dataset"]["classnames"] = text.classnames
        provenance["classes"] = list(classes)  # the classes fitted on, indices into the data set's classes
    metrics = {"head": name, "shots": shots, "seed": seed, "val_acc": recorded_val_accuracy(head, val_split),
               "selected": head.selected, "fit_seconds": round(seconds, 3), "history": head.history,
               "model": model_label(encode.model.name), "pretrained": encode.model.pretrained,
               "random_weights": provenance["encoder"]["random_weights"], "dataset": encode.dataset.name}
    detail.info("%s %s k%d s%d: val acc %.4f, selected %s, fit %.2f s", name, encode.dataset.name, shots, seed,
             metrics["val_acc"] or 0.0, {k: v for k, v in head.selected.items() if k != "val_acc"}, seconds)
    return Fitted(head, provenance, metrics)


def save_fitted(fitted: Fitted, folder: Path) -> dict[str, Any]:
    """head.safetensors, head.json and fit.json into `folder`; return head.json's record."""
    record = save_head(fitted.head, folder, fitted.provenance)
    write_json_atomic(folder / FIT_RECORD, fitted.metrics)
    return record

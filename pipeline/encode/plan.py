"""What an encode run writes: the cache folder of a (data set, model, pretrained) and one job per file."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import layout
from pipeline.data import DataSet, ImageItem, sample_few_shot
from pipeline.data.content import ContentIndex, items_sha256
from pipeline.data.registry import is_test_only
from pipeline.layout import IMAGE_HASHES, split_file
from pipeline.params import EncodeParams, as_dict
from pipeline.store.provenance import SCHEMA_VERSION

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitJob:
    """One split file to write."""

    path: Path  # where the file goes
    split: str  # 'train' | 'val' | 'test'
    source: str  # the data set's split the items come from
    items: list[ImageItem]  # images in row order
    item_index: np.ndarray  # [N] their indices in dataset.splits[source]
    shots: int | None  # K of the few-shot set; None for test
    seed: int | None  # few-shot seed; None for test
    with_views: bool  # encode augmented views (few-shot train images)
    content_sha256: str = ""  # hash of its images' bytes and labels in row order (pipeline.data.content)
    draw: dict[str, Any] = field(default_factory=dict)  # few-shot files: the sampler and validation rule that drew them


def cache_folder(params: EncodeParams) -> Path:
    """cache/<data set>/<model>__<pretrained>, from the params alone (no encoder is imported)."""
    return layout.pair_folder(params)


def plan_jobs(params: EncodeParams, dataset: DataSet, folder: Path) -> list[SplitJob]:
    """The test split, then train and val of every (shots, seed) (none for a test-only layout: ImageNet-V2, -Sketch,
    -A, -R); few-shot draws are checked here, before any model."""
    test = dataset.splits["test"]
    jobs = [SplitJob(split_file(folder, "test"), "test", "test", test, np.arange(len(test)), None, None, False)]
    for shots in () if is_test_only(dataset.layout) else params.protocol.shots:
        for seed in params.protocol.seeds:
            draw = sample_few_shot(dataset, shots, seed, params.protocol.sampler, params.protocol.val,
                                   params.protocol.short_classes)
            train = [dataset.splits["train"][i] for i in draw.train]
            val = [dataset.splits[draw.val_source][i] for i in draw.val]
            rules: dict[str, Any] = {"sampler": draw.sampler, "val_rule": draw.val_rule}
            if draw.short:  # only where a class keeps fewer than K (the fingerprints of other files are unchanged)
                rules["short_classes"] = list(draw.short)
                log.warning("%s, %d shots, seed %d: %d class(es) with fewer images keep all of them "
                            "(short_classes: keep_all): %s", dataset.describe(), shots, seed, len(draw.short),
                            ", ".join(draw.short[:5]) + (" ..." if len(draw.short) > 5 else ""))
            jobs.append(SplitJob(split_file(folder, "train", shots, seed), "train", "train", train, draw.train, shots,
                                 seed, params.views.count > 0, draw=rules))
            jobs.append(SplitJob(split_file(folder, "val", shots, seed), "val", draw.val_source, val, draw.val, shots,
                                 seed, False, draw=rules))
    return with_content(jobs, ContentIndex(folder.parent / IMAGE_HASHES, dataset.root))


def with_content(jobs: list[SplitJob], index: ContentIndex) -> list[SplitJob]:
    """The jobs with the content hash of their images: a changed image changes the provenance of the files that
    hold it, and only those (each image is read once, then known by size and modification time)."""
    jobs = [replace(job, content_sha256=items_sha256(job.items, index)) for job in jobs]
    index.save()
    return jobs


def dataset_provenance(dataset: DataSet) -> dict[str, Any]:
    """The data set's identity: its own name, its layout and options, class names and the hash of its file list.

    `layout` is recorded only where it differs from the name (a grid's `{name: parts, layout: image_folder}`), so
    that the fingerprints of caches whose name is their layout (textile, dtd, ...) are those they always had."""
    layout = {"layout": dataset.layout} if dataset.layout not in ("", dataset.name) else {}
    ids = {"class_ids": list(dataset.class_ids)} if dataset.class_ids else {}  # only layouts with ids (wnids)
    return {"name": dataset.name, **layout, "options": dataset.options, "classnames": list(dataset.classnames),
            **ids, "n_classes": len(dataset.classnames), "file_list_sha256": dataset.file_list_hash(),
            "split_sizes": {k: len(v) for k, v in dataset.splits.items()}}


def split_provenance(params: EncodeParams, encoder_prov: dict[str, Any], dataset: DataSet, job: SplitJob,
                     feature_notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything that determines a split file's tensors (fingerprinted); `feature_notes` joins the features record
    (e.g. late_tokens_skipped: the image tower that has no late tokens)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "encoder": encoder_prov,
        "dataset": dataset_provenance(dataset),
        "split": {"name": job.split, "source": job.source, "shots": job.shots, "seed": job.seed,
                  "n_items": len(job.items), "content_sha256": job.content_sha256,
                  "item_index_sha256": hashlib.sha256(np.ascontiguousarray(job.item_index, np.int64).data).hexdigest(),
                  **job.draw},
        "features": {**feature_record(params), "normalised": False, **(feature_notes or {})},
        "views": ({**as_dict(params.views), "ratio": [3 / 4, 4 / 3], "flip": 0.5, "interpolation": "bicubic",
                   "view_seed": "numpy default_rng([views.seed, item_index, view])"} if job.with_views else None),
    }


def feature_record(params: EncodeParams) -> dict[str, Any]:
    """The features record of a split's provenance; `pooled` only where it is asked for, `precision` only where it
    is not fp32 (resolved: 'auto' never reaches a file) and `decode` only where it is not the CPU's, so that the files
    encoded before they existed keep their fingerprints; an fp16 or GPU-decoded file is another file."""
    if params.features.precision == "auto":
        raise ValueError("encode.features.precision 'auto' must be resolved on the encoder's device first")
    record = as_dict(params.features)
    dropped = {"pooled"} if not params.features.pooled else set()
    dropped |= {"precision"} if params.features.precision == "fp32" else set()
    dropped |= {"decode"} if params.features.decode == "cpu" else set()
    return {k: v for k, v in record.items() if k not in dropped}


def text_provenance(encoder_prov: dict[str, Any], dataset_prov: dict[str, Any], templates: dict[str, list[str]],
                    descriptions: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything that determines the text file (`dataset_prov`: `dataset_provenance` of its data set;
    `descriptions`: `Descriptions.record()`, kept only when the data set has a descriptions file, so that the
    fingerprints of text files without one are those they always had)."""
    out = {"schema_version": SCHEMA_VERSION, "encoder": encoder_prov, "dataset": dataset_prov,
           "templates": templates, "normalised": "per_template raw; mean L2-normalised"}
    return out | ({"descriptions": descriptions} if descriptions else {})

"""The evaluate stage from a params file: what both `clipcache evaluate` and stages/evaluate.py call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.backbone.device import pick_device
from pipeline.backbone.model import check_names
from pipeline.evaluate_params import results_dir
from pipeline.grid import one_pair
from pipeline.heads.io import EVALUATION_FIELDS, check_meta, load_head
from pipeline.heads.registry import head_class
from pipeline.layout import HEAD_META, pair_label, run_folder
from pipeline.params import apply_overrides, load_params, runtime_params, runtime_section, train_params
from pipeline.scoring.evaluation import score_head, test_split, write_evaluation


def evaluate_from_params(params_path: str | Path, overrides: list[str], head: str | None,
                         dataset: str | None = None, model: str | None = None,
                         runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the head fitted for params.yaml's train.shots / train.seed on the test split, into its run folder, on
    the runtime device (runtime.device, or `runtime`'s `device` from the command line), as train fits it."""
    params = apply_overrides(load_params(params_path), overrides)
    train = train_params(params.get("train"))
    name = head or train.head
    head_class(name)  # an unknown head is named before any file is looked for
    encode = one_pair(params, dataset, model)
    check_names(encode.dataset.registered, encode.model.name, encode.model.pretrained)  # names before the run folder
    folder = run_folder(results_dir(params), name, encode.dataset.name,
                        pair_label(encode.model.name, encode.model.pretrained), train.shots, train.seed)
    device = pick_device(runtime_params(runtime_section(params, runtime or {})).device)
    fitted, meta = load_head(folder, device)
    check_meta(meta, folder / HEAD_META, EVALUATION_FIELDS)  # what the evaluation record is built from
    record = score_head(fitted, meta, test_split(encode, meta, folder / HEAD_META))
    record["device"] = str(device)
    write_evaluation(record, folder)
    return record

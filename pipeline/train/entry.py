"""The train stage from a params file: what both `clipcache train` and stages/train.py call."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from pipeline.backbone.device import pick_device
from pipeline.backbone.model import check_names
from pipeline.evaluate_params import results_dir
from pipeline.grid import one_pair
from pipeline.heads.curves import write_curves
from pipeline.heads.fitting import TrainResult, fit_head, save_fitted
from pipeline.heads.registry import create_head, head_section
from pipeline.layout import CURVES, pair_label, run_folder
from pipeline.params import apply_overrides, load_params, runtime_params, runtime_section, train_params
from pipeline.store.atomic import replace_folder, temp_folder

log = logging.getLogger(__name__)




def train_from_params(params_path: str | Path, overrides: list[str], head: str | None, runtime: dict[str, Any],
                      dataset: str | None = None, model: str | None = None) -> TrainResult:
    """Fit one head on one (data set, model, shots, seed) of params.yaml, into its run folder (no evaluation).

    The files are written into a temporary folder unique to this process and renamed into place as one unit: a kill
    leaves the previous folder whole, two concurrent fits of the same run leave one complete head (never one's
    weights beside the other's JSON). The new folder holds no run.json or evaluation: nothing has scored it yet; a
    trained head's curves go into its dvclive/ folder (heads/curves.py), with no test metrics.
    """
    params = apply_overrides(load_params(params_path), overrides)
    train = train_params(params.get("train"))
    name = head or train.head
    create_head(name, head_section(params, name))  # names and parameters first: cheaper than any file
    encode = one_pair(params, dataset, model)
    check_names(encode.dataset.registered, encode.model.name, encode.model.pretrained)
    device = pick_device(runtime_params(runtime_section(params, runtime)).device)
    fitted = fit_head(encode, train.shots, train.seed, name, head_section(params, name), device)
    out = run_folder(results_dir(params), name, encode.dataset.name,
                     pair_label(encode.model.name, encode.model.pretrained), train.shots, train.seed)
    tmp = temp_folder(out)
    try:
        save_fitted(fitted, tmp)
        write_curves(tmp / CURVES, fitted.head.history, fitted.head.selected)  # trained heads only; no test metrics
        replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s -> %s", name, out)
    return TrainResult(out, fitted.metrics)

"""The `evaluate:` section of params.yaml as the report reads it: where results are and where the report goes.

Torch-free on purpose: `clipcache report` must run where only the result JSONs are (no torch, open_clip, h5py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.evaluate.config import EvaluateParams, evaluate_params
from pipeline.params import load_params

log = logging.getLogger(__name__)


ReportSettings = EvaluateParams  # one reader of the `evaluate` section (pipeline/evaluate/config.py, torch-free)


def report_settings(params_path: str | Path) -> ReportSettings:
    """The settings from the params file's `evaluate` section; unknown keys there are errors.

    Args:
        params_path: the params file; when it does not exist the defaults are used (and logged).
    """
    path = Path(params_path)
    if not path.exists():
        log.info("params file %s not found: results_dir and report_dir take their defaults", path)
        return ReportSettings()
    return evaluate_params(load_params(path).get("evaluate"))

"""params.yaml's `evaluate` section: where run folders and the report go, and which runs' training curves the report
draws (torch-free: `clipcache report` reads it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.params import apply_overrides, load_params
from pipeline.typed import build

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EvaluateParams:
    results_dir: str = "results"  # run folders: <results_dir>/<head>/<data set>/<model>__<pretrained>/k<K>-s<seed>/
    report_dir: str = "report"  # tables, CSVs, figures and index.html of `clipcache report`
    # the runs whose training curves (dvclive/ folder) the report draws: 'auto' (one run of each trained head: its
    # largest shot count, first seed, first data set and model) or run ids <head>/<data set>/<model>__<pretrained>/
    # k<K>-s<seed>[-suffix] under results_dir, '*' and '?' as in file names; [] draws none
    curves: tuple[str, ...] = ("auto",)


def evaluate_params(section: dict[str, Any] | None) -> EvaluateParams:
    """The checked `evaluate` section."""
    return build(EvaluateParams, section, "evaluate")


def results_dir(params: dict[str, Any]) -> str:
    """evaluate.results_dir of a whole params mapping."""
    return evaluate_params(params.get("evaluate")).results_dir


ReportSettings = EvaluateParams  # the report reads the `evaluate` section


def report_settings(params_path: str | Path, overrides: list[str] | None = None) -> ReportSettings:
    """The settings from the params file's `evaluate` section (with 'a.b=value' overrides applied); unknown keys
    there are errors.

    Args:
        params_path: the params file; when it does not exist the defaults are used (and logged).
    """
    path = Path(params_path)
    if not path.exists():
        log.info("params file %s not found: results_dir and report_dir take their defaults", path)
    params = load_params(path) if path.exists() else {}
    return evaluate_params(apply_overrides(params, overrides or []).get("evaluate"))

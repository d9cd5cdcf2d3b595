"""Typed `evaluate` section of params.yaml: where run folders and the report go. Imports neither torch nor h5py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.params import build


@dataclass(frozen=True)
class EvaluateParams:
    results_dir: str = "results"  # run folders: <results_dir>/<head>/<data set>/<model>__<pretrained>/k<K>-s<seed>/
    report_dir: str = "report"  # tables, CSVs, figures and index.html of `clipcache report`


def evaluate_params(section: dict[str, Any] | None) -> EvaluateParams:
    """The checked `evaluate` section."""
    return build(EvaluateParams, section, "evaluate")


def results_dir(params: dict[str, Any]) -> str:
    """evaluate.results_dir of a whole params mapping."""
    return evaluate_params(params.get("evaluate")).results_dir

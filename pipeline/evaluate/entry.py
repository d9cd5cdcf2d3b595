"""The evaluate stage from a params file: what both `clipcache evaluate` and stages/evaluate.py call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.encode.config import encode_params
from pipeline.evaluate.run import evaluate_head
from pipeline.params import apply_overrides, build, load_params
from pipeline.train.config import train_params


@dataclass(frozen=True)
class EvaluateParams:
    results_dir: str = "results"  # evaluation JSONs: <results_dir>/<head>/k<K>-s<seed>/
    report_dir: str = "report"  # tables and figures of `clipcache report`


def evaluate_params(section: dict[str, Any] | None) -> EvaluateParams:
    return build(EvaluateParams, section, "evaluate")


def evaluate_from_params(params_path: str | Path, overrides: list[str], head: str | None) -> dict[str, Any]:
    """Score the head fitted for params.yaml's train.shots / train.seed on the test split."""
    params = apply_overrides(load_params(params_path), overrides)
    train = train_params(params.get("train"))
    settings = evaluate_params(params.get("evaluate"))
    return evaluate_head(encode_params(params.get("encode")), train, head or train.head, settings.results_dir)

"""Synthetic evaluation.json records with known metrics, written in the run-folder layout (which the report ignores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CLASSES = ["cat", "dog", "fox"]


def confusion(n_classes: int, seed: int) -> list[list[int]]:
    """A [C][C] count matrix: 5 right per class, and a few mistakes that depend on the seed."""
    matrix = [[5 if i == j else 0 for j in range(n_classes)] for i in range(n_classes)]
    matrix[0][1] += seed
    matrix[2][0] += 1
    return matrix


def record(dataset: str, head: str, shots: int, seed: int, top1: float, **changes: Any) -> dict[str, Any]:
    """One evaluation record; mean per-class accuracy is top1 - 0.05 and ECE is top1 / 10."""
    classnames = changes.pop("classnames", CLASSES)
    out = {"head": head, "shots": shots, "seed": seed, "dataset": dataset, "model": "ViT-B-32",
           "pretrained": "openai", "random_weights": False, "head_params": {"alpha": 1.0, "head": head},
           "selected": {"alpha": 0.5}, "classnames": classnames,
           "metrics": {"top1": top1, "mean_per_class_accuracy": top1 - 0.05, "ece": top1 / 10, "n_test": 30,
                       "confusion": confusion(len(classnames), seed)}}
    out.update(changes)
    return out


def write(results: Path, rec: dict[str, Any]) -> Path:
    """results/<head>/<dataset>/<model>__<pretrained>/k<K>-s<seed>/evaluation.json."""
    get = rec.get  # a record may lack a field on purpose
    folder = (results / get("head", "x") / get("dataset", "x") / f"{get('model')}__{get('pretrained')}"
              / f"k{get('shots')}-s{get('seed')}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "evaluation.json"
    path.write_text(json.dumps(rec))
    return path


def write_grid(results: Path, top1: dict[tuple[str, str, int], list[float]], **changes: Any) -> list[Path]:
    """One record per (dataset, head, shots) and seed 1, 2, ...; top1 lists the fractions of the seeds in order."""
    return [write(results, record(dataset, head, shots, seed, value, **changes))
            for (dataset, head, shots), values in top1.items() for seed, value in enumerate(values, start=1)]

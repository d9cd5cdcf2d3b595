"""The report's CSV files.

- runs.csv: one row per run, its metrics as recorded (fractions in [0, 1]), the head's params, what validation
  selected, and the evaluation.json it came from.
- summary.csv: one row per (dataset, model, pretrained, head, shots): number of seeds and, for each metric in
  percent, mean, sample std, 95% Student-t half-width and interval (empty for a single seed).
- accuracy_by_shots.csv: long form per data set (dataset, model, pretrained, head, shots, top1, top1_std, seeds),
  top-1 in percent.
- curves/<head>.csv (curves/<head>__<model>__<pretrained>.csv when the results hold several models): columns
  shots,top1, the Average over data sets in percent, cells present in every data set only; one file per line, for
  `dvc plots` (x: shots, y: top1).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pipeline.report.aggregate import METRICS, GroupKey, ModelKey, cell_summaries, model_average
from pipeline.report.load import Run
from pipeline.report.names import curve_name
from pipeline.report.stats import Summary

RUN_FIELDS = ("dataset", "layout", "model", "pretrained", "random_weights", "head", "shots", "seed", "top1",
              "mean_per_class_accuracy", "ece", "n_test", "selected", "head_params", "source")
SUMMARY_STATS = ("mean", "std", "ci95", "ci_low", "ci_high")
SUMMARY_FIELDS = ("dataset", "model", "pretrained", "random_weights", "head", "shots", "n_seeds",
                  *(f"{m}_{s}" for m in METRICS for s in SUMMARY_STATS))
CURVE_FIELDS = ("dataset", "model", "pretrained", "head", "shots", "top1", "top1_std", "seeds")


def number(value: float | None) -> str:
    """Four decimals, or empty when there is no value (a single seed has no spread)."""
    return "" if value is None else f"{value:.4f}"


def write_rows(path: Path, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> Path:
    """A CSV with a header row; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_rows(runs: list[Run], results_dir: Path) -> list[dict[str, Any]]:
    """One row per run."""
    return [{"dataset": r.dataset, "layout": r.layout, "model": r.model, "pretrained": r.pretrained,
             "random_weights": r.random_weights,
             "head": r.head, "shots": r.shots, "seed": r.seed, **r.metrics, "n_test": r.n_test,
             "selected": json.dumps(r.selected, sort_keys=True),
             "head_params": json.dumps(r.head_params, sort_keys=True),
             "source": r.source.relative_to(results_dir).as_posix()} for r in runs]


def stat_columns(metric: str, summary: Summary) -> dict[str, str]:
    """<metric>_mean, _std, _ci95, _ci_low, _ci_high of one cell."""
    low, high = summary.interval or (None, None)
    values = (summary.mean, summary.std, summary.ci95, low, high)
    return {f"{metric}_{name}": number(value) for name, value in zip(SUMMARY_STATS, values, strict=True)}


def summary_rows(groups: dict[GroupKey, list[Run]]) -> list[dict[str, Any]]:
    """One row per (dataset, model, pretrained, head, shots)."""
    rows = []
    for (dataset, model, pretrained), members in groups.items():
        per_metric = {metric: cell_summaries(members, metric) for metric in METRICS}
        random_weights = any(r.random_weights for r in members)
        for (head, shots), top1 in per_metric["top1"].items():
            row = {"dataset": dataset, "model": model, "pretrained": pretrained, "random_weights": random_weights,
                   "head": head, "shots": shots, "n_seeds": top1.n}
            for metric in METRICS:
                row.update(stat_columns(metric, per_metric[metric][(head, shots)]))
            rows.append(row)
    return rows


def accuracy_rows(groups: dict[GroupKey, list[Run]]) -> list[dict[str, Any]]:
    """Long form top-1 per data set, model, head and shots."""
    return [{"dataset": dataset, "model": model, "pretrained": pretrained, "head": head, "shots": shots,
             "top1": number(s.mean), "top1_std": number(s.std), "seeds": s.n}
            for (dataset, model, pretrained), members in groups.items()
            for (head, shots), s in cell_summaries(members).items()]


def write_curves(models: dict[ModelKey, dict[str, list[Run]]], folder: Path) -> list[Path]:
    """curves/*.csv (shots,top1): per (model, pretrained) and head, the Average over data sets."""
    written = []
    for (model, pretrained), by_dataset in models.items():
        means = model_average(by_dataset).means
        for head in sorted({h for h, _ in means}):
            rows = [{"shots": k, "top1": number(v)} for (h, k), v in sorted(means.items()) if h == head]
            name = curve_name(head, model, pretrained, several_models=len(models) > 1)
            written.append(write_rows(folder / name, ("shots", "top1"), rows))
    return written


def write_csvs(runs: list[Run], groups: dict[GroupKey, list[Run]], models: dict[ModelKey, dict[str, list[Run]]],
               results_dir: Path, out: Path) -> list[Path]:
    """runs.csv, summary.csv, accuracy_by_shots.csv and curves/*.csv under `out`; returns their paths."""
    return [write_rows(out / "runs.csv", RUN_FIELDS, run_rows(runs, results_dir)),
            write_rows(out / "summary.csv", SUMMARY_FIELDS, summary_rows(groups)),
            write_rows(out / "accuracy_by_shots.csv", CURVE_FIELDS, accuracy_rows(groups)),
            *write_curves(models, out / "curves")]

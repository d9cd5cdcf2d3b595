"""Aggregate evaluation JSONs: a CSV of every run and a heads x shots Markdown table (mean ± std over seeds)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ClipCacheError

CSV_FIELDS = ("dataset", "model", "pretrained", "random_weights", "head", "shots", "seed", "top1",
              "mean_per_class_accuracy", "ece", "n_test", "selected", "head_params")


def load_runs(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every evaluation.json under results_dir, sorted by (dataset, model, head, shots, seed)."""
    paths = sorted(Path(results_dir).rglob("evaluation.json"))
    if not paths:
        raise ClipCacheError(f"no evaluation.json under {str(results_dir)!r}; run `clipcache evaluate` first")
    runs = [json.loads(p.read_text()) for p in paths]
    return sorted(runs, key=lambda r: (r["dataset"], r["model"], str(r["pretrained"]), r["head"], r["shots"], r["seed"]))


def csv_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**{k: r.get(k) for k in CSV_FIELDS[:7]},
             **{k: r["metrics"][k] for k in ("top1", "mean_per_class_accuracy", "ece", "n_test")},
             "selected": json.dumps(r["selected"], sort_keys=True), "head_params": json.dumps(r["head_params"], sort_keys=True)}
            for r in runs]


def write_csv(runs: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(runs))


def groups(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Runs by (data set, model, pretrained): one table each."""
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        out[(r["dataset"], r["model"], str(r["pretrained"]))].append(r)
    return dict(out)


def cell_stats(runs: list[dict[str, Any]], metric: str = "top1") -> dict[tuple[str, int], tuple[float, float, int]]:
    """(head, shots) -> (mean, std, number of seeds) of a metric, in percent."""
    cells: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in runs:
        cells[(r["head"], r["shots"])].append(100 * r["metrics"][metric])
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in cells.items()}


def title(key: tuple[str, str, str], runs: list[dict[str, Any]]) -> str:
    dataset, model, pretrained = key
    warning = " — RANDOM WEIGHTS (pretrained: none): numbers carry no meaning" if runs[0]["random_weights"] else ""
    return f"{dataset} / {model} / {pretrained}{warning}"


def markdown_table(runs: list[dict[str, Any]], metric: str = "top1") -> str:
    """One heads x shots table per (data set, model, pretrained): mean ± std over seeds (n seeds)."""
    sections = []
    for key, members in groups(runs).items():
        stats = cell_stats(members, metric)
        heads = sorted({h for h, _ in stats})
        shots = sorted({s for _, s in stats})
        lines = [f"### {title(key, members)}", "", f"{metric} (%), mean ± std over seeds", "",
                 "| head | " + " | ".join(f"{s} shot{'s' if s > 1 else ''}" for s in shots) + " |",
                 "|---|" + "---|" * len(shots)]
        for head in heads:
            cells = [f"{stats[(head, s)][0]:.1f} ± {stats[(head, s)][1]:.1f} ({stats[(head, s)][2]})"
                     if (head, s) in stats else "" for s in shots]
            lines.append(f"| {head} | " + " | ".join(cells) + " |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"

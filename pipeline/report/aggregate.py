"""Runs grouped into cells: per (data set, model, pretrained) a heads x shots grid of summaries over seeds, and per
(model, pretrained) the average over data sets of the per-data-set seed means (the papers' "Average" column)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pipeline.report.load import Run
from pipeline.report.stats import Summary, summarise

METRICS = ("top1", "mean_per_class_accuracy", "ece")
GroupKey = tuple[str, str, str]  # (dataset, model, pretrained)
ModelKey = tuple[str, str]  # (model, pretrained)
Cell = tuple[str, int]  # (head, shots)
RANDOM_WARNING = "RANDOM WEIGHTS (pretrained: none): numbers carry no meaning"


def by_group(runs: list[Run]) -> dict[GroupKey, list[Run]]:
    """Runs by (data set, model, pretrained), in sorted order."""
    out: dict[GroupKey, list[Run]] = defaultdict(list)
    for run in runs:
        out[(run.dataset, run.model, run.pretrained)].append(run)
    return dict(sorted(out.items()))


def by_model(runs: list[Run]) -> dict[ModelKey, dict[str, list[Run]]]:
    """Runs by (model, pretrained), then by data set, in sorted order."""
    out: dict[ModelKey, dict[str, list[Run]]] = defaultdict(dict)
    for (dataset, model, pretrained), members in by_group(runs).items():
        out[(model, pretrained)][dataset] = members
    return dict(sorted(out.items()))


def cell_summaries(runs: list[Run], metric: str = "top1") -> dict[Cell, Summary]:
    """(head, shots) -> the metric over seeds, in percent."""
    values: dict[Cell, list[float]] = defaultdict(list)
    for run in runs:
        values[(run.head, run.shots)].append(100 * run.metrics[metric])
    return {cell: summarise(v) for cell, v in sorted(values.items())}


@dataclass(frozen=True)
class Average:
    """Mean over data sets of per-data-set seed means, for the cells present in every data set."""

    datasets: list[str]  # the data sets of this (model, pretrained)
    means: dict[Cell, float]  # cells present in every data set
    missing: dict[Cell, list[str]]  # cells lacking in some data set -> the data sets that lack them


def average_over_datasets(per_dataset: dict[str, dict[Cell, Summary]]) -> Average:
    """The Average table of one (model, pretrained) from its per-data-set cell summaries.

    Args:
        per_dataset: data set -> (head, shots) -> summary over seeds.
    """
    datasets = sorted(per_dataset)
    cells = sorted({cell for summaries in per_dataset.values() for cell in summaries})
    means: dict[Cell, float] = {}
    missing: dict[Cell, list[str]] = {}
    for cell in cells:
        lacking = [d for d in datasets if cell not in per_dataset[d]]
        if lacking:
            missing[cell] = lacking
        else:
            means[cell] = sum(per_dataset[d][cell].mean for d in datasets) / len(datasets)
    return Average(datasets, means, missing)


def model_average(by_dataset: dict[str, list[Run]], metric: str = "top1") -> Average:
    """The Average of one (model, pretrained) for a metric, from its runs by data set."""
    return average_over_datasets({d: cell_summaries(members, metric) for d, members in by_dataset.items()})


def heading(names: tuple[str, ...], random_weights: bool) -> str:
    """'dataset / model / pretrained' (or any names joined), with the random-weights warning when it applies."""
    return " / ".join(names) + (f" — {RANDOM_WARNING}" if random_weights else "")

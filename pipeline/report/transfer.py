"""The transfer tables as the papers print them (CoCoOp's Tables 2 and 3): per protocol (cross-data-set transfer,
domain generalisation), model, weights, source and shots, one row per head: the source's test top-1, each target's,
and the targets' average, means over seeds (%). transfer.csv holds every (run, scored split) in long form."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report.aggregate import heading
from pipeline.report.load import TRANSFER, Run
from pipeline.report.tables import MISSING, Table, shots_label

TITLES = {"cross_dataset": "Cross-data-set transfer", "domain_generalisation": "Domain generalisation"}
NOT_APPLICABLE = "n/a"
TransferKey = tuple[str, str, str, str, int]  # (protocol, source, model, pretrained, shots)


def transfer_groups(runs: list[Run]) -> dict[TransferKey, list[Run]]:
    """Transfer runs by (protocol, source data set, model, pretrained, shots), sorted."""
    out: dict[TransferKey, list[Run]] = defaultdict(list)
    for run in runs:
        if run.transfer is not None:
            out[(run.protocol, run.dataset, run.model, run.pretrained, run.shots)].append(run)
    return dict(sorted(out.items()))


def target_order(members: list[Run]) -> list[str]:
    """The targets in the order the runs record them (their union, first seen first)."""
    return list(dict.fromkeys(name for run in members for name in run.transfer or {}))


def target_cell(chosen: list[Run], target: str) -> float | str:
    """A target's top-1 mean over seeds (%); 'n/a' where the head does not apply, '—' where a seed lacks the target."""
    if any(target not in (r.transfer or {}) for r in chosen):
        return MISSING
    values = [(r.transfer or {})[target] for r in chosen]
    return NOT_APPLICABLE if None in values else 100 * float(np.mean([v for v in values if v is not None]))


def head_row(head: str, chosen: list[Run], targets: list[str]) -> list[str]:
    """The row of one head: source, each target, the targets' average (only when every target has a number), seeds."""
    source = 100 * float(np.mean([r.metrics["top1"] for r in chosen]))
    cells = [target_cell(chosen, t) for t in targets]
    numbers = [c for c in cells if isinstance(c, float)]
    average = f"{np.mean(numbers):.1f}" if len(numbers) == len(cells) else MISSING
    return [head, f"{source:.1f}", *(c if isinstance(c, str) else f"{c:.1f}" for c in cells), average,
            str(len(chosen))]


def transfer_tables(runs: list[Run]) -> list[Table]:
    """One table per (protocol, source, model, pretrained, shots) of transfer runs."""
    tables = []
    for (protocol, source, model, pretrained, shots), members in transfer_groups(runs).items():
        targets = target_order(members)
        rows = [head_row(head, [r for r in members if r.head == head], targets)
                for head in sorted({r.head for r in members})]
        notes = [f"{NOT_APPLICABLE}: the head has per-class parameters and the target's classes are not all among "
                 f"{source}'s; {MISSING}: a seed lacks the target; the Average needs every target"]
        caption = (f"{TITLES[protocol]}: fitted on {source} ({shots_label(shots)}), top-1 (%) on each test split, "
                   "means over seeds; Average: the mean over the targets")
        tables.append(Table(f"{TITLES[protocol]} — {heading((source, model, pretrained), members[0].random_weights)}",
                            caption, ["head", source, *targets, "Average", "seeds"], rows, notes))
    return tables


def split_transfer(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(runs of the other protocols, transfer runs)."""
    return [r for r in runs if r.protocol not in TRANSFER], [r for r in runs if r.protocol in TRANSFER]


TRANSFER_FIELDS = ("protocol", "source", "target", "model", "pretrained", "random_weights", "head", "shots", "seed",
                   "top1", "head_params", "evaluation")


def transfer_rows(runs: list[Run], results_dir: Path) -> list[dict[str, Any]]:
    """transfer.csv: one row per (run, scored split), the source's own test split first; top1 a fraction, 'n/a'
    where the head does not apply."""
    rows = []
    for run in runs:
        scored: dict[str, float | None] = {run.dataset: run.metrics["top1"], **(run.transfer or {})}
        for target, top1 in scored.items():
            rows.append({"protocol": run.protocol, "source": run.dataset, "target": target, "model": run.model,
                         "pretrained": run.pretrained, "random_weights": run.random_weights, "head": run.head,
                         "shots": run.shots, "seed": run.seed,
                         "top1": NOT_APPLICABLE if top1 is None else f"{top1:.4f}",
                         "head_params": json.dumps(run.head_params, sort_keys=True),
                         "evaluation": run.source.relative_to(results_dir).as_posix()})
    return rows

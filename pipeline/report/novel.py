"""The base-to-novel table: per (data set, model, pretrained), each head and shot count's base, novel and harmonic
mean accuracies (%), means over seeds (CoCoOp's protocol: base classes fitted, novel classes never seen)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pipeline.report.aggregate import by_group, heading
from pipeline.report.load import Run
from pipeline.report.stats import summarise
from pipeline.report.tables import Table, shots_label


def novel_tables(runs: list[Run]) -> list[Table]:
    """One table per group of base-to-novel runs: head, shots, base, novel, HM (mean over seeds, n)."""
    tables = []
    for key, members in by_group([r for r in runs if r.base_to_novel]).items():
        cells: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)  # the runs' base_to_novel records
        for run in members:
            if run.base_to_novel is not None:  # every member is a base-to-novel run
                cells[(run.head, run.shots)].append(run.base_to_novel)
        rows = []
        for (head, shots), chosen in sorted(cells.items()):
            values = {m: summarise([100 * r[m] for r in chosen]) for m in ("base", "novel", "hm")}
            rows.append([head, shots_label(shots), *(f"{values[m].mean:.1f}" for m in ("base", "novel", "hm")),
                         str(len(chosen))])
        tables.append(Table(heading(key, members[0].random_weights),
                            "base-to-novel: base classes fitted and scored among themselves, novel classes scored "
                            "among themselves; HM = 2 B N / (B + N) per seed, then averaged",
                            ["head", "shots", "base (%)", "novel (%)", "HM (%)", "seeds"], rows))
    return tables


def split_protocols(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(runs over all classes, validation-free ones among them; base-to-novel runs)."""
    return ([r for r in runs if r.protocol != "base_to_novel"], [r for r in runs if r.protocol == "base_to_novel"])


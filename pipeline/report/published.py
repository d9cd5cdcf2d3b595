"""Published numbers beside ours: the papers' accuracies as data (resources/published.csv) matched to our runs.

A published row applies to a (data set, model, pretrained, head, shots) cell of ours when the head, data set,
backbone, weights and shots agree (a zero-shot row, shots 0, applies at every shot count), and the run's head
parameters hold the row's own (a paper variant such as K_N = 10). Whether the run followed the paper's protocol is
judged against the preset of that paper: every head parameter the preset fixes must match, else the row says which
differ and shows no difference. Runs with random weights are never compared.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from pipeline.errors import ClipCacheError
from pipeline.presets import load_preset, protocol_differences
from pipeline.report.aggregate import GroupKey
from pipeline.report.load import TRANSFER, Run
from pipeline.report.stats import summarise
from pipeline.report.tables import Table

DISAGREEMENT = 1.0  # points of top-1 between two sources of one cell that the report flags
COLUMNS = ("paper", "table", "method", "head", "head_params", "backbone", "weights", "dataset", "shots", "value",
           "protocol", "note", "citation")


@dataclass(frozen=True)
class Published:
    """One published accuracy (%) and where it comes from."""

    paper: str
    table: str
    method: str
    head: str  # our head it corresponds to ('' when none)
    head_params: dict[str, Any]  # the variant's parameters (e.g. {"top_k": 10})
    backbone: str
    weights: str
    dataset: str
    shots: int
    value: float
    protocol: str  # the preset whose protocol the number was obtained under
    note: str
    citation: str


@cache
def published_numbers() -> tuple[Published, ...]:
    """Every row of resources/published.csv, checked."""
    text = resources.files("pipeline.report").joinpath("resources/published.csv").read_text(encoding="utf-8")
    rows = []
    for i, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        if tuple(row) != COLUMNS:
            raise ClipCacheError(f"published.csv line {i}: columns must be {', '.join(COLUMNS)}")
        try:
            rows.append(Published(row["paper"], row["table"], row["method"], row["head"],
                                  json.loads(row["head_params"]) if row["head_params"] else {}, row["backbone"],
                                  row["weights"], row["dataset"], int(row["shots"]), float(row["value"]),
                                  row["protocol"], row["note"], row["citation"]))
        except ValueError as exc:
            raise ClipCacheError(f"published.csv line {i}: {exc}") from exc
    return tuple(rows)


def same_cell(row: Published, key: GroupKey, head: str, shots: int, head_params: dict[str, Any]) -> bool:
    """Whether a published row's head, data set (layout), backbone, weights and shots are this cell's (a zero-shot
    row, shots 0, at every shot count) and the run's head parameters hold the row's own (a variant), whatever the
    protocol."""
    dataset, model, pretrained = key
    same = (row.head == head and row.dataset == dataset and row.backbone == model and row.weights == pretrained)
    shots_match = row.shots == shots or (head == "zero_shot" and row.shots == 0)
    return same and shots_match and all(head_params.get(k) == v for k, v in row.head_params.items())


def applies(row: Published, key: GroupKey, head: str, shots: int, head_params: dict[str, Any]) -> bool:
    """Whether a published row describes this few-shot cell of ours (see the module docstring)."""
    few_shot = load_preset(row.protocol).protocol not in TRANSFER  # transfer rows: published_transfer.py
    return same_cell(row, key, head, shots, head_params) and few_shot


def comparison_rows(groups: dict[GroupKey, list[Run]]) -> list[list[str]]:
    """[data set / model / weights, head, shots, ours, paper, ours - paper, source, protocol] for every match."""
    rows = []
    for key, members in groups.items():
        if any(r.random_weights for r in members):
            continue
        cells: dict[tuple[str, int], list[Run]] = defaultdict(list)
        for run in members:
            cells[(run.head, run.shots)].append(run)
        # a published number is of the data set the layout reads (dtd), whatever a grid names it (dtd_mine)
        layout_key = (members[0].layout, key[1], key[2])
        for (head, shots), runs in sorted(cells.items()):
            ours = summarise([100 * r.metrics["top1"] for r in runs])
            matched = [row for row in published_numbers() if applies(row, layout_key, head, shots, runs[0].head_params)]
            for row in matched:
                differs = protocol_differences(load_preset(row.protocol), head, runs[0].head_params)
                delta = "—" if differs else f"{ours.mean - row.value:+.1f}"
                rows.append([" / ".join(key), head, str(shots), f"{ours.mean:.1f} (n={ours.n})", f"{row.value:.2f}",
                             delta, f"{row.paper}: {row.method}, {row.table}" + disagreement(row, matched),
                             "as the paper" if not differs else "differs: " + "; ".join(differs)])
    return rows


def disagreement(row: Published, matched: list[Published]) -> str:
    """' — disagrees with <paper> (<value>)' for every other source (citation) of the same cell more than a point away:
    the report shows both rather than picking one."""
    others = [o for o in matched if o.citation != row.citation and abs(o.value - row.value) > DISAGREEMENT]
    return "".join(f" — disagrees with {o.paper}: {o.method} ({o.value:.2f})" for o in others)


def comparison_table(groups: dict[GroupKey, list[Run]]) -> Table:
    """The 'paper beside ours' table, with the reason when nothing can be compared."""
    rows = comparison_rows(groups)
    notes = [("A published number is shown where its head, data set, backbone, weights and shots match a cell of "
              "ours; the difference only where our run's head parameters follow the paper's preset "
              "(`clipcache presets`). Sources and citations: pipeline/report/resources/published.csv.")]
    random = sorted({" / ".join(k) for k, members in groups.items() if any(r.random_weights for r in members)})
    if random:
        notes.append("Random weights, nothing compared: " + ", ".join(random) + ".")
    if not rows:
        notes.append("No published number matches these runs (the papers report openai weights on their data sets).")
    return Table("Published numbers beside ours", "top-1 accuracy (%): ours (mean over seeds) and the paper's",
                 ["data set / model / weights", "head", "shots", "ours", "paper", "ours \u2212 paper", "source",
                  "protocol"], rows, notes)

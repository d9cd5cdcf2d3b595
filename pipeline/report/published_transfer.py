"""Published transfer numbers beside ours: the cross-data-set and domain-generalisation rows of published.csv
matched to our transfer runs.

A row applies to a (protocol, source, model, pretrained, shots, head) group of ours and one of its scored splits (the
source's own test split, a target, or the targets' Average) when its head, data set (the split's layout, or
'average'), backbone, weights and shots agree (a zero-shot row, shots 0, applies at every shot count) and its preset
(`protocol` column) is a preset of the run's protocol, and the run's head parameters hold the row's own (a variant:
template_set coop). As for the few-shot rows, the difference is shown only where the run's head parameters follow
that preset; sources of one cell more than a point apart are flagged.
"""

from __future__ import annotations

from pipeline.presets import load_preset, protocol_differences
from pipeline.report.load import Run
from pipeline.report.published import Published, disagreement, published_numbers, same_cell
from pipeline.report.stats import summarise
from pipeline.report.tables import Table
from pipeline.report.transfer import TITLES, target_cell, transfer_groups

AVERAGE = "average"


def scored_splits(chosen: list[Run]) -> list[tuple[str, str, float | str]]:
    """(name, layout, ours in %) of the source, each target and the Average, for one head's runs (a target the head
    does not apply to, or that a seed lacks, carries its table mark instead of a number)."""
    first = chosen[0]
    layouts = first.transfer_layouts or {}
    splits: list[tuple[str, str, float | str]] = [
        (first.dataset, first.layout, summarise([100 * r.metrics["top1"] for r in chosen]).mean)]
    targets = [(name, layouts.get(name, name), target_cell(chosen, name)) for name in first.transfer or {}]
    numbers = [v for _, _, v in targets if isinstance(v, float)]
    average: float | str = sum(numbers) / len(numbers) if targets and len(numbers) == len(targets) else "—"
    return splits + targets + [(AVERAGE, AVERAGE, average)]


def applies(row: Published, protocol: str, layout: str, run: Run) -> bool:
    """Whether a published row describes this split of `run`'s group (see the module docstring)."""
    return (same_cell(row, (layout, run.model, run.pretrained), run.head, run.shots, run.head_params)
            and load_preset(row.protocol).protocol == protocol)


def transfer_comparison(runs: list[Run]) -> Table:
    """Every published transfer number beside the matching split of ours."""
    rows = []
    for (protocol, source, model, pretrained, _), members in transfer_groups(runs).items():
        if any(r.random_weights for r in members):
            continue
        for head in sorted({r.head for r in members}):
            chosen = [r for r in members if r.head == head]
            for name, layout, ours in scored_splits(chosen):
                matched = [row for row in published_numbers()
                           if applies(row, protocol, layout, chosen[0])]
                for row in matched:
                    differs = protocol_differences(load_preset(row.protocol), head, chosen[0].head_params)
                    delta = f"{ours - row.value:+.1f}" if isinstance(ours, float) and not differs else "—"
                    shown = f"{ours:.1f} (n={len(chosen)})" if isinstance(ours, float) else ours
                    rows.append([f"{TITLES[protocol]}: {source} / {model} / {pretrained}", head, name, shown,
                                 f"{row.value:.2f}", delta,
                                 f"{row.paper}: {row.method}, {row.table}" + disagreement(row, matched),
                                 "as the paper" if not differs else "differs: " + "; ".join(differs)])
    notes = ["A published transfer number is shown where its head, data set, backbone, weights and shots match a split "
             "of ours and its preset is one of this protocol (cocoop_xd, maple_dg, ...); the difference only where our "
             "head parameters follow that preset. Runs with random weights are never compared."]
    if not rows:
        notes.append("No published transfer number matches these runs.")
    return Table("Published transfer numbers beside ours", "top-1 accuracy (%): ours (mean over seeds) and the paper's",
                 ["protocol: source / model / weights", "head", "scored on", "ours", "paper", "ours \u2212 paper",
                  "source", "protocol"], rows, notes)

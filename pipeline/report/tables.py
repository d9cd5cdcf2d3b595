"""Result tables as plain data (`Table`), built once and rendered both as Markdown (here) and as HTML (html.py).

Per (data set, model, pretrained): heads x shots, each cell "mean ± std [95% CI] (n=seeds)" over seeds; one seed
shows its value alone with "(n=1)". Per (model, pretrained): the Average over data sets of the per-data-set means,
"—" for a cell some data set lacks, with a note naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.report.aggregate import Average, Cell, GroupKey, ModelKey, cell_summaries, heading, model_average
from pipeline.report.load import Run
from pipeline.report.stats import Summary

MISSING = "—"
METRIC_LABELS = {"top1": "top-1 accuracy (%)", "mean_per_class_accuracy": "mean per-class accuracy (%)",
                 "ece": "expected calibration error, ECE (%, lower is better)"}
DIGITS = {"top1": 1, "mean_per_class_accuracy": 1, "ece": 2}  # decimals shown, in percent


@dataclass(frozen=True)
class Table:
    """A titled table of strings with a caption above and notes below."""

    title: str
    caption: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def shots_label(shots: int) -> str:
    """'1 shot', '16 shots'."""
    return f"{shots} shot{'' if shots == 1 else 's'}"


def format_summary(summary: Summary, digits: int = 1, bounds: tuple[float, float] = (0.0, 100.0)) -> str:
    """'71.3 ± 1.2 [68.3, 74.3] (n=3)'; a single seed: '71.3 (n=1)' (no spread, no interval); the interval is
    clipped to the metric's range `bounds` (two seeds give a Student-t interval wider than a percentage can be)."""
    if summary.interval is None or summary.std is None:
        return f"{summary.mean:.{digits}f} (n={summary.n})"
    low, high = max(summary.interval[0], bounds[0]), min(summary.interval[1], bounds[1])
    mean, std = f"{summary.mean:.{digits}f}", f"{summary.std:.{digits}f}"
    return f"{mean} ± {std} [{low:.{digits}f}, {high:.{digits}f}] (n={summary.n})"


def grid(cells: dict[Cell, str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a heads x shots grid; absent cells read MISSING."""
    heads = sorted({head for head, _ in cells})
    shots = sorted({k for _, k in cells})
    rows = [[head] + [cells.get((head, k), MISSING) for k in shots] for head in heads]
    return ["head"] + [shots_label(k) for k in shots], rows


def group_table(key: GroupKey, runs: list[Run], metric: str) -> Table:
    """The heads x shots table of one (data set, model, pretrained) for a metric."""
    cells = {cell: format_summary(s, DIGITS[metric]) for cell, s in cell_summaries(runs, metric).items()}
    header, rows = grid(cells)
    caption = (f"{METRIC_LABELS[metric]}: mean ± sample std over seeds [95% Student-t interval of the mean, "
               "clipped to 0-100] (n = seeds); n=1: one seed, no spread estimated")
    return Table(heading(key, any(r.random_weights for r in runs)), caption, header, rows)


def average_table(key: ModelKey, by_dataset: dict[str, list[Run]], metric: str) -> Table:
    """The Average over data sets of one (model, pretrained) for a metric."""
    average: Average = model_average(by_dataset, metric)
    cells = {cell: f"{mean:.{DIGITS[metric]}f}" for cell, mean in average.means.items()}
    cells.update({cell: MISSING for cell in average.missing})
    header, rows = grid(cells)
    names = ", ".join(average.datasets)
    caption = (f"{METRIC_LABELS[metric]}: mean over {len(average.datasets)} data set(s) ({names}) of each data "
               f"set's mean over seeds; {MISSING}: not run on every data set")
    notes = [f"{MISSING} {head}, {shots_label(k)}: lacking in {', '.join(lacking)}"
             for (head, k), lacking in average.missing.items()]
    random_weights = any(r.random_weights for members in by_dataset.values() for r in members)
    return Table(heading(("Average", *key), random_weights), caption, header, rows, notes)


def metric_tables(groups: dict[GroupKey, list[Run]], models: dict[ModelKey, dict[str, list[Run]]],
                  metric: str) -> list[Table]:
    """Every per-data-set table of a metric, then the Average of each (model, pretrained)."""
    tables = [group_table(key, members, metric) for key, members in groups.items()]
    return tables + [average_table(key, by_dataset, metric) for key, by_dataset in models.items()]


def escape_markdown(text: str) -> str:
    """A cell that cannot break the table."""
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    """The table as a Markdown section: ### title, caption, the pipe table, notes as a list; a table without rows is
    its notes alone (one line saying why there is nothing), not an empty table under a second heading."""
    if not table.rows:
        return " ".join(escape_markdown(note) for note in table.notes or ["Nothing to show."]) + "\n"
    lines = [f"### {table.title}", "", table.caption, "",
             "| " + " | ".join(escape_markdown(h) for h in table.header) + " |",
             "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines += [""] + [f"* {escape_markdown(note)}" for note in table.notes]
    return "\n".join(lines) + "\n"

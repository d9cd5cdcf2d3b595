"""Which head is really better: paired comparison of the heads over the cells they all ran, as machine-learning
benchmarks report it (Demšar 2006): average ranks, a Friedman test, Nemenyi's critical difference (CD) and its
diagram, computed by autorank (Herbold, JOSS 2020) with its non-parametric tests forced.

A cell is one (data set, model, pretrained weights, shots, seed) that every compared head ran inductively on all
classes; each head's value is its top-1 there. Cells of one data set are not independent draws (the seeds share its
test set), so the test says how consistently a head wins across the grid the user ran, not across data sets at large.
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from pipeline.report.document import Plot, Section
from pipeline.report.load import Run
from pipeline.report.tables import Table

MIN_CELLS = 5  # autorank's minimum number of paired measurements
ALPHA = 0.05
TITLE = "Which head is better: ranks over the grid"


def paired_cells(runs: list[Run]) -> tuple[list[str], list[list[float]], int]:
    """(heads, rows of top-1 per cell in head order, cells left out) over the cells where every head has a run.

    Heads with the fewest cells are dropped first while that gains complete cells, so one head run on a single data
    set does not empty the comparison."""
    values: dict[tuple[Any, ...], dict[str, float]] = defaultdict(dict)
    for r in runs:
        if r.protocol == "all" and not r.transductive:
            values[(r.dataset, r.model, r.pretrained, r.shots, r.seed)][r.head] = 100 * r.metrics["top1"]
    heads = sorted({h for cell in values.values() for h in cell})
    while len(heads) > 2:
        complete = [c for c in values.values() if all(h in c for h in heads)]
        coverage = {h: sum(h in c for c in values.values()) for h in heads}
        rarest = min(heads, key=lambda h: (coverage[h], h))
        without = [c for c in values.values() if all(h in c for h in heads if h != rarest)]
        if len(without) <= len(complete):
            break
        heads.remove(rarest)
    rows = [[cell[h] for h in heads] for cell in values.values() if all(h in cell for h in heads)]
    return heads, rows, len(values) - len(rows)


def rank_section(runs: list[Run], folder: Path) -> Section:
    """The ranks table, the Friedman test and the CD diagram; one line saying why when there is too little."""
    heads, rows, left_out = paired_cells(runs)
    caption = (f"Average rank of each head over {len(rows)} cells (data set, model, weights, shots, seed) that every "
               "head ran (1 = best top-1); Friedman test, Nemenyi post-hoc (autorank, non-parametric).")
    if len(heads) < 2 or len(rows) < MIN_CELLS:
        reason = (f"needs at least two heads and {MIN_CELLS} cells that all of them ran; this grid has "
                  f"{len(heads)} head(s) over {len(rows)} such cell(s)")
        return Section(TITLE, [Table(TITLE, caption, ["head", "average rank"], [], [f"Not computed: {reason}."])])
    import pandas as pd
    from autorank import autorank, plot_stats

    data = pd.DataFrame(rows, columns=heads)
    with contextlib.redirect_stdout(io.StringIO()):  # autorank prints its choice of tests
        result = autorank(data, alpha=ALPHA, verbose=False, force_mode="nonparametric", order="descending")
    ranks = result.rankdf["meanrank"]
    table_rows = [[head, f"{ranks[head]:.2f}"] for head in ranks.index]
    notes = [f"{result.omnibus.capitalize()} test p = {result.pvalue:.3g} over {len(rows)} cells"
             + (f"; critical difference (Nemenyi, alpha {ALPHA}) = {result.cd:.2f} ranks: heads whose average ranks "
                "differ by less are not distinguishable" if result.cd is not None else "")
             + (f"; {left_out} cell(s) left out where a head had no run" if left_out else "") + "."]
    section = Section(TITLE, [Table(TITLE, caption, ["head", "average rank"], table_rows, notes)])
    if result.posthoc == "nemenyi" and len(heads) > 2:
        fig = Figure(figsize=(7, 1.2 + 0.28 * len(heads)), layout="constrained")
        with contextlib.redirect_stdout(io.StringIO()):
            plot_stats(result, allow_insignificant=True, ax=fig.add_subplot(1, 1, 1))
        path = folder / "critical_difference.png"
        fig.savefig(path, dpi=150)
        section.figures.append(Plot(path, f"Critical-difference diagram: average ranks over {len(rows)} cells; "
                                          "heads joined by a bar are not significantly different (Nemenyi)"))
    return section

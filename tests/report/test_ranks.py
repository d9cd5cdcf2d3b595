"""The ranks section: average ranks, Friedman and Nemenyi over the cells every head ran, against the textbook
formulas (Demšar 2006) on a grid with a known order; the refusal when there is too little."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from pipeline.report import build_report
from pipeline.report.load import load_runs
from pipeline.report.ranks import paired_cells, rank_section
from tests.report.records import record, write, write_grid

# three heads on two data sets x two shot counts x two seeds = 8 cells; 'best' wins every cell, 'mid' beats 'low'
# in all but one
GRID = {(d, h, k): v for d in ("dtd", "eurosat") for k in (1, 4) for h, v in (
    ("best", [0.9, 0.8]), ("mid", [0.6, 0.55]), ("low", [0.5, 0.4 if (d, k) != ("dtd", 4) else 0.7]))}


def test_ranks_friedman_and_critical_difference_are_the_textbook_values(tmp_path: Path) -> None:
    write_grid(tmp_path / "results", GRID)
    runs = load_runs(tmp_path / "results")
    heads, rows, left_out = paired_cells(runs)
    assert heads == ["best", "low", "mid"] and len(rows) == 8 and left_out == 0
    section = rank_section(runs, tmp_path)
    table = section.tables[0]
    ranks = {head: float(rank) for head, rank in table.rows}
    expected = np.mean([stats.rankdata(-np.array(row)) for row in rows], axis=0)  # 1 = the best top-1
    assert ranks == {h: round(float(r), 2) for h, r in zip(heads, expected, strict=True)}
    assert ranks["best"] == 1.0 and ranks["mid"] < ranks["low"]
    p_value = stats.friedmanchisquare(*np.array(rows).T).pvalue
    q_alpha = 2.343  # Nemenyi's q at alpha 0.05 for 3 treatments (Demšar 2006, Table 5)
    cd = q_alpha * math.sqrt(3 * 4 / (6 * 8))
    assert f"Friedman test p = {p_value:.3g} over 8 cells" in table.notes[0]
    assert f"critical difference (Nemenyi, alpha 0.05) = {cd:.2f} ranks" in table.notes[0]
    assert section.figures and section.figures[0].path.is_file()


def test_too_few_cells_say_why_and_the_report_holds_the_section(tmp_path: Path) -> None:
    small = {k: v for k, v in GRID.items() if k[0] == "dtd" and k[2] == 1}  # 2 cells
    write_grid(tmp_path / "results", small)
    section = rank_section(load_runs(tmp_path / "results"), tmp_path)
    assert section.tables[0].rows == [] and not section.figures
    assert "Not computed: needs at least two heads and 5 cells that all of them ran; this grid has 3 head(s) over 2" \
           in section.tables[0].notes[0]
    write_grid(tmp_path / "more", GRID)
    write(tmp_path / "more", record("ucf101", "lonely", 1, 1, 0.99))  # one cell only: left out, not the grid
    heads, rows, left_out = paired_cells(load_runs(tmp_path / "more"))
    assert heads == ["best", "low", "mid"] and len(rows) == 8 and left_out == 1
    build_report(tmp_path / "more", tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert "Which head is better: ranks over the grid" in html and "Critical-difference diagram" in html
    assert list((tmp_path / "report").rglob("critical_difference.png"))

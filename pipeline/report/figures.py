"""Accuracy-versus-shots figures (VT-CLIP Fig. 3 style): a grid of one small plot per data set, and the Average.

Drawn with matplotlib's object API (`Figure`, rendered by Agg): no pyplot state, no display needed. Each head keeps
the style `styles.head_styles` gave it; the x axis is log2 with the shot counts as ticks (symlog when 0 shots is
present); the spread over seeds is ± one sample std (absent for cells with a single seed): a faint band when a
plot holds at most `BANDS_UP_TO` heads, else thin capped error bars, each head's nudged sideways so that they do not
merge into one smear.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.report.aggregate import Average, Cell
from pipeline.report.stats import Summary
from pipeline.report.styles import LineStyle

PANEL_INCHES = (3.4, 2.7)  # one data set's plot
MIN_WIDTH = 7.0  # inches: room for the title and a legend of 13+ heads under a single panel
TITLE_CHARS_PER_INCH = 13  # at fontsize 9: a longer title is wrapped, not cut at the figure's edges
LEGEND_ENTRY_INCHES = 1.35  # width of one legend entry (marker, line, a head's name)
DPI = 110
BANDS_UP_TO = 3  # heads in one plot drawn with a ± std band; more get error bars
NUDGE = 0.035  # log2 units between the error bars of neighbouring heads at one shot count


def shots_axis(ax: Axes, shots: list[int]) -> None:
    """Log2 x axis whose ticks are the shot counts."""
    if min(shots) > 0:
        ax.set_xscale("log", base=2)
    else:
        ax.set_xscale("symlog", base=2, linthresh=1)
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.minorticks_off()
    ax.grid(alpha=0.3)


def draw_head(ax: Axes, shots: list[int], mean: list[float], std: list[float | None], style: LineStyle,
              slot: float | None = None) -> None:
    """One head's line and its ± std where a std exists: a band, or error bars nudged by `slot` (its position among
    the plot's heads, centred on 0) when given."""
    ax.plot(shots, mean, color=style.colour, marker=style.marker, linestyle=style.dash, markersize=4, linewidth=1.3)
    spread = np.array([np.nan if s is None else s for s in std], dtype=float)
    if np.isnan(spread).all():
        return
    if slot is None:
        ax.fill_between(shots, np.asarray(mean) - spread, np.asarray(mean) + spread, color=style.colour, alpha=0.15,
                        linewidth=0)
        return
    nudged = np.asarray(shots, dtype=float) * 2.0 ** (slot * NUDGE)  # [K]: a shift of equal width on the log axis
    ax.errorbar(nudged, mean, yerr=spread, fmt="none", ecolor=style.colour, elinewidth=0.8, capsize=2, alpha=0.8)


def draw_summaries(ax: Axes, summaries: dict[Cell, Summary], styles: dict[str, LineStyle]) -> set[str]:
    """Every head of one data set (mean over seeds ± std); returns the heads drawn."""
    heads = sorted({head for head, _ in summaries})
    bars = len(heads) > BANDS_UP_TO
    for index, head in enumerate(heads):
        cells = sorted((k, s) for (h, k), s in summaries.items() if h == head)
        slot = index - (len(heads) - 1) / 2 if bars else None
        draw_head(ax, [k for k, _ in cells], [s.mean for _, s in cells], [s.std for _, s in cells], styles[head], slot)
    shots_axis(ax, sorted({k for _, k in summaries}))
    return set(heads)


def add_legend(fig: Figure, heads: set[str], styles: dict[str, LineStyle]) -> None:
    """One legend for the whole figure, below the plots (none when nothing was drawn)."""
    if not heads:
        return
    handles = [Line2D([], [], color=styles[h].colour, marker=styles[h].marker, linestyle=styles[h].dash) for h in
               sorted(heads)]
    columns = max(1, min(len(heads), int(fig.get_figwidth() / LEGEND_ENTRY_INCHES)))
    fig.legend(handles, sorted(heads), loc="outside lower center", ncol=columns, fontsize=7, frameon=False)


def accuracy_grid(per_dataset: dict[str, dict[Cell, Summary]], title: str, styles: dict[str, LineStyle],
                  path: Path) -> Path:
    """Top-1 versus shots, one small plot per data set (same axes labels, one shared legend).

    Args:
        per_dataset: data set -> (head, shots) -> top-1 (%) over seeds.
        title: the figure's title (model, pretrained, warnings).
        styles: the report-wide style of each head.
        path: the PNG to write.
    """
    ncols = min(4, len(per_dataset))
    nrows = math.ceil(len(per_dataset) / ncols)
    width = max(PANEL_INCHES[0] * ncols, MIN_WIDTH)
    legend_rows = math.ceil(len({h for s in per_dataset.values() for h, _ in s}) / int(width / LEGEND_ENTRY_INCHES))
    fig = Figure(figsize=(width, PANEL_INCHES[1] * nrows + 0.6 + 0.2 * legend_rows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    heads: set[str] = set()
    for ax, (dataset, summaries) in zip(axes, per_dataset.items(), strict=False):  # spare axes stay empty
        heads |= draw_summaries(ax, summaries, styles)
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("shots per class", fontsize=8)
        ax.set_ylabel("top-1 (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(per_dataset):]:
        ax.set_visible(False)
    add_legend(fig, heads, styles)
    fig.suptitle(textwrap.fill(title, int(fig.get_figwidth() * TITLE_CHARS_PER_INCH)), fontsize=9)
    fig.savefig(path, dpi=DPI)
    return path


def average_curves(average: Average, title: str, styles: dict[str, LineStyle], path: Path) -> Path:
    """Top-1 versus shots averaged over data sets, one line per head (cells present in every data set)."""
    fig = Figure(figsize=(7, 4.8), layout="constrained")
    ax = fig.subplots()
    heads = sorted({head for head, _ in average.means})
    for head in heads:
        cells = sorted((k, v) for (h, k), v in average.means.items() if h == head)
        draw_head(ax, [k for k, _ in cells], [v for _, v in cells], [None] * len(cells), styles[head])
    if average.means:
        shots_axis(ax, sorted({k for _, k in average.means}))
    ax.set_xlabel("shots per class")
    ax.set_ylabel(f"top-1 (%), mean over {len(average.datasets)} data set(s)")
    add_legend(fig, set(heads), styles)
    fig.suptitle(textwrap.fill(title, int(fig.get_figwidth() * TITLE_CHARS_PER_INCH)), fontsize=9)
    fig.savefig(path, dpi=DPI)
    return path

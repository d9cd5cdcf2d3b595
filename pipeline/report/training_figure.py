"""The training-curves figure: train loss, validation accuracy and learning rate against epoch, one line per run.

Drawn with matplotlib's object API (`Figure`, Agg), as figures.py. Each run keeps its head's report-wide colour and
marker (styles.head_styles); a second run of the same head takes the next dash. Points carry markers (every n-th on
a long curve), so that a curve of one point (a head that validates once, at its last epoch) shows. The learning rate
is on a log axis when every rate is positive.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.report.styles import DASHES, head_styles

PANELS = (("train_loss", "train loss (mean over the epoch's minibatches)"), ("val_acc", "validation accuracy (%)"),
          ("lr", "learning rate (last step of the epoch)"))
PANEL_INCHES = (3.6, 2.8)
LEGEND_ENTRY_INCHES = 3.4  # a run id is long
DPI = 110
MARKERS_PER_LINE = 25  # a long curve marks every n-th epoch only

Series = tuple[str, str, dict[str, list[tuple[int, float]]]]  # (run id, head label, metric -> [(epoch, value)])


def training_figure(series: list[Series], path: Path) -> Path:
    """Three panels (loss, val accuracy in %, lr) against epoch, one line per run, one legend of run ids below."""
    styles = head_styles({head for _, head, _ in series})
    width = PANEL_INCHES[0] * len(PANELS)
    columns = max(1, int(width / LEGEND_ENTRY_INCHES))
    fig = Figure(figsize=(width, PANEL_INCHES[1] + 0.5 + 0.22 * math.ceil(len(series) / columns)),
                 layout="constrained")
    axes = fig.subplots(1, len(PANELS), squeeze=True)
    seen: Counter[str] = Counter()
    handles = []
    for _, head, points in series:
        style = styles[head]
        dash = DASHES[(DASHES.index(style.dash) + seen[head]) % len(DASHES)]
        seen[head] += 1
        for ax, (name, _) in zip(axes, PANELS, strict=True):
            found = points.get(name, [])
            scale = 100.0 if name == "val_acc" else 1.0
            ax.plot([epoch for epoch, _ in found], [scale * value for _, value in found], color=style.colour,
                    marker=style.marker, linestyle=dash, markersize=3, linewidth=1.2,
                    markevery=max(1, len(found) // MARKERS_PER_LINE))
        handles.append(Line2D([], [], color=style.colour, marker=style.marker, linestyle=dash))
    for ax, (name, label) in zip(axes, PANELS, strict=True):
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        rates = [value for _, _, points in series for _, value in points.get(name, [])]
        if name == "lr" and rates and min(rates) > 0:
            ax.set_yscale("log")
    fig.legend(handles, [run_id for run_id, _, _ in series], loc="outside lower center", ncol=columns, fontsize=7,
               frameon=False)
    fig.suptitle("Training curves (DVCLive, dvclive/ of each run)", fontsize=9)
    fig.savefig(path, dpi=DPI)
    return path

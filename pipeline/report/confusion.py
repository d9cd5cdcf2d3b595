"""Confusion figures that stay readable and cheap up to 1000 classes, and the most confused class pairs.

The matrix drawn is the mean over seeds of the test counts (each cell: images per seed), coloured by the fraction of
the true class (row-normalised), with its colour scale. Up to `LABELLED_CLASSES` classes: class names on the axes
and the mean count in every cell. Beyond: the matrix as an image (nearest-neighbour, no text; class indices on the
axes) and a list of the most confused pairs beside it in the tables. The figure is at most `MAX_INCHES` x
`MAX_INCHES` at `DPI` (960 x 960 px).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

LABELLED_CLASSES = 30  # above this, no tick labels and no per-cell counts
MAX_INCHES = 8.0
DPI = 120


def row_rates(matrix: np.ndarray) -> np.ndarray:
    """[C, C] counts -> [C, C] fraction of each true class (row) predicted as each class."""
    support = matrix.sum(axis=1, keepdims=True)  # [C, 1]
    return (matrix / np.maximum(support, 1)).astype(np.float32)


def label_cells(fig: Figure, matrix: np.ndarray, rates: np.ndarray, classnames: list[str]) -> None:
    """Class names on both axes and the count in each cell (small matrices only)."""
    ax = fig.axes[0]
    size = 7 if len(classnames) <= 15 else 5
    ax.set_xticks(range(len(classnames)), classnames, rotation=45, ha="right", fontsize=size)
    ax.set_yticks(range(len(classnames)), classnames, fontsize=size)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count:g}" if float(count).is_integer() else f"{count:.1f}", ha="center", va="center",
                fontsize=size, color="black" if rates[i, j] < 0.6 else "white")


def confusion_figure(matrix: np.ndarray, classnames: list[str], title: str, path: Path) -> Path:
    """Draw the row-normalised confusion matrix of `matrix` ([C, C] counts or mean counts over seeds, row = true
    class) into `path`, with its colour scale."""
    n_classes = len(classnames)
    rates = row_rates(matrix)
    inches = min(MAX_INCHES, max(4.0, 0.25 * n_classes + 2.5))
    fig = Figure(figsize=(inches, inches), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if n_classes <= LABELLED_CLASSES:
        label_cells(fig, matrix, rates, classnames)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    ax.set_xlabel("predicted class" + ("" if n_classes <= LABELLED_CLASSES else " (index)"))
    ax.set_ylabel("true class" + ("" if n_classes <= LABELLED_CLASSES else " (index)"))
    ax.set_title(textwrap.fill(title, int(inches * 15)), fontsize=7)
    fig.savefig(path, dpi=DPI)
    return path


def confused_pairs(matrix: np.ndarray, classnames: list[str], top: int = 10) -> list[tuple[str, str, float, float]]:
    """The `top` largest off-diagonal cells: (true class, predicted class, count (a mean over seeds where `matrix` is
    one), fraction of the true class).

    Sorted by count (descending), then by true and predicted index; cells with no count are left out.
    """
    off = matrix.astype(np.float64, copy=True)  # [C, C]
    np.fill_diagonal(off, 0)
    flat = off.ravel()  # [C * C]
    nonzero = np.flatnonzero(flat)
    order = nonzero[np.lexsort((nonzero, -flat[nonzero]))][:top].tolist()
    support = matrix.sum(axis=1)  # [C]
    pairs = []
    for index in order:
        true, predicted = divmod(index, matrix.shape[1])
        pairs.append((classnames[true], classnames[predicted], float(flat[index]),
                      float(flat[index] / support[true])))
    return pairs

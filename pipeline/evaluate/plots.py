"""Figures from evaluation JSONs: accuracy versus shots (VT-CLIP Fig. 3), confusion matrix, attention maps (Fig. 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline.evaluate.aggregate import cell_stats  # noqa: E402


def accuracy_vs_shots(runs: list[dict[str, Any]], heading: str, path: Path) -> None:
    """One line per head (mean over seeds) with a band of ± one std."""
    stats = cell_stats(runs)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for head in sorted({h for h, _ in stats}):
        shots = sorted(s for h, s in stats if h == head)
        mean = np.array([stats[(head, s)][0] for s in shots])
        std = np.array([stats[(head, s)][1] for s in shots])
        ax.plot(shots, mean, marker="o", label=head)
        ax.fill_between(shots, mean - std, mean + std, alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({s for _, s in stats}), [str(s) for s in sorted({s for _, s in stats})])
    ax.set_xlabel("shots per class")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(heading, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def confusion_plot(matrix: np.ndarray, classnames: list[str], heading: str, path: Path) -> None:
    """Row-normalised confusion matrix with counts."""
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(classnames) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if len(classnames) <= 30:
        ax.set_xticks(range(len(classnames)), classnames, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(classnames)), classnames, fontsize=7)
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color="black" if rates[i, j] < 0.6 else "white")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(heading, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def attention_plot(examples: list[dict[str, Any]], classnames: list[str], heading: str, path: Path) -> None:
    """Each test image with the attention of its true class and of the predicted class overlaid.

    The grid covers the model's input, the centre crop of the image: exact for square images (the textile set),
    approximate at the borders of others.
    """
    fig, axes = plt.subplots(len(examples), 3, figsize=(7.5, 2.6 * len(examples)), squeeze=False)
    for row, example in zip(axes, examples):
        image = np.asarray(Image.open(example["image"]).convert("RGB"))
        row[0].imshow(image)
        row[0].set_title("image", fontsize=8)
        for ax, key, label in ((row[1], "attention_true", example["true"]), (row[2], "attention_predicted", example["predicted"])):
            grid = np.asarray(example[key])
            ax.imshow(image)
            ax.imshow(grid, cmap="jet", alpha=0.45, extent=(0, image.shape[1], image.shape[0], 0), interpolation="bilinear")
            ax.set_title(f"{'true' if key.endswith('true') else 'predicted'}: {classnames[label]}", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.suptitle(heading, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

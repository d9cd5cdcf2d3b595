"""Attention maps (VT-CLIP Fig. 1 style): each recorded test image with the attention of its true and predicted class.

The grid covers the model's input, the centre crop of the image: exact for square images, approximate at the
borders of others. Results copied to another machine keep absolute image paths that may not exist there: the
grids are then drawn alone and the panel titles say that the image was not found.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from PIL import Image

from pipeline.errors import ClipCacheError

log = logging.getLogger(__name__)
THUMBNAIL = (448, 448)  # images are shrunk to at most this before drawing
DPI = 110


def open_image(path: str) -> np.ndarray | None:
    """The image as [H, W, 3] uint8 (shrunk), or None when it is missing or unreadable here."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
            image.thumbnail(THUMBNAIL)
            return np.asarray(image)
    except (OSError, ValueError) as exc:
        log.warning("attention figure: image %s cannot be opened here (%s); drawing the grids alone", path, exc)
        return None


def attention_grid(example: dict[str, Any], key: str, source: Path) -> np.ndarray:
    """The [h, w] attention grid under `key`, or an error naming the file."""
    try:
        grid = np.asarray(example[key], dtype=float)
    except (TypeError, ValueError) as exc:
        raise ClipCacheError(f"{source}: attention {key} is not a grid of numbers") from exc
    if grid.ndim != 2:
        raise ClipCacheError(f"{source}: attention {key} must be an [h][w] grid, got shape {grid.shape}")
    return grid


def class_name(classnames: list[str], index: int, source: Path) -> str:
    """The name of class `index`, or an error naming the file."""
    if not 0 <= index < len(classnames):
        raise ClipCacheError(f"{source}: attention class {index} is outside the {len(classnames)} class names")
    return classnames[index]


def draw_row(row: list[Axes], example: dict[str, Any], classnames: list[str], source: Path,
             vmax: float | None = None) -> AxesImage | None:
    """One test image: the photo (or a note that it is missing), then the true and predicted class attention, on a
    colour scale from 0 to `vmax` (the figure's largest weight; each map's own when None); returns the last map."""
    drawn: AxesImage | None = None
    image = open_image(example["image"])
    missing = " (image not found)" if image is None else ""
    if image is None:
        row[0].text(0.5, 0.5, f"image not found here:\n{Path(example['image']).name}", ha="center", va="center",
                    fontsize=7, wrap=True, transform=row[0].transAxes)
    else:
        row[0].imshow(image)
    row[0].set_title("image" if image is not None else "image not found", fontsize=8)
    for ax, key, which in ((row[1], "attention_true", "true"), (row[2], "attention_predicted", "predicted")):
        grid = attention_grid(example, key, source)  # [h, w]
        name = class_name(classnames, example[which], source)
        top = vmax if vmax is not None else float(grid.max())
        if image is None:
            drawn = ax.imshow(grid, cmap="jet", interpolation="bilinear", vmin=0.0, vmax=top)
        else:
            ax.imshow(image)
            drawn = ax.imshow(grid, cmap="jet", alpha=0.45, extent=(0, image.shape[1], image.shape[0], 0),
                              interpolation="bilinear", vmin=0.0, vmax=top)
        ax.set_title(f"{which}: {name}{missing}", fontsize=8)
    for ax in row:
        ax.axis("off")
    return drawn


def attention_figure(examples: list[dict[str, Any]], classnames: list[str], title: str, source: Path,
                     path: Path) -> Path:
    """One row per recorded test image; `source` is the evaluation.json named in errors."""
    fig = Figure(figsize=(7.5, 2.6 * len(examples)), layout="constrained")
    axes = fig.subplots(len(examples), 3, squeeze=False)
    vmax = max(float(attention_grid(e, key, source).max()) for e in examples
               for key in ("attention_true", "attention_predicted"))
    drawn = [draw_row(list(row), example, classnames, source, vmax)
             for row, example in zip(axes, examples, strict=True)]
    if drawn and drawn[-1] is not None:  # one scale for every map of the figure
        fig.colorbar(drawn[-1], ax=axes, shrink=0.6, label="attention weight (a map sums to 1 over the grid)")
    fig.suptitle(textwrap.fill(title, 100), fontsize=8)
    fig.savefig(path, dpi=DPI)
    return path

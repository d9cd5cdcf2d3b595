"""Hyper-parameter grids searched on the validation split."""

from __future__ import annotations

import numpy as np
import torch


def linspace_grid(spec: tuple[float, float, int]) -> list[float]:
    """(start, stop, steps) -> the values, as Tip-Adapter's search_scale/search_step describe them."""
    start, stop, steps = spec
    return torch.linspace(float(start), float(stop), int(steps)).tolist()


def logspace_grid(spec: tuple[float, float, int]) -> list[float]:
    """(log10 start, log10 stop, steps) -> values in float64 (so that (-4, 2, 7) is exactly 1e-4 ... 100)."""
    start, stop, steps = spec
    return [float(10.0 ** round(float(e), 12)) for e in np.linspace(float(start), float(stop), int(steps))]


def best_of(scores: dict[tuple[float, ...], float]) -> tuple[float, ...]:
    """The key with the highest score; ties go to the first in grid order."""
    return max(scores, key=lambda key: (scores[key], -list(scores).index(key)))

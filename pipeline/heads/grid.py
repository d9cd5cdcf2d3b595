"""Hyper-parameter grids searched on the validation split."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Key = TypeVar("Key", bound=tuple[float, ...])


def linspace_grid(spec: tuple[float, float, int]) -> list[float]:
    """(start, stop, steps) -> the values, as Tip-Adapter's search_scale/search_step describe them."""
    start, stop, steps = spec
    return torch.linspace(float(start), float(stop), int(steps)).tolist()


def tip_grid(spec: tuple[float, float, int]) -> list[float]:
    """(start, stop, steps) -> Tip-Adapter's search values [i * (stop - start) / steps + start for i < steps]: the
    authors' arithmetic (utils.py search_hp), so the stop value itself is excluded (0.1 .. 6.9655 for (0.1, 7, 200))."""
    start, stop, steps = float(spec[0]), float(spec[1]), int(spec[2])
    return [i * (stop - start) / steps + start for i in range(steps)]


def logspace_grid(spec: tuple[float, float, int]) -> list[float]:
    """(log10 start, log10 stop, steps) -> values in float64 (so that (-4, 2, 7) is exactly 1e-4 ... 100)."""
    start, stop, steps = spec
    return [float(10.0 ** round(float(e), 12)) for e in np.linspace(float(start), float(stop), int(steps))]


def best_of(scores: dict[Key, float]) -> Key:
    """The key with the highest score; ties go to the first in grid order."""
    return max(scores, key=lambda key: (scores[key], -list(scores).index(key)))

"""Hyper-parameter grids searched on the validation split."""

from __future__ import annotations

import torch


def linspace_grid(spec: tuple[float, float, int]) -> list[float]:
    """(start, stop, steps) -> the values, as Tip-Adapter's search_scale/search_step describe them."""
    start, stop, steps = spec
    return torch.linspace(float(start), float(stop), int(steps)).tolist()


def logspace_grid(spec: tuple[float, float, int]) -> list[float]:
    """(log10 start, log10 stop, steps) -> values."""
    start, stop, steps = spec
    return torch.logspace(float(start), float(stop), int(steps)).tolist()


def best_of(scores: dict[tuple[float, ...], float]) -> tuple[float, ...]:
    """The key with the highest score; ties go to the first in grid order."""
    return max(scores, key=lambda key: (scores[key], -list(scores).index(key)))

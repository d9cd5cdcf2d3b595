"""The authors' per-data-set search grids (resources/grids.json), looked up by head and data set."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from pipeline.errors import ClipCacheError

GRID_MODES = ("reference", "params")


@cache
def _grids() -> dict[str, Any]:
    return json.loads(resources.files("pipeline.heads").joinpath("resources/grids.json").read_text(encoding="utf-8"))


def reference_grids(head: str, dataset: str) -> dict[str, tuple[float, float, int]]:
    """{param: (start, stop, steps)} the authors configured for this data set ({} when they configured none)."""
    found = _grids().get(head, {}).get(dataset, {})
    return {name: (float(spec[0]), float(spec[1]), int(spec[2])) for name, spec in found.items()}


def search_grids(head: str, params: Any, dataset: str, names: tuple[str, ...]) -> dict[str, tuple[float, float, int]]:
    """The grids a head searches: the authors' for this data set when `params.grids` is 'reference' and they have
    one, else the params' own."""
    mode = getattr(params, "grids", "params")
    if mode not in GRID_MODES:
        raise ClipCacheError(f"heads.{head}.grids must be one of {', '.join(GRID_MODES)}, got {mode!r}")
    chosen = reference_grids(head, dataset) if mode == "reference" else {}
    return {name: chosen.get(name, tuple(getattr(params, name))) for name in names}

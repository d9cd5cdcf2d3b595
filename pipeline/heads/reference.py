"""The authors' per-data-set values (resources/per_dataset.json: search grids, initial values, epochs), as data."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

P = TypeVar("P", bound="DataclassInstance")  # a head's frozen params dataclass


@cache
def _table() -> dict[str, Any]:
    text = resources.files("pipeline.heads").joinpath("resources/per_dataset.json").read_text(encoding="utf-8")
    return json.loads(text)


def per_dataset_values(head: str, dataset: str) -> dict[str, Any]:
    """{param: value} the authors set for this head on this data set ({} where they set none)."""
    found = _table().get(head, {}).get(dataset, {})
    return {name: tuple(value) if isinstance(value, list) else value for name, value in found.items()}


def for_dataset(head: str, params: P, dataset: str) -> tuple[P, dict[str, Any]]:
    """(params with the authors' values for `dataset` applied when `params.per_dataset` is true, what was applied)."""
    if not getattr(params, "per_dataset", False):
        return params, {}
    applied = per_dataset_values(head, dataset)
    return dataclasses.replace(params, **applied), applied

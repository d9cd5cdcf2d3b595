"""Typed, frozen dataclasses from user mappings and back: unknown keys refused, every value checked against its type
hint (lists where lists belong, each item's type, numbers for numbers), each mistake one line naming the dotted key.
params.yaml's sections (pipeline/params.py), the engine's runtime keys and every head's Params are built here.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

from pipeline.errors import ClipCacheError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def build(cls: type[T], data: dict[str, Any] | None, where: str) -> T:
    """Instantiate dataclass `cls` from a mapping, recursing into dataclass fields; unknown keys are errors."""
    if data is not None and not isinstance(data, dict):
        raise ClipCacheError(f"{where} must be a mapping of keys to values, got {str(data)[:40]!r}")
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ClipCacheError(f"unknown key {where}.{unknown[0]}; known: {', '.join(sorted(names))}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            value = build(hint, value, f"{where}.{name}")
        elif get_origin(hint) is tuple:
            if not isinstance(value, (list, tuple)):
                raise ClipCacheError(f"{where}.{name} must be a list, got {value!r}")
            value = checked_items(tuple(value), get_args(hint), f"{where}.{name}")
        elif value is not None and hint in (int, float, str, bool) and not isinstance(value, hint) \
                and not (hint is float and isinstance(value, int)):
                raise ClipCacheError(f"{where}.{name} must be {hint.__name__}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def checked_items(value: tuple, items: tuple, where: str) -> tuple:
    """The items of a tuple parameter checked against its hint: (float, float, int) item by item, or (str, ...)."""
    kinds = [items[0]] * len(value) if len(items) == 2 and items[1] is Ellipsis else list(items)
    if len(kinds) != len(value):
        raise ClipCacheError(f"{where} must have {len(kinds)} items, got {list(value)!r}")
    for i, (item, kind) in enumerate(zip(value, kinds, strict=True)):
        ok = isinstance(item, kind) and not (isinstance(item, bool) and kind is not bool)
        if kind is float and isinstance(item, int) and not isinstance(item, bool):
            ok = True
        if kind in (int, float, str, bool) and not ok:
            raise ClipCacheError(f"{where}[{i}] must be {kind.__name__}, got {item!r}")
    return tuple(float(v) if k is float else v for v, k in zip(value, kinds, strict=True))


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain JSON-able data (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(dataclasses.asdict(obj)))

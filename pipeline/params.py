"""params.yaml: load it, apply `--set dotted.key=value` overrides, build typed sections that reject unknown keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

from pipeline.errors import ClipCacheError

T = TypeVar("T")


SECTIONS = ("grid", "encode", "runtime", "train", "heads", "evaluate")  # every top-level section params.yaml may hold


def load_params(path: str | Path) -> dict[str, Any]:
    """The whole params file as a dict; a section we do not know (a misspelling) is one line naming it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClipCacheError(f"params file {str(path)!r} cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ClipCacheError(f"params file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ClipCacheError(f"params file {str(path)!r} must hold a mapping of sections")
    unknown = sorted(str(k) for k in set(data) - set(SECTIONS))
    if unknown:
        raise ClipCacheError(f"params file {str(path)!r}: unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    return data


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply 'a.b.c=value' overrides (value parsed as YAML) to a copy of `params`."""
    out = yaml.safe_load(yaml.safe_dump(params))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ClipCacheError(f"override {item!r} is not of the form dotted.key=value")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ClipCacheError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw)
        if key.split(".")[0] not in SECTIONS:
            raise ClipCacheError(f"override {item!r}: unknown section {key.split('.')[0]!r}; known: {', '.join(SECTIONS)}")
    return out


def build(cls: type[T], data: dict[str, Any] | None, where: str) -> T:
    """Instantiate dataclass `cls` from a mapping, recursing into dataclass fields; unknown keys are errors."""
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ClipCacheError(f"unknown key {where}.{unknown[0]}; known: {', '.join(sorted(names))}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = build(hint, value, f"{where}.{name}")
        elif get_origin(hint) is tuple and isinstance(value, (list, tuple)):
            value = checked_items(tuple(value), get_args(hint), f"{where}.{name}")
        elif value is not None and hint in (int, float, str, bool) and not isinstance(value, hint):
            if not (hint is float and isinstance(value, int)):
                raise ClipCacheError(f"{where}.{name} must be {hint.__name__}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def checked_items(value: tuple, items: tuple, where: str) -> tuple:
    """The items of a tuple parameter checked against its hint: (float, float, int) item by item, or (str, ...)."""
    kinds = [items[0]] * len(value) if len(items) == 2 and items[1] is Ellipsis else list(items)
    if len(kinds) != len(value):
        raise ClipCacheError(f"{where} must have {len(kinds)} items, got {list(value)!r}")
    for i, (item, kind) in enumerate(zip(value, kinds)):
        ok = isinstance(item, kind) and not (isinstance(item, bool) and kind is not bool)
        if kind is float and isinstance(item, int) and not isinstance(item, bool):
            ok = True
        if kind in (int, float, str, bool) and not ok:
            raise ClipCacheError(f"{where}[{i}] must be {kind.__name__}, got {item!r}")
    return tuple(float(v) if k is float else v for v, k in zip(value, kinds))


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain JSON-able data (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(dataclasses.asdict(obj)))


"""Heads join by decorator; `create_head(name, params)` builds one from a params mapping (unknown keys rejected)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from pipeline.errors import ClipCacheError
from pipeline.heads.base import Head
from pipeline.params import build

_HEADS: dict[str, type[Head]] = {}


def register_head(name: str) -> Callable[[type[Head]], type[Head]]:
    """Decorator: register a Head subclass under `name`; a duplicate name is an error."""

    def wrap(cls: type[Head]) -> type[Head]:
        if name in _HEADS:
            raise ValueError(f"head {name!r} is registered twice")
        cls.name = name
        _HEADS[name] = cls
        return cls

    return wrap


def list_heads() -> list[str]:
    return sorted(_HEADS)


def head_class(name: str) -> type[Head]:
    if name not in _HEADS:
        raise ClipCacheError(f"unknown head {name!r}; known: {', '.join(list_heads())}")
    return _HEADS[name]


def create_head(name: str, params: dict[str, Any] | None = None) -> Head:
    """A fresh head with its params checked against its dataclass."""
    cls = head_class(name)
    return cls(build(cls.Params, params or {}, f"heads.{name}"))


def describe_params(name: str) -> dict[str, Any]:
    """The head's parameters and their defaults."""
    cls = head_class(name)
    return {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
            for f in dataclasses.fields(cls.Params)}

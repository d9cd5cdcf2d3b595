"""Heads join by decorator; `create_head(name, params)` builds one from a params mapping (unknown keys rejected, by
pipeline.head_params, which holds every head's parameters without torch).

`MODULES` names the module of every head; a head's module is imported the first time the head is asked for, and
registers the head with `@register_head` as it loads.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pipeline.errors import ClipCacheError
from pipeline.head_names import HEAD_MODULES
from pipeline.head_params import build_params
from pipeline.head_params import describe_params as describe_params  # re-exported: torch-free, listed with heads
from pipeline.head_params import head_section as head_section
from pipeline.heads.base import Head

_HEADS: dict[str, type[Head]] = {}
# every head and the module that registers it, imported on demand (the list lives where no torch is imported)
MODULES: dict[str, str] = HEAD_MODULES


def register_head(name: str) -> Callable[[type[Head]], type[Head]]:
    """Decorator: register a Head subclass under `name`; a duplicate name is an error."""

    def wrap(cls: type[Head]) -> type[Head]:
        owner = MODULES.get(name, cls.__module__)
        if name in _HEADS or owner != cls.__module__:
            raise ValueError(f"head {name!r} is registered twice ({owner} owns it, {cls.__module__} registers it)")
        cls.name = name
        _HEADS[name] = cls
        return cls

    return wrap


def list_heads() -> list[str]:
    """Every head's name, without importing any head module."""
    return sorted(set(MODULES) | set(_HEADS))


def head_class(name: str) -> type[Head]:
    """The class of head `name`, importing its module on first use."""
    if name not in _HEADS and name in MODULES:
        importlib.import_module(MODULES[name])
    if name not in _HEADS:
        raise ClipCacheError(f"unknown head {name!r}; known: {', '.join(list_heads())}")
    return _HEADS[name]


def create_head(name: str, params: dict[str, Any] | None = None) -> Head:
    """A fresh head with its params checked against its dataclass and their ranges."""
    cls = head_class(name)
    return cls(build_params(name, params))

"""Every head's parameters, what it reads from the cache and the encoder parts it runs, without torch: one module per
head (`pipeline.head_params.<head>`: PARAMS, REQUIRES, RUNS), imported on demand. A command lists, checks and
fingerprints heads' parameters with it before (or without) loading any model library; the head classes
(pipeline/heads/) take their Params, `requires` and `runs` from here.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

from pipeline.data.templates import REFERENCE
from pipeline.errors import ClipCacheError
from pipeline.head_names import check_head_names
from pipeline.head_params.ranges import check_ranges
from pipeline.params import TEMPLATE_SETS, build


def head_module(name: str) -> ModuleType:
    """pipeline.head_params.<name>, after the name is checked (an unknown one is named with the known ones)."""
    check_head_names([name])
    return importlib.import_module(f"{__name__}.{name}")


def params_class(name: str) -> type[Any]:
    """The frozen dataclass of head `name`'s parameters."""
    found: type[Any] = head_module(name).PARAMS
    return found


def head_requires(name: str) -> frozenset[str]:
    """What head `name` reads from the cache (its class's `requires`)."""
    return frozenset(head_module(name).REQUIRES)


def head_runs(name: str) -> tuple[str, ...]:
    """The frozen encoder parts head `name` runs in stage 2 (its class's `runs`)."""
    return tuple(head_module(name).RUNS)


def build_params(name: str, section: dict[str, Any] | None = None) -> Any:
    """Head `name`'s parameters from a params mapping (heads.<name>): unknown keys, types and ranges checked, every
    default filled in."""
    checked = build(params_class(name), section or {}, f"heads.{name}")
    check_ranges(name, checked)
    template_set = getattr(checked, "template_set", None)
    known = (*TEMPLATE_SETS, REFERENCE, "descriptions")
    if template_set is not None and template_set not in known:
        raise ClipCacheError(f"heads.{name}.template_set must be one of {', '.join(known)}, got {template_set!r}")
    return checked


def describe_params(name: str) -> dict[str, Any]:
    """The head's parameters and their defaults."""
    return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            for f in dataclasses.fields(params_class(name))}


def head_section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """heads.<name> of params.yaml (empty: the head's defaults); every entry of `heads` is checked, not only the one
    asked for, so that a slip is named now."""
    heads = params.get("heads") or {}
    if not isinstance(heads, dict):
        raise ClipCacheError("params.yaml: 'heads' must map head names to their parameters")
    for other, section in heads.items():
        if section is not None and not isinstance(section, dict):
            raise ClipCacheError(f"params.yaml: heads.{other} must map parameter names to values, got {section!r}")
        build_params(str(other), section or {})
    return heads.get(name) or {}

"""Heads join by decorator; `create_head(name, params)` builds one from a params mapping (unknown keys rejected).

`MODULES` names the module of every head; a head's module is imported the first time the head is asked for, and
registers the head with `@register_head` as it loads.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable
from typing import Any

from pipeline.data.templates import REFERENCE
from pipeline.errors import ClipCacheError
from pipeline.head_names import HEAD_MODULES
from pipeline.heads.base import Head
from pipeline.params import TEMPLATE_SETS, build

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


# ranges by parameter name, the same meaning in every head (a schedule's own rules are in pipeline.heads.loop)
POSITIVE = frozenset({"eps", "temperature"})
NON_NEGATIVE = frozenset({"lr", "warmup_lr", "init_std", "weight_decay", "aux_weight", "text_lr_scale", "epochs",
                          "warmup_epochs", "min_steps",
                          "patience", "max_iter", "refine_steps", "n_prompts", "residual_scale", "w"})
FRACTIONS = frozenset({"ratio", "dropout", "projection"})  # in [0, 1]
CHOICES: dict[str, tuple[str, ...]] = {  # string parameters with a closed set of values
    "constraint": ("l2", "none"),  # clap, zs_lp
    "init": ("zs", "random"),  # clap, zs_lp
    "lambda_rule": ("1/N", "1/N2", "fixed"),  # prolip
}
# n_prompts may be 0: VPT without prompts is zero-shot
AT_LEAST_ONE = frozenset({"n_ctx", "batch_size", "n_heads", "n_layers", "ffn_mult", "reduction", "bottleneck",
                          "width", "alpha_every", "feat_num", "score_images", "n_ctx_vision"})
MAX_GRID_STEPS = 100_000  # values of one searched grid ((start, stop, steps) parameters named *_grid)


def check_grid(where: str, spec: tuple) -> None:
    """A searched grid (start, stop, steps): a whole number of steps from 1 to MAX_GRID_STEPS."""
    steps = spec[-1]
    if len(spec) == 3 and not 1 <= steps <= MAX_GRID_STEPS:
        raise ClipCacheError(f"{where} must be (start, stop, steps) with 1 <= steps <= {MAX_GRID_STEPS:,}, got "
                             f"{list(spec)!r}")


def check_ranges(name: str, params: Any) -> None:
    """One line naming heads.<head>.<key> for a value outside its range, or a float that is not finite."""
    for field in dataclasses.fields(params):
        value, where = getattr(params, field.name), f"heads.{name}.{field.name}"
        numbers = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise ClipCacheError(f"{where} must be finite, got {value!r}")
        if field.name.endswith("_grid") and isinstance(value, tuple):
            check_grid(where, value)
        if field.name in CHOICES and value not in CHOICES[field.name]:
            raise ClipCacheError(f"{where} must be one of {', '.join(CHOICES[field.name])}, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        rule = ("> 0", value > 0) if field.name in POSITIVE else (">= 0", value >= 0) if field.name in NON_NEGATIVE \
            else ("in [0, 1]", 0 <= value <= 1) if field.name in FRACTIONS \
            else (">= 1", value >= 1) if field.name in AT_LEAST_ONE else ("", True)
        if not rule[1]:
            raise ClipCacheError(f"{where} must be {rule[0]}, got {value!r}")


def create_head(name: str, params: dict[str, Any] | None = None) -> Head:
    """A fresh head with its params checked against its dataclass and their ranges."""
    cls = head_class(name)
    checked = build(cls.Params, params or {}, f"heads.{name}")
    check_ranges(name, checked)
    template_set = getattr(checked, "template_set", None)
    known = (*TEMPLATE_SETS, REFERENCE, "descriptions")
    if template_set is not None and template_set not in known:
        raise ClipCacheError(f"heads.{name}.template_set must be one of {', '.join(known)}, got {template_set!r}")
    return cls(checked)


def describe_params(name: str) -> dict[str, Any]:
    """The head's parameters and their defaults."""
    cls = head_class(name)
    return {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            for f in dataclasses.fields(cls.Params)}


def head_section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """heads.<name> of params.yaml (empty: the head's defaults)."""
    heads = params.get("heads") or {}
    if not isinstance(heads, dict):
        raise ClipCacheError("params.yaml: 'heads' must map head names to their parameters")
    for other, section in heads.items():  # every entry is checked, not only the one asked for: a slip is named now
        if section is not None and not isinstance(section, dict):
            raise ClipCacheError(f"params.yaml: heads.{other} must map parameter names to values, got {section!r}")
        create_head(str(other), section or {})
    return heads.get(name) or {}

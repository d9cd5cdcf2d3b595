"""The ranges of head parameters by name, the same meaning in every head (a schedule's own rules are in
pipeline.heads.loop): one line naming heads.<head>.<key> for a value outside its range. Torch-free."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from pipeline.errors import ClipCacheError

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

"""Head `tip_adapter`: its parameters (pipeline/heads/tip_adapter.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TipAdapterParams:
    template_set: str = "reference"  # the authors' rule: CoOp's template, the 7-template ensemble on ImageNet
    beta_grid: tuple[float, float, int] = (0.1, 7.0, 200)  # (start, scale, steps): start + i (scale - start) / steps
    alpha_grid: tuple[float, float, int] = (0.1, 3.0, 20)  # the same for the cache weight (the scale is excluded)
    per_dataset: bool = True  # the authors' search_scale per data set (resources/per_dataset.json) on the 11


PARAMS = TipAdapterParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

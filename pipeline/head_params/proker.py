"""Head `proker`: its parameters (pipeline/heads/proker.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProKeRParams:
    template_set: str = "reference"  # the authors' rule: CoOp's template, the 7-template ensemble on ImageNet
    per_dataset: bool = True  # the authors' per-data-set grids (resources/per_dataset.json) on the 11 benchmarks
    beta_grid: tuple[float, float, int] = (0.5, 3.0, 20)  # linspace (start, stop, steps) of the kernel sharpness
    lambda_grid: tuple[float, float, int] = (0.001, 1.0, 10)  # linspace (start, stop, steps) of the proximal weight
    solve_dtype: str = "float64"  # dtype of the S x S algebra; float32 halves memory for large support sets
    support: str = "views"  # support points: every view ('views'), the first view ('one_view'), or the view mean


PARAMS = ProKeRParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

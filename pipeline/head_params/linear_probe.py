"""Head `linear_probe`: its parameters (pipeline/heads/linear_probe.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearProbeParams:
    lambda_grid: tuple[float, float, int] = (-6.0, 6.0, 13)  # log10 (start, stop, steps) of the coarse sweep
    refine_steps: int = 8  # values tried between the best coarse value's neighbours
    max_iter: int = 300  # L-BFGS iterations per fit
    use_views: bool = False  # train on every augmented view too


PARAMS = LinearProbeParams
REQUIRES = frozenset({"global"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

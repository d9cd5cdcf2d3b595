"""Head `lp_pp`: its parameters (pipeline/heads/lp_pp.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LPPlusPlusParams:
    template_set: str = "reference"  # CoOp's per-data-set template; the 7-template set on ImageNet
    solver: str = "authors"  # 'authors' (data-driven step sizes, alternating alpha steps) or 'adam'
    epochs: int = 300  # full-batch iterations
    alpha_every: int = 10  # alpha steps every this many iterations (authors)
    lr: float = 1e-3  # adam only
    weight_decay: float = 0.0  # adam only


PARAMS = LPPlusPlusParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

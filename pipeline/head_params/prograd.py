"""Head `prograd`: its parameters (pipeline/heads/prograd.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.coop import CoOpParams

TEMPLATE_INIT = "template"  # ctx_init value: the data set's template phrase, as their CTX_INIT: True


@dataclass(frozen=True)
class ProGradParams(CoOpParams):
    ctx_init: str = TEMPLATE_INIT  # 'template' (theirs), other words placed the same way, or '' (N(0, init_std))
    projection: float = 1.0  # their LOSS.LAMBDA: the share of the conflicting component removed
    temperature: float = 1.0  # their LOSS.T


PARAMS = ProGradParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("text tower",)  # Head.runs: frozen encoder parts run in stage 2

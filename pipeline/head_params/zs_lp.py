"""Head `zs_lp`: its parameters (pipeline/heads/zs_lp.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.clap import CLAPParams


@dataclass(frozen=True)
class ZSLPParams(CLAPParams):
    constraint: str = "none"  # ZS-LP: the zero-shot-initialised probe without CLAP's penalty


PARAMS = ZSLPParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

"""Head `zero_shot`: its parameters (pipeline/heads/zero_shot.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ZeroShotParams:
    template_set: str = "coop"  # CoOp's single template (the papers' zero-shot baseline); also 'reference',


PARAMS = ZeroShotParams
REQUIRES = frozenset({"global"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

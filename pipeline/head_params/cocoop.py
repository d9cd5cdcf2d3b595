"""Head `cocoop`: its parameters (pipeline/heads/cocoop.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.coop import CoOpParams


@dataclass(frozen=True)
class CoCoOpParams(CoOpParams):
    n_ctx: int = 4  # ignored when ctx_init gives the words
    ctx_init: str = "a photo of a"
    batch_size: int = 1  # their recipe: every image has its own prompts
    epochs: int = 10  # their config's MAX_EPOCH (0: CoOp's epochs by shots)
    score_images: int = 16  # images whose C prompts are encoded together when scoring (memory, not results)


PARAMS = CoCoOpParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("text tower",)  # Head.runs: frozen encoder parts run in stage 2

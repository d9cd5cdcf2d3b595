"""Head `kgcoop`: its parameters (pipeline/heads/kgcoop.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.coop import CoOpParams


@dataclass(frozen=True)
class KgCoOpParams(CoOpParams):
    n_ctx: int = 4  # ignored: ctx_init gives the words
    ctx_init: str = "a photo of a"  # their CTX_INIT: True always means this phrase
    batch_size: int = 128
    epochs: int = 100  # their config's MAX_EPOCH (0: CoOp's epochs by shots)
    w: float = 8.0  # weight of the distance to the hand-crafted prompt's features (their TRAINER.COOP.W)
    template_set: str = "coop"  # the cached set whose features anchor the learned ones (their CUSTOM_TEMPLATES)


PARAMS = KgCoOpParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("text tower",)  # Head.runs: frozen encoder parts run in stage 2

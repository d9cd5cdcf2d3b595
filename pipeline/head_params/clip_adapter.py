"""Head `clip_adapter`: its parameters (pipeline/heads/clip_adapter.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CLIPAdapterParams:
    template_set: str = "coop"  # text classifier: CoOp's per-data-set template, as the authors' code
    reduction: int = 4  # bottleneck: hidden = D / reduction
    ratio: float = 0.2  # residual ratio of the adapted feature
    text_adapter: bool = False  # adapt the text features too
    lr: float = 2e-3
    epochs: int = 200
    batch_size: int = 32
    weight_decay: float = 5e-4
    keep: str = "last"  # epoch shipped: the last (the authors' rule) or "best_val" (best on validation)
    min_steps: int = 0  # at least this many optimiser steps (0: the authors' epochs x minibatches)


PARAMS = CLIPAdapterParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

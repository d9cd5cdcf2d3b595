"""Head `coop`: its parameters (pipeline/heads/coop.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoOpParams:
    n_ctx: int = 16  # context vectors (ignored when ctx_init gives the words)
    class_token_position: str = "end"  # 'end' or 'middle'
    csc: bool = False  # class-specific contexts
    ctx_init: str = ""  # initialise from these words (e.g. "a photo of a"); '' draws N(0, init_std)
    init_std: float = 0.02
    lr: float = 0.002
    weight_decay: float = 5e-4
    batch_size: int = 32
    epochs: int = 0  # 0: by shots (50 / 100 / 200)
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    keep: str = "last"  # epoch shipped: the last (the authors' rule) or "best_val" (best on validation)
    min_steps: int = 0  # at least this many optimiser steps (0: the authors' epochs x minibatches)


PARAMS = CoOpParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ("text tower",)  # Head.runs: frozen encoder parts run in stage 2

"""Head `tip_adapter_f`: its parameters (pipeline/heads/tip_adapter_f.py says whose defaults they are), what it
reads from the cache and the encoder parts it runs; torch-free, so that commands list and check them before any
model library loads."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.head_params.tip_adapter import TipAdapterParams


@dataclass(frozen=True)
class TipAdapterFParams(TipAdapterParams):
    init_alpha: float = 1.17  # alpha while training the keys (the authors' ImageNet config)
    init_beta: float = 1.0  # beta while training the keys
    lr: float = 1e-3
    eps: float = 1e-4
    weight_decay: float = 0.01  # AdamW's default
    epochs: int = 20
    batch_size: int = 256
    keep: str = "best_val"  # the authors keep the epoch best on test; we keep the best on validation (or "last")
    min_steps: int = 0  # at least this many optimiser steps (0: the authors' epochs x minibatches)


PARAMS = TipAdapterFParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

"""Head `ape_t`: its parameters (pipeline/heads/ape_t.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class APETParams:
    template_set: str = "reference"  # templates beside the descriptions: CoOp's; ImageNet: the 7-template ensemble
    descriptions: bool = True  # add the cached class descriptions to the classifier (the authors' CuPL prompts)
    feat_num: int = 700  # training_feat_num: the residual's width and the channels it refines (capped at D)
    weights: tuple[float, float] = (0.2, 0.8)  # w_training: (inter-class similarity, variance)
    init_beta: float = 1.0  # beta while training
    init_alpha: float = 3.0  # alpha while training
    search_scale: tuple[float, float] = (7.0, 7.0)  # beta, alpha
    search_step: tuple[int, int] = (200, 20)
    lr: float = 1e-3
    eps: float = 1e-3
    weight_decay: float = 0.1
    epochs: int = 20  # train_epoch
    batch_size: int = 256
    keep: str = "best_val"  # the authors keep the epoch best on their val features; or "last"
    min_steps: int = 0  # at least this many optimiser steps (0: the authors' epochs x minibatches)
    per_dataset: bool = True  # the authors' configs on the 11 data sets (resources/per_dataset.json)


PARAMS = APETParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

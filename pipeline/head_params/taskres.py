"""Head `taskres`: its parameters (pipeline/heads/taskres.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskResParams:
    template_set: str = "reference"  # the base: the authors' templates (CoOp's; ImageNet: 7-template + CoOp's)
    residual_scale: float = 0.5  # alpha in t' = t + alpha x (the authors' RESIDUAL_SCALE)
    lr: float = 2e-3
    weight_decay: float = 5e-4
    batch_size: int = 256
    epochs: int = 0  # 0: the authors' 100 at 1-4 shots, 200 at 8-16 shots
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    keep: str = "last"  # epoch shipped: the last (the authors' rule) or "best_val" (best on validation)
    per_dataset: bool = True  # the authors' ImageNet lr and Flowers alpha (resources/per_dataset.json)


PARAMS = TaskResParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

"""Head `clap`: its parameters (pipeline/heads/clap.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CLAPParams:
    template_set: str = "reference"  # the zero-shot base: the authors' templates (as TaskRes)
    constraint: str = "l2"  # 'l2': CLAP's class-adaptive penalty; 'none': ZS-LP (checked: registry.CHOICES)
    init: str = "zs"  # 'zs': W starts at the text base; 'random': Kaiming-normal (the authors' RANDOM baseline)
    lr: float = 0.1
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 300
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5


PARAMS = CLAPParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

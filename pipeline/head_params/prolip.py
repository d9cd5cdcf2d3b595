"""Head `prolip`: its parameters (pipeline/heads/prolip.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProLIPParams:
    template_set: str = "reference"  # the authors' classifier: CoOp's template; ImageNet: the 7-template ensemble
    lr: float = 1e-5  # lr_v of configs/base.yaml
    lambda_rule: str = "1/N"  # lambda_funct_1_N (the validation-free rule), '1/N2' or 'fixed' (registry.CHOICES)
    lambda_v: float = 0.1  # lambda when lambda_rule is 'fixed'
    epochs: int = 300  # train_epoch: one full-batch step each
    search: bool = False  # search_lr: (lr, lambda) chosen on the validation split


PARAMS = ProLIPParams
REQUIRES = frozenset({"pooled", "pooled_views"})  # Head.requires
RUNS: tuple[str, ...] = ("image projection (at fit)",)  # Head.runs: frozen encoder parts run in stage 2

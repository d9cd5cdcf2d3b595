"""Head `ape`: its parameters (pipeline/heads/ape.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class APEParams:
    template_set: str = "reference"  # templates beside the descriptions: CoOp's; ImageNet: the 7-template ensemble
    descriptions: bool = True  # add the cached class descriptions to the classifier (the authors' CuPL prompts)
    feat_num: int = 400  # channels kept (training_free_feat_num; capped at D)
    weights: tuple[float, float] = (0.5, 0.5)  # w_training_free: (inter-class similarity, variance)
    search_scale: tuple[float, float, float] = (7.0, 7.0, 1.0)  # beta, alpha, gamma
    search_step: tuple[int, int, int] = (200, 20, 20)
    per_dataset: bool = True  # the authors' configs on the 11 data sets (resources/per_dataset.json)


PARAMS = APEParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2

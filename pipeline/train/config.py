"""Typed `train` section of params.yaml (the heads' own sections are checked by their Params dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import ClipCacheError
from pipeline.params import build


@dataclass(frozen=True)
class TrainParams:
    head: str = "tip_adapter"  # head fitted by `clipcache train` when --head is not given
    shots: int = 16  # which few-shot cache (k<shots>-s<seed>) to fit on
    seed: int = 1
    out_dir: str | None = None  # no longer used: a run's fitted head and evaluation share its folder under
    #                             evaluate.results_dir (pipeline/layout.py); accepted so that older params still load
    heads: tuple[str, ...] = ()  # the heads `clipcache sweep` runs by default (and dvc.yaml's sweep stages)
    protocol: str = "all"  # sweep runs: 'all' classes, or 'base_to_novel' (CoCoOp: fit the first half, score both)


PROTOCOLS = ("all", "base_to_novel")


def train_params(section: dict[str, Any] | None) -> TrainParams:
    """The checked `train` section."""
    params = build(TrainParams, section, "train")
    if params.shots < 1 or params.seed < 0:
        raise ClipCacheError(f"train.shots must be >= 1 and train.seed >= 0, got {params.shots} and {params.seed}")
    if params.protocol not in PROTOCOLS:
        raise ClipCacheError(f"train.protocol must be one of {', '.join(PROTOCOLS)}, got {params.protocol!r}")
    return params

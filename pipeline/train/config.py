"""Typed `train` section of params.yaml (the heads' own sections are checked by their Params dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.params import build


@dataclass(frozen=True)
class TrainParams:
    head: str = "tip_adapter"  # head fitted by `clipcache train` when --head is not given
    shots: int = 16  # which few-shot cache (k<shots>-s<seed>) to fit on
    seed: int = 1
    out_dir: str = "models"  # fitted heads go to <out_dir>/<head>/k<K>-s<seed>/
    heads: tuple[str, ...] = ()  # the heads of dvc.yaml's train/evaluate matrix (read by DVC, not by the code)


def train_params(section: dict[str, Any] | None) -> TrainParams:
    return build(TrainParams, section, "train")

"""Data sets (registry), few-shot splits, augmentation views, class names and templates."""

from __future__ import annotations

from typing import Any

from pipeline.data import (  # noqa: F401  (registers the layouts)
    coop,
    folder,
    imagenet_shifts,
    manifest,
    shards,
    tables,
    textile,
)
from pipeline.data.fewshot import FewShotSplit, sample_few_shot
from pipeline.data.registry import (
    DataSet,
    ImageItem,
    create_dataset,
    is_test_only,
    list_datasets,
    register_dataset,
)

__all__ = [
    "DataSet", "FewShotSplit", "ImageItem", "ViewSpec", "create_dataset", "is_test_only", "list_datasets",
    "register_dataset",
    "sample_few_shot",
]


def __getattr__(name: str) -> Any:
    """ViewSpec lives with torchvision's transforms: imported only by the stages that render views."""
    if name == "ViewSpec":
        from pipeline.data.views import ViewSpec

        return ViewSpec
    raise AttributeError(f"module 'pipeline.data' has no attribute {name!r}")

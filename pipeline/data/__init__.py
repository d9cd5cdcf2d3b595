"""Data sets (registry), few-shot splits, augmentation views, class names and templates."""

from pipeline.data import coop, folder, manifest, textile  # noqa: F401  (registers the layouts)
from pipeline.data.fewshot import FewShotSplit, sample_few_shot
from pipeline.data.registry import DataSet, ImageItem, create_dataset, list_datasets, register_dataset
from pipeline.data.views import ViewSpec

__all__ = [
    "DataSet", "FewShotSplit", "ImageItem", "ViewSpec", "create_dataset", "list_datasets", "register_dataset",
    "sample_few_shot",
]

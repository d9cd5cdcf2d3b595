"""A fixed, stratified train/val/test partition for layouts that ship no split files."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.data.registry import ImageItem
from pipeline.errors import ClipCacheError

PARTITION_DEFAULTS: dict[str, Any] = {
    "val_fraction": 0.2,  # share of each class held out for validation
    "test_fraction": 0.3,  # share of each class held out for test
    "split_seed": 0,  # seed of the partition; independent of the few-shot seed so test is the same for every seed
    "max_per_class": None,  # cap on images per class, taken before partitioning (quick runs); None keeps all
}


def partition(items: list[ImageItem], options: dict[str, Any], where: str) -> dict[str, list[ImageItem]]:
    """Split items per class into train/val/test with the seeded fractions in `options`.

    Args:
        items: every labelled image, in a stable order (sorted paths).
        options: val_fraction, test_fraction, split_seed, max_per_class.
        where: the root or manifest named in errors.
    """
    for key in ("val_fraction", "test_fraction"):
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ClipCacheError(f"{where}: {key} must be a finite number (a fraction of each class), got {value!r}")
    val_fraction, test_fraction = float(options["val_fraction"]), float(options["test_fraction"])
    if val_fraction < 0 or test_fraction <= 0 or val_fraction + test_fraction >= 1:
        raise ClipCacheError(
            f"{where}: val_fraction={val_fraction} and test_fraction={test_fraction} must be >= 0, > 0 and sum below 1"
        )
    cap = options["max_per_class"]
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ClipCacheError(f"{where}: max_per_class must be a whole number >= 1 (or null for every image), got "
                             f"{cap!r}")
    seed = options["split_seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ClipCacheError(f"{where}: split_seed must be a whole number >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    splits: dict[str, list[ImageItem]] = {"train": [], "val": [], "test": []}
    for label in sorted({item.label for item in items}):
        members = [item for item in items if item.label == label]
        order = rng.permutation(len(members))
        if options["max_per_class"] is not None:
            order = order[: int(options["max_per_class"])]
        n_test = max(1, round(len(order) * test_fraction))
        n_val = round(len(order) * val_fraction)
        chosen = [members[i] for i in order]
        splits["test"] += chosen[:n_test]
        splits["val"] += chosen[n_test : n_test + n_val]
        splits["train"] += chosen[n_test + n_val :]
    for name in splits:
        splits[name].sort(key=lambda item: (item.label, *item.sort_key()))
    return splits

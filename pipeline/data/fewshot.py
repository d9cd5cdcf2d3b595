"""CoOp's few-shot protocol: K shots per class from train, min(K, 4) validation shots per class, the full test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.registry import DataSet
from pipeline.errors import ClipCacheError

MAX_VAL_SHOTS = 4


@dataclass(frozen=True)
class FewShotSplit:
    """Which images a (shots, seed) run sees; indices point into the data set's split lists."""

    shots: int  # K training images per class
    seed: int  # seed of this draw (its own RNG, never the global one)
    train: np.ndarray  # [C*K] indices into dataset.splits['train']
    val: np.ndarray  # [C*min(K,4)] indices into dataset.splits[val_source]
    val_source: str  # 'val', or 'train' when the data set has no val split (ImageNet)


def draw_per_class(labels: np.ndarray, k: int, rng: np.random.Generator, what: str,
                   classnames: tuple[str, ...]) -> np.ndarray:
    """k indices per class without replacement, sorted; an error names the first class that has too few."""
    chosen = []
    for label in range(len(classnames)):
        members = np.flatnonzero(labels == label)
        if len(members) < k:
            raise ClipCacheError(
                f"{what}: class {classnames[label]!r} has {len(members)} image(s), fewer than the {k} asked for"
            )
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def sample_few_shot(dataset: DataSet, shots: int, seed: int) -> FewShotSplit:
    """Draw the few-shot train and validation sets for (shots, seed)."""
    if shots < 1:
        raise ClipCacheError(f"shots must be >= 1, got {shots}")
    train_labels = np.array([item.label for item in dataset.splits["train"]])
    train = draw_per_class(train_labels, shots, np.random.default_rng([seed, shots, 0]), f"{dataset.describe()} train",
                           dataset.classnames)
    val_shots = min(shots, MAX_VAL_SHOTS)
    val_rng = np.random.default_rng([seed, shots, 1])
    if dataset.splits.get("val"):
        val_labels = np.array([item.label for item in dataset.splits["val"]])
        val = draw_per_class(val_labels, val_shots, val_rng, f"{dataset.describe()} val", dataset.classnames)
        return FewShotSplit(shots, seed, train, val, "val")
    rest = np.setdiff1d(np.arange(len(train_labels)), train)  # [M] train images outside the few-shot set
    val = rest[draw_per_class(train_labels[rest], val_shots, val_rng, f"{dataset.describe()} val (from train)",
                              dataset.classnames)]
    return FewShotSplit(shots, seed, train, np.sort(val), "train")

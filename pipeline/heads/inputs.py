"""What a head sees at fit time, read from the store: train and val splits, the text features, a seed, a device.

Everything is read through `FeatureSplit`'s lazy arrays: whole-split statistics stream view by view or in row
batches; the trained heads draw random-view minibatches. The test split is never part of it. `SplitReader` and
`TextReader` name the part of `FeatureSplit` and `TextFeatures` heads use, which the class subsets of base-to-novel
(`heads.classes`) present too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from pipeline.data.registry import layout_of
from pipeline.data.templates import resolve_template_set
from pipeline.errors import ClipCacheError
from pipeline.heads.maths import normalize

ROW_BATCH = 8192  # rows per read when streaming a split


class RowArray(Protocol):
    """A lazily read array of a split (images on one axis): `FeatureSplit.array`'s, or a class subset's."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: Any) -> np.ndarray: ...

    def take(self, rows: np.ndarray) -> np.ndarray: ...


class SplitReader(Protocol):
    """What heads read of a split: a `FeatureSplit`, or the images of some of its classes (`SubsetSplit`)."""

    @property
    def path(self) -> Path: ...

    @property
    def n(self) -> int: ...  # images

    @property
    def labels(self) -> np.ndarray: ...  # [N]

    @property
    def image_ids(self) -> list[str]: ...

    @property
    def provenance(self) -> dict[str, Any]: ...

    @property
    def build(self) -> dict[str, Any]: ...

    @property
    def n_views(self) -> int: ...

    def has(self, name: str) -> bool: ...

    def array(self, name: str) -> RowArray: ...

    def read(self, name: str, rows: np.ndarray | None = None) -> np.ndarray: ...

    def read_views(self, name: str, rows: np.ndarray, views: np.ndarray) -> np.ndarray: ...


class TextReader(Protocol):
    """What heads read of the text features: a `TextFeatures`, or those of some classes (`SubsetText`)."""

    @property
    def path(self) -> Path: ...

    @property
    def provenance(self) -> dict[str, Any]: ...

    @property
    def classnames(self) -> list[str]: ...

    @property
    def logit_scale(self) -> float: ...

    def mean(self, name: str) -> np.ndarray: ...  # [C, D]

    def per_template(self, name: str) -> np.ndarray: ...  # [C, T, D] raw

    def description_embeddings(self) -> tuple[np.ndarray, np.ndarray]: ...  # [S, D] raw, [C + 1] offsets


class NoValidation:
    """The validation split of a validation-free run (train.protocol: validation_free): reading it is an error that
    names the head, so that a head with a validation search cannot run there unnoticed."""

    def __init__(self, head: str) -> None:
        self.head = head

    def __getattr__(self, name: str) -> Any:
        raise ClipCacheError(f"{self.head} read the validation split ({name}) in a validation-free run "
                             "(train.protocol: validation_free)")


def has_validation(split: Any) -> bool:
    """False for the stand-in of a validation-free run."""
    return not isinstance(split, NoValidation)


@dataclass
class FitData:
    """The inputs of `Head.fit`."""

    train: SplitReader  # the K-shot training images (with views)
    val: SplitReader  # the validation images: the only split used for selection
    text: TextReader  # per-class text features of every template set
    seed: int  # seeds every random choice a head makes
    device: torch.device

    @property
    def dataset_layout(self) -> str:
        """The registered layout the cache's data set was read with (e.g. 'imagenet', 'textile'), whatever its own
        name: the authors' per-data-set values key on it."""
        return layout_of(self.text.provenance["dataset"])

    @property
    def n_classes(self) -> int:
        return len(self.text.classnames)

    def class_weights(self, template_set: str) -> torch.Tensor:
        """[C, D] normalised zero-shot classifier of a template set ('reference': the references' rule)."""
        return text_classifier(self.text, template_set, self.device)

    def labels(self, split: SplitReader) -> torch.Tensor:
        return torch.from_numpy(split.labels).long().to(self.device)


def text_classifier(text: TextReader, template_set: str, device: torch.device) -> torch.Tensor:
    """[C, D] normalised zero-shot classifier of a template set of `text` ('reference' resolved by its data set)."""
    name = resolve_template_set(template_set, layout_of(text.provenance["dataset"]))
    return torch.from_numpy(text.mean(name)).float().to(device)


def global_feats(split: SplitReader, device: torch.device, rows: np.ndarray | None = None) -> torch.Tensor:
    """Normalised global features [N, D] (or the given rows)."""
    return normalize(torch.from_numpy(split.read("global", rows))).to(device)


def each_view(split: SplitReader, device: torch.device, raw: bool = False) -> Iterator[torch.Tensor]:
    """The global features of one augmented view at a time, normalised (or `raw`): V arrays of [N, D]."""
    array = split.array("views/global")
    for view in range(array.shape[0]):
        feats = torch.from_numpy(array[view]).float()  # [N, D]
        yield (feats if raw else normalize(feats)).to(device)


def view_mean_keys(split: SplitReader, device: torch.device) -> torch.Tensor:
    """Tip-Adapter's keys: per image, the mean of its raw view features, normalised once -> [N, D] (the authors'
    build_cache_model averages the un-normalised features of its augmentation passes)."""
    total: torch.Tensor | None = None
    for feats in each_view(split, device, raw=True):
        total = feats if total is None else total + feats
    if total is None:
        raise ClipCacheError(f"{str(split.path)!r} holds no augmented views: Tip-Adapter's keys are their mean")
    return normalize(total)


def split_batches(split: SplitReader, device: torch.device, names: tuple[str, ...] = ("global",),
                  batch_rows: int = ROW_BATCH) -> Iterator[dict]:
    """Row batches of a split: {'rows', 'labels', name: tensor} with globals normalised; for scoring and validation."""
    for start in range(0, split.n, batch_rows):
        rows = np.arange(start, min(start + batch_rows, split.n))
        batch = {"rows": rows, "labels": torch.from_numpy(split.labels[rows]).to(device)}
        for name in names:
            tensor = torch.from_numpy(split.read(name, rows)).float().to(device)
            batch[name] = normalize(tensor) if name == "global" else tensor
        yield batch

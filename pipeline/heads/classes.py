"""Class subsets of a cache, for the base-to-novel protocol (CoCoOp; MM-Adapter's headline): fit on the base
classes, score the base classes among themselves and the novel ones, never seen in training, among themselves.

`SubsetSplit` and `SubsetText` present the rows and text features of some classes of a split, labels renumbered
0..|S|-1, through the reading interface heads use (`n`, `labels`, `array`, `read`, `read_views`, `n_views`), so that
a head fits and scores on them unchanged. Nothing is copied: reads map the subset's rows to the file's.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ClipCacheError
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.schema import image_axis


def base_and_novel(n_classes: int) -> tuple[list[int], list[int]]:
    """CoCoOp's split (subsample_classes): the first ceil(C / 2) classes are base, the rest novel."""
    if n_classes < 2:
        raise ClipCacheError(f"base-to-novel needs at least 2 classes, the data set has {n_classes}")
    m = math.ceil(n_classes / 2)
    return list(range(m)), list(range(m, n_classes))


class SubsetArray:
    """The rows of some images of a lazy array (images on `axis`), read on demand."""

    def __init__(self, array: Any, rows: np.ndarray, axis: int) -> None:
        self.array, self.rows, self.axis = array, rows, axis
        shape = list(array.shape)
        shape[axis] = len(rows)
        self.shape, self.dtype, self.ndim = tuple(shape), array.dtype, array.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows of a row dataset, in the order asked (rows of the subset)."""
        return self.array.take(self.rows[np.asarray(rows, np.int64)])

    def __getitem__(self, index: Any) -> np.ndarray:
        whole = isinstance(index, tuple) and index == ()  # not `index == ()`: a numpy integer compares elementwise
        if whole and self.axis == 0:
            return self.array.take(self.rows)  # every row of the subset
        if whole:
            return np.stack([self.array[view][self.rows] for view in range(self.array.shape[0])])  # [V, n, ...]
        if isinstance(index, (int, np.integer)) and self.axis == 1:
            return self.array[int(index)][self.rows]  # one view of every image of the subset
        if isinstance(index, tuple) and len(index) == 2 and self.axis == 1:
            view, rows = index
            return self.array[int(view), self.rows[np.asarray(rows, np.int64)]]
        raise TypeError(f"subset arrays take (), a view or (view, rows); got {index!r}")


class SubsetSplit:
    """The images of some classes of a split, labels renumbered in the order of `classes`."""

    def __init__(self, split: FeatureSplit, classes: list[int]) -> None:
        self.split, self.classes = split, list(classes)
        self.rows = np.flatnonzero(np.isin(split.labels, self.classes))
        renumber = np.full(max(int(split.labels.max(initial=0)), max(self.classes, default=0)) + 1, -1, dtype=np.int64)
        renumber[self.classes] = np.arange(len(self.classes))
        self.labels = renumber[split.labels[self.rows]]  # [n]
        self.n = len(self.rows)
        self.path: Path = split.path
        self.provenance, self.build = split.provenance, split.build
        self.image_ids = [split.image_ids[r] for r in self.rows] if split.image_ids else []

    @property
    def n_views(self) -> int:
        return self.split.n_views

    def has(self, name: str) -> bool:
        return self.split.has(name)

    def array(self, name: str) -> SubsetArray:
        return SubsetArray(self.split.array(name), self.rows, image_axis(name))

    def read(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        array = self.array(name)
        return array[()] if rows is None else array.take(rows)

    def read_views(self, name: str, rows: np.ndarray, views: np.ndarray) -> np.ndarray:
        return self.split.read_views(name, self.rows[np.asarray(rows, np.int64)], views)


class SubsetText:
    """The text features of some classes (every template set), in the order of `classes`."""

    def __init__(self, text: TextFeatures, classes: list[int]) -> None:
        self.text, self.classes, self.path = text, list(classes), text.path
        self.provenance = copy.deepcopy(text.provenance)
        names = text.classnames
        self.provenance["dataset"]["classnames"] = [names[c] for c in self.classes]
        self.provenance["dataset"]["n_classes"] = len(self.classes)
        self.build = text.build

    @property
    def classnames(self) -> list[str]:
        return list(self.provenance["dataset"]["classnames"])

    @property
    def template_sets(self) -> list[str]:
        return self.text.template_sets

    @property
    def logit_scale(self) -> float:
        return self.text.logit_scale

    def templates(self, name: str) -> list[str]:
        return self.text.templates(name)

    def per_template(self, name: str) -> np.ndarray:
        return self.text.per_template(name)[self.classes]  # [|S|, T, D]

    def mean(self, name: str) -> np.ndarray:
        return self.text.mean(name)[self.classes]  # [|S|, D]

    def description_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """The descriptions of the chosen classes only, in their order, with offsets over them."""
        embeddings, offsets = self.text.description_embeddings()
        rows = [np.arange(offsets[c], offsets[c + 1]) for c in self.classes]
        counts = [len(r) for r in rows]
        return embeddings[np.concatenate(rows)], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

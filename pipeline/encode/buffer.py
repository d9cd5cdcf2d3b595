"""Rows of one shard, gathered batch by batch, then handed to the writer as whole arrays."""

from __future__ import annotations

from collections.abc import Callable

import h5py
import numpy as np

from pipeline.encode.plan import SplitJob
from pipeline.store.schema import image_axis


class ShardBuffer:
    """Accumulates feature rows plus labels, item indices and image ids for one shard."""

    def __init__(self, job: SplitJob, shapes: Callable[[], dict[str, tuple[tuple[int, ...], np.dtype]]],
                 root: str) -> None:
        self.job, self.shapes, self.root = job, shapes, root
        self.parts: dict[str, list[np.ndarray]] = {}
        self.positions: list[int] = []
        self.skipped: list[str] = []

    def add(self, positions: list[int], arrays: dict[str, np.ndarray], boxes: np.ndarray | None) -> None:
        """Append one batch of kept images (positions index job.items)."""
        self.positions += positions
        for name, array in arrays.items():
            self.parts.setdefault(name, []).append(array)
        if boxes is not None and self.job.with_views:
            self.parts.setdefault("views/box", []).append(np.swapaxes(boxes, 0, 1).astype(np.int32))  # [V, b, 5]

    def arrays(self) -> dict[str, np.ndarray]:
        """The shard's datasets, including empty ones when every image was skipped."""
        out: dict[str, np.ndarray] = {}
        if self.positions:
            out = {name: np.concatenate(parts, axis=image_axis(name)) for name, parts in self.parts.items()}
        else:  # every image of the shard was skipped: empty datasets of the right shapes
            for name, (shape, dtype) in self.shapes().items():
                axis = image_axis(name)
                out[name] = np.zeros((*shape[:axis], 0, *shape[axis:]), dtype)
            if self.job.with_views:
                out["views/box"] = np.zeros((out["views/global"].shape[0], 0, 5), np.int32)
        pos = np.array(self.positions, np.int64)
        items = [self.job.items[p] for p in self.positions]
        out["labels"] = np.array([item.label for item in items], np.int64)  # [n]
        out["item_index"] = self.job.item_index[pos] if len(pos) else np.zeros(0, np.int64)  # [n]
        ids = [relative(str(item.path), self.root) + (f"#{item.member}" if item.member else "") for item in items]
        out["image_id"] = np.array(ids, dtype=h5py.string_dtype())  # [n]
        return out


def relative(path: str, root: str) -> str:
    """The image path relative to the data-set root when it lies inside it."""
    prefix = root.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else path

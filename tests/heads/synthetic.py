"""Synthetic "CLIP-like" caches written through the real store, for head tests.

Class text embeddings t_c are random unit vectors; image class means mu_c = normalise(t_c + gap_c) sit near but not on
them (zero-shot is imperfect, few-shot data helps); images are normalise(mu_c + noise), views add noise on top. The
spatial map [HW, D] carries the class signal only at `planted` locations (noise elsewhere), and the global feature is
their mean, so a head that attends to the planted locations can read the class there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pipeline.heads import FitData
from pipeline.store import FeatureSplit, TextFeatures, write_whole
from pipeline.store.provenance import SCHEMA_VERSION
from pipeline.store.writer import SplitWriter


@dataclass(frozen=True)
class World:
    """The generative model of one synthetic task (magnitudes are vector norms relative to unit class means)."""

    classes: int = 5
    dim: int = 32
    hw: int = 9
    planted: tuple[int, ...] = (2, 6)  # grid locations that hold the class signal
    confusion: float = 0.9  # image class c leans toward the text of class c+1: zero-shot errs systematically
    gap: float = 0.5  # random offset of image class means from the text embeddings
    noise: float = 0.7  # within-class spread of an image
    background: float = 0.3  # norm of the class-free noise at non-planted locations
    modality_gap: float = 0.8  # norm of a direction shared by every image token and by no text (CLIP's modality gap)
    view_noise: float = 0.25  # extra spread of an augmented view
    seed: int = 0

    def text(self) -> np.ndarray:
        return unit(np.random.default_rng(self.seed).standard_normal((self.classes, self.dim)))

    def common(self) -> np.ndarray:
        """A unit direction orthogonal to every class text embedding (the gap biases no class)."""
        basis, _ = np.linalg.qr(self.text().T)  # [D, C] orthonormal basis of the text span
        r = np.random.default_rng(self.seed + 2).standard_normal(self.dim)
        return unit(r - basis @ (basis.T @ r))

    def means(self) -> np.ndarray:
        t = self.text()
        offset = unit(np.random.default_rng(self.seed + 1).standard_normal((self.classes, self.dim)))
        return unit(t + self.confusion * np.roll(t, -1, axis=0) + self.gap * offset)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def spread(rng: np.random.Generator, shape: tuple[int, ...], norm: float) -> np.ndarray:
    """Gaussian vectors whose expected norm is `norm`."""
    return rng.standard_normal(shape) * norm / np.sqrt(shape[-1])


def draw(world: World, per_class: int, views: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Images of every class: labels, spatial maps [N, HW, D], globals (mean over the grid) and their views."""
    labels = np.repeat(np.arange(world.classes), per_class)
    n = len(labels)
    signal = world.means()[labels] + spread(rng, (n, world.dim), world.noise)  # [N, D]
    spatial = spread(rng, (n, world.hw, world.dim), world.background)  # [N, HW, D] class-free noise
    spatial[:, list(world.planted)] = signal[:, None] + spread(rng, (n, len(world.planted), world.dim), 0.2)
    spatial += world.modality_gap * world.common()  # [N, HW, D] + [D]
    out = {"labels": labels, "spatial": spatial.astype(np.float32), "global": spatial.mean(axis=1).astype(np.float32)}
    if views:
        view_maps = spatial[None] + spread(rng, (views, n, world.hw, world.dim), world.view_noise)  # [V, N, HW, D]
        out["views/spatial"] = view_maps.astype(np.float32)
        out["views/global"] = view_maps.mean(axis=2).astype(np.float32)
    return out


def write_split(path: Path, arrays: dict[str, np.ndarray], name: str, shots: int, seed: int) -> FeatureSplit:
    """One split file through the real writer (one shard)."""
    n = len(arrays["labels"])
    provenance = {"schema_version": SCHEMA_VERSION, "encoder": {"model": "synthetic", "random_weights": True},
                  "dataset": {"name": "synthetic"}, "split": {"name": name, "shots": shots, "seed": seed, "n_items": n}}
    writer = SplitWriter(path, provenance, {}, n, shard_items=max(n, 1))
    rows = {**arrays, "item_index": np.arange(n),
            "image_id": np.array([f"img{i}" for i in range(n)], dtype=h5py.string_dtype())}
    for shard in writer.pending():
        writer.write_shard(shard, rows, [])
    writer.finalize()
    return FeatureSplit(path)


def write_text(path: Path, world: World, logit_scale: float = 100.0) -> TextFeatures:
    t = world.text().astype(np.float32)
    provenance = {"schema_version": SCHEMA_VERSION,
                  "encoder": {"model": "synthetic", "random_weights": True, "logit_scale": logit_scale},
                  "dataset": {"name": "synthetic", "classnames": [f"class {c}" for c in range(world.classes)]},
                  "templates": {s: ["{}"] for s in ("imagenet80", "tip7", "coop")}}
    groups = {}
    for s in ("imagenet80", "tip7", "coop"):
        groups[f"text/{s}/per_template"], groups[f"text/{s}/mean"] = t[:, None], t
    write_whole(path, provenance, {}, groups)
    return TextFeatures(path)


def make_task(folder: Path, world: World, shots: int, views: int = 4, val_per_class: int = 4,
              test_per_class: int = 40, seed: int = 1) -> tuple[FitData, FeatureSplit]:
    """(FitData for a few-shot task, its test split): the test split is for the test's own scoring only."""
    rng = np.random.default_rng([world.seed, shots, seed])
    folder.mkdir(parents=True, exist_ok=True)
    train = write_split(folder / "train.h5", draw(world, shots, views, rng), "train", shots, seed)
    val = write_split(folder / "val.h5", draw(world, val_per_class, 0, rng), "val", shots, seed)
    test = write_split(folder / "test.h5", draw(world, test_per_class, 0, rng), "test", shots, seed)
    import torch

    return FitData(train, val, write_text(folder / "text.h5", world), seed, torch.device("cpu")), test


def write_raw_text(path: Path, world: World, dataset: str, counts: list[int] | None = None,
                   seed: int = 7) -> TextFeatures:
    """Text features whose per-template embeddings are raw, as CLIP's are: each template shifts and rescales the class
    embedding (norms 6 to 12), so the mean of raw embeddings differs from the mean of normalised ones; with `counts`,
    also that many raw description embeddings per class (ragged, as `encode.descriptions` stores them)."""
    rng = np.random.default_rng(seed)
    t = world.text()  # [C, D] unit
    groups: dict[str, np.ndarray] = {}
    names = {}
    for name, count in {"coop": 1, "tip7": 3, "imagenet80": 2}.items():
        raw = np.stack([rng.uniform(6, 12, (world.classes, 1)) * (t + 0.4 * rng.standard_normal(t.shape))
                        for _ in range(count)], axis=1).astype(np.float32)  # [C, T, D]
        mean = unit(unit(raw).mean(axis=1))
        groups[f"text/{name}/per_template"], groups[f"text/{name}/mean"] = raw, mean.astype(np.float32)
        names[name] = [f"{{}} {i}" for i in range(count)]
    provenance = {"schema_version": SCHEMA_VERSION,
                  "encoder": {"model": "synthetic", "random_weights": True, "logit_scale": 100.0},
                  "dataset": {"name": dataset, "classnames": [f"class {c}" for c in range(world.classes)]},
                  "templates": names}
    if counts:
        rows = np.concatenate([rng.uniform(5, 9) * (t[c] + 0.6 * rng.standard_normal((n, world.dim)))
                               for c, n in enumerate(counts)]).astype(np.float32)  # [S, D]
        groups["descriptions/embeddings"] = rows
        groups["descriptions/offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        groups["descriptions/sentences"] = np.array([f"s{i}".encode() for i in range(len(rows))])
        groups["descriptions/mean"] = np.zeros((world.classes, world.dim), np.float32)  # not read by these tests
        provenance["descriptions"] = {"file": "d.json", "sha256": "0" * 64, "counts": counts}
    write_whole(path, provenance, {}, groups)
    return TextFeatures(path)

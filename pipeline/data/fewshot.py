"""CoOp's few-shot protocol: K shots per class from train, min(K, 4) validation shots per class (or the whole
validation split), the full test.

Two samplers draw the shots:
- `dassl` (the default): exactly the images Dassl's `DatasetBase.generate_fewshot_dataset` draws for the seed, as
  CoOp, CoCoOp, Tip-Adapter and the methods built on them run it (github KaiyangZhou/Dassl.pytorch,
  dassl/data/datasets/base_dataset.py; seeded by `random.seed(cfg.SEED)` in their train.py): Python's `random`
  seeded with the seed, the items grouped by label in the order labels first appear in the split list,
  `random.sample(items, K)` per label, the train split first, then validation from the same generator.
- `numpy`: this project's earlier draw, one numpy generator per (seed, shots, split).
Where a data set has no validation split (ImageNet: CoOp validates on its test split, which we never read for
selection), validation is drawn from the train images outside the few-shot set, with the same sampler.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.data.registry import DataSet
from pipeline.errors import ClipCacheError
from pipeline.params import SAMPLERS, SHORT_CLASS_RULES, VAL_RULES

MAX_VAL_SHOTS = 4


@dataclass(frozen=True)
class FewShotSplit:
    """Which images a (shots, seed) run sees; indices point into the data set's split lists."""

    shots: int  # K training images per class
    seed: int  # seed of this draw (its own RNG, never the global one)
    train: np.ndarray  # [C*K] indices into dataset.splits['train']
    val: np.ndarray  # [C*min(K,4)] (or every image of the val split) indices into dataset.splits[val_source]
    val_source: str  # 'val', or 'train' when the data set has no val split (ImageNet)
    sampler: str = "dassl"  # which sampler drew train (and val)
    val_rule: str = "coop"  # the validation rule applied: 'coop' (min(K, 4) per class) or 'full'
    short: tuple[str, ...] = ()  # classes with fewer than K training images, all kept (short_classes: keep_all)


def check_counts(labels: np.ndarray, k: int, what: str, classnames: tuple[str, ...], keep_short: bool = False) -> None:
    """Every class has at least k images (at least one with `keep_short`); the error names the first that has
    fewer and the setting that keeps them."""
    counts = class_counts(labels, len(classnames))
    for label, count in enumerate(counts):
        if count < (1 if keep_short else k):
            fits = int(counts.min())
            hint = "" if keep_short else (" or encode.protocol.short_classes: keep_all keeps all the images of such a "
                                          "class, as CoOp does" if count else "")
            raise ClipCacheError(f"{what}: class {classnames[label]!r} has {count} image(s), fewer than the {k} asked "
                                 f"for; its smallest class has {fits}: give this data set shots of its own in its grid "
                                 f"entry (protocol: {{shots: [...]}}, at most {fits} here){hint}")


def short_classes(labels: np.ndarray, k: int, classnames: tuple[str, ...]) -> list[str]:
    """The classes with fewer than k images (they keep all of them under keep_all)."""
    counts = class_counts(labels, len(classnames))
    return [classnames[c] for c in range(len(classnames)) if counts[c] < k]


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Images per class [C] (an empty split counts none)."""
    return np.bincount(labels, minlength=n_classes)[:n_classes] if len(labels) else np.zeros(n_classes, np.int64)


def draw_per_class(labels: np.ndarray, k: int, rng: np.random.Generator, what: str,
                   classnames: tuple[str, ...], keep_short: bool = False) -> np.ndarray:
    """k indices per class without replacement, sorted (the numpy sampler); all of a short class's with
    `keep_short`."""
    check_counts(labels, k, what, classnames, keep_short)
    chosen = []
    for label in range(len(classnames)):
        members = np.flatnonzero(labels == label)
        chosen.append(members if len(members) < k else rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def dassl_per_class(labels: Sequence[int], k: int, rng: random.Random, what: str,
                    classnames: tuple[str, ...], keep_short: bool = False) -> np.ndarray:
    """Dassl's draw: items by label in first-appearance order, `rng.sample(items, k)` per label (a label with fewer
    items keeps them all, with no draw, as their repeat=False); sorted indices."""
    check_counts(np.asarray(labels, dtype=np.int64), k, what, classnames, keep_short)
    by_label: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(index)
    chosen = [index for members in by_label.values()
              for index in (rng.sample(members, k) if len(members) >= k else members)]
    return np.sort(np.asarray(chosen, dtype=np.int64))


def sample_few_shot(dataset: DataSet, shots: int, seed: int, sampler: str = "dassl", val_rule: str = "coop",
                    short_classes_rule: str = "refuse") -> FewShotSplit:
    """Draw the few-shot train and validation sets for (shots, seed)."""
    if shots < 1:
        raise ClipCacheError(f"shots must be >= 1, got {shots}")
    if sampler not in SAMPLERS:
        raise ClipCacheError(f"encode.protocol.sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if val_rule not in VAL_RULES:
        raise ClipCacheError(f"encode.protocol.val must be one of {', '.join(VAL_RULES)}, got {val_rule!r}")
    if short_classes_rule not in SHORT_CLASS_RULES:
        raise ClipCacheError(f"encode.protocol.short_classes must be one of {', '.join(SHORT_CLASS_RULES)}, got "
                             f"{short_classes_rule!r}")
    keep = short_classes_rule == "keep_all"
    name, names = dataset.describe(), dataset.classnames
    train_labels = np.array([item.label for item in dataset.splits["train"]], dtype=np.int64)
    val_shots = min(shots, MAX_VAL_SHOTS)
    has_val = bool(dataset.splits.get("val"))
    if sampler == "dassl":
        generator = random.Random(seed)  # their random.seed(cfg.SEED): train, then val, from one stream

        def draw(labels: np.ndarray, k: int, what: str) -> np.ndarray:
            return dassl_per_class(labels.tolist(), k, generator, what, names, keep)
    else:
        streams = iter((np.random.default_rng([seed, shots, 0]), np.random.default_rng([seed, shots, 1])))

        def draw(labels: np.ndarray, k: int, what: str) -> np.ndarray:
            return draw_per_class(labels, k, next(streams), what, names, keep)

    train = draw(train_labels, shots, f"{name} train")
    short = tuple(short_classes(train_labels, shots, names)) if keep else ()
    if has_val and val_rule == "full":
        val_labels = np.array([item.label for item in dataset.splits["val"]], dtype=np.int64)
        check_counts(val_labels, 1, f"{name} val", names)
        return FewShotSplit(shots, seed, train, np.arange(len(val_labels), dtype=np.int64), "val", sampler, "full",
                            short)
    if has_val:
        val_labels = np.array([item.label for item in dataset.splits["val"]], dtype=np.int64)
        return FewShotSplit(shots, seed, train, draw(val_labels, val_shots, f"{name} val"), "val", sampler, "coop",
                            short)
    rest = np.setdiff1d(np.arange(len(train_labels)), train)  # [M] train images outside the few-shot set
    val = rest[draw(train_labels[rest], val_shots, f"{name} val (from train)")]
    return FewShotSplit(shots, seed, train, np.sort(val), "train", sampler, "coop", short)

"""CoOp's few-shot protocol: K per class, min(K, 4) val per class, seeded by its own RNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.data import DataSet, create_dataset, sample_few_shot
from pipeline.errors import ClipCacheError
from tests.helpers import make_folder, make_image, make_imagenet


@pytest.fixture()
def dataset(tmp_path: Path):
    make_folder(tmp_path, ["a", "b", "c"], 30)
    return create_dataset("image_folder", tmp_path, {"val_fraction": 0.2, "test_fraction": 0.2})


@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
def test_k_shots_per_class_and_min_k_4_val(dataset, shots: int) -> None:
    draw = sample_few_shot(dataset, shots, seed=1)
    train_labels = np.array([dataset.splits["train"][i].label for i in draw.train])
    val_labels = np.array([dataset.splits["val"][i].label for i in draw.val])
    assert np.bincount(train_labels).tolist() == [shots] * 3
    assert np.bincount(val_labels).tolist() == [min(shots, 4)] * 3
    assert len(set(draw.train)) == len(draw.train)


def test_seeded_and_independent_of_global_rng(dataset) -> None:
    np.random.seed(0)
    first = sample_few_shot(dataset, 4, seed=1)
    np.random.seed(99)
    again = sample_few_shot(dataset, 4, seed=1)
    other = sample_few_shot(dataset, 4, seed=2)
    assert np.array_equal(first.train, again.train) and np.array_equal(first.val, again.val)
    assert not np.array_equal(first.train, other.train)


def test_val_from_train_is_disjoint_when_there_is_no_val_split(tmp_path: Path) -> None:
    make_imagenet(tmp_path, ["one", "two"], 10)
    draw = sample_few_shot(create_dataset("imagenet", tmp_path, {}), 4, seed=3)
    assert draw.val_source == "train" and not set(draw.train) & set(draw.val) and len(draw.val) == 8


def test_too_many_shots_names_the_class(dataset) -> None:
    with pytest.raises(ClipCacheError, match=r"class 'a' has \d+ image\(s\), fewer than the 40"):
        sample_few_shot(dataset, 40, seed=1)


def shuffled_dtd(root: Path, classes: list[str], train: int, val: int) -> DataSet:
    """A DTD-layout data set (CoOp's split_zhou JSON) whose split lists interleave the classes in a shuffled order."""
    import json
    import random

    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, name in enumerate(classes):
        for i, part in enumerate(["train"] * train + ["val"] * val + ["test"]):
            rel = f"{name}/{name}_{i}.jpg"
            make_image(root / "dtd" / "images" / rel, label, seed=i, size=(8, 8))
            split[part].append([rel, label, name])
    for part in split.values():
        random.Random(1).shuffle(part)
    (root / "dtd" / "split_zhou_DescribableTextures.json").write_text(json.dumps(split))
    return create_dataset("dtd", root / "dtd", {})


def dassl_generate_fewshot_dataset(data_source: list, num_shots: int) -> list:
    """Dassl's DatasetBase.generate_fewshot_dataset and split_dataset_by_label (KaiyangZhou/Dassl.pytorch,
    dassl/data/datasets/base_dataset.py), transcribed: items grouped by label in a defaultdict, random.sample per
    label from the global `random` module (repeat=False; a label with fewer items keeps them all)."""
    import random
    from collections import defaultdict

    tracker = defaultdict(list)
    for item in data_source:
        tracker[item.label].append(item)
    dataset = []
    for _label, items in tracker.items():
        sampled_items = random.sample(items, num_shots) if len(items) >= num_shots else items
        dataset.extend(sampled_items)
    return dataset


@pytest.mark.parametrize(("shots", "seed"), [(1, 1), (4, 2), (16, 3)])
def test_dassl_sampler_draws_what_dassl_draws(tmp_path: Path, shots: int, seed: int) -> None:
    """CoOp's datasets: random.seed(cfg.SEED) (train.py), then train = generate_fewshot_dataset(train, K) and
    val = generate_fewshot_dataset(val, min(K, 4)) from the same stream. Labels interleaved in the split list, so
    the label order of first appearance differs from the label ids."""
    import random

    dataset = shuffled_dtd(tmp_path, ["banded", "dotted", "striped", "woven"], 24, 6)
    train_items, val_items = dataset.splits["train"], dataset.splits["val"]
    assert train_items[0].label != 0  # labels first appear out of order, as in CoOp's files
    random.seed(seed)
    expected_train = dassl_generate_fewshot_dataset(train_items, shots)
    expected_val = dassl_generate_fewshot_dataset(val_items, min(shots, 4))
    random.seed(12345)  # our draw never reads the global stream
    draw = sample_few_shot(dataset, shots, seed, "dassl")
    assert sorted(train_items[i].path for i in draw.train) == sorted(item.path for item in expected_train)
    assert sorted(val_items[i].path for i in draw.val) == sorted(item.path for item in expected_val)
    assert (draw.sampler, draw.val_rule, draw.val_source) == ("dassl", "coop", "val")
    numpy_draw = sample_few_shot(dataset, shots, seed, "numpy")
    assert not np.array_equal(numpy_draw.train, draw.train)


def test_numpy_sampler_is_the_earlier_draw(dataset) -> None:
    """The numpy option reproduces the earlier default exactly: one default_rng([seed, K, 0]) for train, one
    [seed, K, 1] for val, rng.choice per class in label order, sorted."""
    draw = sample_few_shot(dataset, 4, 7, "numpy")
    labels = np.array([item.label for item in dataset.splits["train"]])
    rng = np.random.default_rng([7, 4, 0])
    expected = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), 4, replace=False) for c in range(3)]))
    assert np.array_equal(draw.train, expected)
    val_labels = np.array([item.label for item in dataset.splits["val"]])
    rng = np.random.default_rng([7, 4, 1])
    expected = np.sort(np.concatenate([rng.choice(np.flatnonzero(val_labels == c), 4, replace=False)
                                       for c in range(3)]))
    assert np.array_equal(draw.val, expected)


def test_full_validation_is_the_whole_val_split_and_imagenet_falls_back(dataset, tmp_path: Path) -> None:
    draw = sample_few_shot(dataset, 2, 1, "dassl", "full")
    assert draw.val_rule == "full" and np.array_equal(draw.val, np.arange(len(dataset.splits["val"])))
    (tmp_path / "in").mkdir()
    make_imagenet(tmp_path / "in", ["one", "two"], 10)
    imagenet = sample_few_shot(create_dataset("imagenet", tmp_path / "in", {}), 2, 1, "dassl", "full")
    assert imagenet.val_rule == "coop" and imagenet.val_source == "train" and len(imagenet.val) == 4
    with pytest.raises(ClipCacheError, match=r"encode\.protocol\.sampler must be one of dassl, numpy, got 'torch'"):
        sample_few_shot(dataset, 2, 1, "torch")


@pytest.mark.parametrize("sampler", ["dassl", "numpy"])
def test_coops_keep_all_rule_for_a_class_with_fewer_than_k_images(tmp_path: Path, sampler: str) -> None:
    """Dassl's generate_fewshot_dataset keeps every item of a label with fewer than K (repeat=False) and draws
    nothing for it; refused by default, with the setting named."""
    import random

    dataset = shuffled_dtd(tmp_path, ["banded", "dotted", "striped"], 6, 2)
    items = dataset.splits["train"]
    keep = [i for i, item in enumerate(items) if item.label != 1 or item.path.stem.endswith(("_0", "_1"))]
    dataset.splits["train"] = [items[i] for i in keep]  # 'dotted' keeps 2 training images
    with pytest.raises(ClipCacheError, match=r"dtd train: class 'dotted' has 2 image\(s\), fewer than the 4 asked for; "
                                             r"its smallest class has 2: give this data set shots of its own in its "
                                             r"grid entry \(protocol: \{shots: \[\.\.\.\]\}, at most 2 here\) or "
                                             r"encode\.protocol\.short_classes: keep_all keeps all"):
        sample_few_shot(dataset, 4, 1, sampler)
    draw = sample_few_shot(dataset, 4, 1, sampler, "coop", "keep_all")
    labels = np.array([dataset.splits["train"][i].label for i in draw.train])
    assert np.bincount(labels).tolist() == [4, 2, 4] and draw.short == ("dotted",)
    if sampler == "dassl":
        random.seed(1)
        expected = dassl_generate_fewshot_dataset(dataset.splits["train"], 4)
        assert sorted(dataset.splits["train"][i].path for i in draw.train) == sorted(i.path for i in expected)

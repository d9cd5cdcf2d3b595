"""CoOp's few-shot protocol: K per class, min(K, 4) val per class, seeded by its own RNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.data import create_dataset, sample_few_shot
from pipeline.errors import ClipCacheError
from tests.helpers import make_folder, make_imagenet


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

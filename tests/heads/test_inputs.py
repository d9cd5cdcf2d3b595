"""What a head reads at fit and scoring time (pipeline.heads.inputs, Head.scores and val_accuracy): row batches of a
split with the labels and the named datasets, globals normalised, and the accuracy of a head's scores."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.heads import create_head
from pipeline.heads.base import val_accuracy
from pipeline.heads.classes import SubsetSplit
from pipeline.heads.inputs import split_batches, view_mean_keys


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_split_batches_cover_the_split_in_row_order(task) -> None:
    _, test = task
    batches = list(split_batches(test, torch.device("cpu"), ("global", "spatial"), batch_rows=15))
    assert [len(b["rows"]) for b in batches] == [15, 15, 10]
    assert [sorted(b) for b in batches] == [["global", "labels", "rows", "spatial"]] * 3
    np.testing.assert_array_equal(np.concatenate([b["rows"] for b in batches]), np.arange(test.n))
    np.testing.assert_array_equal(torch.cat([b["labels"] for b in batches]).numpy(), test.labels)
    np.testing.assert_allclose(torch.cat([b["global"] for b in batches]).numpy(), unit(test.read("global")),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(torch.cat([b["spatial"] for b in batches]).numpy(), test.read("spatial"))
    assert list(split_batches(SubsetSplit(test, [9]), torch.device("cpu"))) == []


def test_view_mean_keys_average_raw_views_then_normalise(task) -> None:
    data, _ = task
    views = data.train.read("views/global").astype(np.float64)  # [V, N, D]
    np.testing.assert_allclose(view_mean_keys(data.train, torch.device("cpu")).numpy(), unit(views.mean(0)),
                               rtol=1e-5, atol=1e-6)


def test_val_accuracy_is_the_scores_accuracy_in_any_batch_size(task) -> None:
    data, test = task
    head = create_head("zero_shot").fit(data)
    scores = head.scores(test)
    assert val_accuracy(head, test) == float((scores.argmax(1).numpy() == test.labels).mean())
    head.batch_rows = 7  # scored seven rows at a time: the same scores
    torch.testing.assert_close(head.scores(test), scores)

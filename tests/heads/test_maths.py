"""The maths the heads share (pipeline.heads.maths), against numpy written from the docstrings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.errors import ClipCacheError
from pipeline.heads import create_head
from pipeline.heads.maths import (
    accuracy,
    cache_kernel,
    clip_logits,
    kernel_class_sums,
    kernel_of,
    normalize,
    one_hot,
    sort_by_label,
)

RNG = np.random.default_rng(0)


def test_normalize_and_clip_logits() -> None:
    x = RNG.standard_normal((4, 6))
    ours = normalize(torch.from_numpy(x))
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-6)
    w = RNG.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(clip_logits(ours, torch.from_numpy(w), 2.5).numpy(), 2.5 * ours.numpy() @ w.T,
                               rtol=1e-5)


def test_kernels_are_exp_of_minus_beta_one_minus_cosine() -> None:
    q, k = normalize(torch.randn(5, 8)), normalize(torch.randn(7, 8))
    cosines = (q @ k.T).double().numpy()
    expected = np.exp(-3.0 * (1 - cosines))
    np.testing.assert_allclose(cache_kernel(q, k, 3.0).numpy(), expected, rtol=1e-5)
    affinity = q @ k.T
    kept = affinity.clone()
    np.testing.assert_allclose(kernel_of(affinity, 3.0).numpy(), expected, rtol=1e-5)
    assert torch.equal(affinity, kept)  # not in place by default
    out = kernel_of(affinity, torch.tensor(3.0), inplace=True)
    assert out.data_ptr() == affinity.data_ptr()
    np.testing.assert_allclose(affinity.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 2, 2], [2, 0, 1, 0, 2, 1], [0, 0, 0, 1, 1, 2], [0, 1, 0, 1, 0, 1]])
def test_kernel_class_sums_is_the_product_with_one_hot_values(labels: list[int]) -> None:
    """Sorted K-per-class keys take the reshape path, any other labelling the scatter-add: both equal K @ onehot."""
    kernel = torch.rand(4, 6, dtype=torch.float64)
    key_labels = torch.tensor(labels)
    ours = kernel_class_sums(kernel, key_labels, 3)
    np.testing.assert_allclose(ours.numpy(), kernel.numpy() @ np.eye(3)[labels], rtol=1e-12)
    assert ours.dtype == torch.float64 and ours.shape == (4, 3)


def test_sort_by_label_is_stable_and_one_hot_and_accuracy() -> None:
    keys, labels = torch.arange(12.0).view(6, 2), torch.tensor([2, 0, 1, 0, 2, 1])
    sorted_keys, sorted_labels = sort_by_label(keys, labels)
    assert sorted_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert sorted_keys[:, 0].tolist() == [2.0, 6.0, 4.0, 10.0, 0.0, 8.0]
    assert torch.equal(one_hot(torch.tensor([1, 0]), 3), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert accuracy(logits, torch.tensor([1, 0, 0, 0])) == 0.75


def test_proker_solves_in_the_dtype_it_names(task) -> None:
    data, test = task
    grids = {"per_dataset": False, "beta_grid": [1.0, 2.0, 2], "lambda_grid": [0.1, 1.0, 2]}
    single = create_head("proker", {**grids, "solve_dtype": "float32"}).fit(data)
    double = create_head("proker", grids).fit(data)
    torch.testing.assert_close(single.scores(test), double.scores(test), rtol=1e-3, atol=1e-3)
    with pytest.raises(ClipCacheError) as error:
        create_head("proker", {**grids, "solve_dtype": "float16"}).fit(data)
    assert str(error.value) == "heads.proker.solve_dtype must be float64 or float32, got 'float16'"

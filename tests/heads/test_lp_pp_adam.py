"""LP++'s `adam` solver (our earlier variant, pipeline.heads.lp_pp.fit_adam): the class centroids of every view as the
starting weights, a frozen zero bias, alpha 1, full-batch AdamW through the shared loop; and the solver refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.errors import ClipCacheError
from pipeline.heads import create_head


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_adam_starts_at_the_view_centroids_with_a_frozen_zero_bias(task) -> None:
    data, test = task
    head = create_head("lp_pp", {"solver": "adam", "epochs": 1, "lr": 0.0}).fit(data)
    views = unit(data.train.read("views/global").astype(np.float64))  # [V, N, D]
    labels = data.train.labels
    centroids = np.stack([views[:, labels == c].reshape(-1, views.shape[-1]).mean(0) for c in range(data.n_classes)])
    np.testing.assert_allclose(head.weight.detach().numpy(), centroids, rtol=1e-5, atol=1e-6)
    assert torch.equal(head.bias.detach(), torch.zeros(data.n_classes)) and not head.bias.requires_grad
    assert torch.equal(head.alpha.detach(), torch.ones(data.n_classes))
    text = data.text.mean("coop").astype(np.float64)  # the reference template of a data set other than ImageNet
    x = unit(test.read("global").astype(np.float64))
    expected = data.text.logit_scale * (x @ centroids.T + x @ text.T)
    np.testing.assert_allclose(head.scores(test).numpy(), expected, rtol=1e-4, atol=1e-3)
    assert head.selected["keep"] == "best_val" and head.selected["epoch"] == 1


def test_adam_trains_weights_and_alpha_in_full_batches_never_the_bias(task) -> None:
    data, _ = task
    start = create_head("lp_pp", {"solver": "adam", "epochs": 1, "lr": 0.0}).fit(data)
    head = create_head("lp_pp", {"solver": "adam", "epochs": 4, "lr": 0.01, "weight_decay": 0.1}).fit(data)
    assert [record["steps"] for record in head.history] == [1, 1, 1, 1]  # one minibatch of every image per epoch
    assert torch.equal(head.bias.detach(), torch.zeros(data.n_classes))
    assert not torch.allclose(head.weight, start.weight) and not torch.allclose(head.alpha, start.alpha)
    assert head.selected["epoch"] == 1 + int(np.argmax([record["val_acc"] for record in head.history]))


def test_solver_and_alpha_every_are_checked(task) -> None:
    data, _ = task
    with pytest.raises(ClipCacheError) as error:
        create_head("lp_pp", {"solver": "lbfgs"}).fit(data)
    assert str(error.value) == "heads.lp_pp.solver must be one of authors, adam, got 'lbfgs'"
    with pytest.raises(ClipCacheError) as error:
        create_head("lp_pp", {"alpha_every": 0})  # refused when the head is created, before any fit
    assert str(error.value) == "heads.lp_pp.alpha_every must be >= 1, got 0"
    create_head("lp_pp", {"alpha_every": 1, "epochs": 2}).fit(data)

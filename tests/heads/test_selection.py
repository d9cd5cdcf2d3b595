"""What a head reports selecting is what it ships: the validation accuracy in `selected` is the accuracy of the fitted
head's own scores on the validation split, and the searched values are the ones its buffers hold."""

from __future__ import annotations

import pytest

from pipeline.heads import create_head
from pipeline.heads.base import val_accuracy
from tests.heads.conftest import QUICK
from tests.heads.test_registry import CACHE_ONLY

SEARCHED = {"tip_adapter": ("beta", "alpha"), "tip_adapter_f": ("beta", "alpha"), "proker": ("beta",)}


@pytest.mark.parametrize("name", [name for name in CACHE_ONLY if name != "zero_shot"])
def test_the_reported_validation_accuracy_is_the_shipped_heads(task, name: str) -> None:
    data, _ = task
    head = create_head(name, QUICK.get(name)).fit(data)
    assert head.selected["val_acc"] == pytest.approx(val_accuracy(head, data.val), abs=1e-6)
    for key in SEARCHED.get(name, ()):
        assert float(getattr(head, key)) == pytest.approx(head.selected[key], rel=1e-6)


def test_tip_adapter_scores_every_grid_point_with_its_own_beta(task) -> None:
    """Each (beta, alpha) of the search is scored with that beta: the search selects the first best of the accuracies
    that one-point searches at each grid value report, and reports that accuracy."""
    from pipeline.heads.grid import best_of, tip_grid

    data, _ = task
    grid = {"beta_grid": [0.5, 40.0, 6], "alpha_grid": [0.1, 9.0, 3]}
    head = create_head("tip_adapter", grid).fit(data)
    accuracies = {}
    for beta in tip_grid(grid["beta_grid"]):
        for alpha in tip_grid(grid["alpha_grid"]):
            point = {"beta_grid": [beta, beta + 1.0, 1], "alpha_grid": [alpha, alpha + 1.0, 1]}
            one = create_head("tip_adapter", point).fit(data)
            assert (one.selected["beta"], one.selected["alpha"]) == (beta, alpha)
            accuracies[(beta, alpha)] = one.selected["val_acc"]
            head.beta.fill_(beta)
            head.alpha.fill_(alpha)
            assert val_accuracy(head, data.val) == pytest.approx(one.selected["val_acc"], abs=1e-6)
    assert len(set(accuracies.values())) > 2  # the grid matters on this task
    best = best_of(accuracies)
    assert (head.selected["beta"], head.selected["alpha"]) == best
    assert head.selected["val_acc"] == pytest.approx(accuracies[best], abs=1e-6)


def test_the_authors_values_applied_for_a_data_set_are_recorded(task) -> None:
    """per_dataset: the values of resources/per_dataset.json for the data set being fitted are used and recorded in
    `selected['per_dataset']` (tuples as lists, as head.json holds them)."""
    from pipeline.heads import FitData
    from pipeline.heads.classes import SubsetText

    data, _ = task
    text = SubsetText(data.text, list(range(data.n_classes)))
    text.provenance["dataset"]["name"] = "oxford_flowers"  # one of the authors' 11 data sets
    flowers = FitData(data.train, data.val, text, data.seed, data.device)
    head = create_head("tip_adapter", {"per_dataset": True}).fit(flowers)
    assert head.selected["per_dataset"] == {"beta_grid": [0.1, 50.0, 200], "alpha_grid": [0.1, 50.0, 20]}
    assert head.params.beta_grid == (0.1, 50.0, 200)

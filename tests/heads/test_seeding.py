"""A head seeds itself: its random initial state comes from torch.manual_seed(data.seed), never from whatever the
global generator held, so a fit is the same in any process and a different seed gives a different draw."""

from __future__ import annotations

import pytest
import torch

from pipeline.heads import FitData, create_head
from tests.heads.conftest import QUICK
from tests.heads.test_registry import CACHE_ONLY

# heads whose setup draws random initial weights
RANDOM_INIT = ["clip_adapter", "mm_adapter", "vt_clip"]


@pytest.mark.parametrize("name", CACHE_ONLY)
def test_a_fit_does_not_depend_on_the_global_seed(task, name: str) -> None:
    data, test = task
    torch.manual_seed(123)
    first = create_head(name, QUICK.get(name)).fit(data).scores(test)
    torch.manual_seed(456)
    torch.rand(7)
    assert torch.equal(create_head(name, QUICK.get(name)).fit(data).scores(test), first)


@pytest.mark.parametrize("name", RANDOM_INIT)
def test_prepare_draws_the_initial_weights_after_seeding_with_the_data_seed(task, name: str) -> None:
    data, _ = task
    shapes = create_head(name, QUICK.get(name)).fit(data).shapes
    torch.manual_seed(data.seed)
    reference = create_head(name, QUICK.get(name))
    reference.setup(**shapes)
    torch.manual_seed(999)
    head = create_head(name, QUICK.get(name))
    head.prepare(data, None, **shapes)
    expected = dict(reference.named_parameters())
    assert expected and expected.keys() == dict(head.named_parameters()).keys()
    for key, value in head.named_parameters():
        assert torch.equal(value, expected[key]), key
    other = create_head(name, QUICK.get(name))
    other.prepare(FitData(data.train, data.val, data.text, data.seed + 1, data.device), None, **shapes)
    assert any(not torch.equal(value, expected[key]) for key, value in other.named_parameters())

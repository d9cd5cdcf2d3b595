"""Every registered head honours the contract: fits, [N, C] finite logits, deterministic, save/load round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipeline.errors import ClipCacheError
from pipeline.heads import REQUIREMENTS, Head, create_head, list_heads, register_head
from pipeline.heads.io import load_head, save_head
from tests.heads.conftest import PROMPT_LEARNERS, QUICK

ALL = list_heads()
# prompt learners: tests/heads/test_prompt_learners.py
CACHE_ONLY = [name for name in ALL if name not in PROMPT_LEARNERS]


def test_every_issue_head_is_registered() -> None:
    assert set(ALL) >= {"zero_shot", "linear_probe", "lp_pp", "clip_adapter", "tip_adapter", "tip_adapter_f", "gda",
                        "proker", "vt_clip", "mm_adapter", "coop", "vpt_late", "cavpt"}
    assert {name for name in ALL if create_head(name).runs} == set(PROMPT_LEARNERS)


@pytest.mark.parametrize("name", CACHE_ONLY)
def test_contract(name: str, task, tmp_path: Path) -> None:
    data, test = task
    head = create_head(name, QUICK.get(name))
    assert head.requires <= set(REQUIREMENTS) and "global" in head.requires
    assert dataclasses.is_dataclass(head.params) and head.params.__dataclass_params__.frozen
    torch.manual_seed(0)
    assert head.fit(data) is head
    logits = head.scores(test)
    assert logits.shape == (test.n, data.n_classes) and torch.isfinite(logits).all()

    again = create_head(name, QUICK.get(name))
    torch.manual_seed(0)
    again.fit(data)
    torch.testing.assert_close(again.scores(test), logits, msg=f"{name} is not deterministic under a seed")

    save_head(head, tmp_path / name, {"test": True})
    loaded, meta = load_head(tmp_path / name)
    assert meta["head"] == name and meta["selected"] == head.selected
    assert torch.equal(loaded.scores(test), logits), f"{name}: logits differ after save/load"
    assert not list((tmp_path / name).glob("*.pt")) and not list((tmp_path / name).glob("*.pkl"))


def test_unknown_head_and_unknown_param_are_named() -> None:
    with pytest.raises(ClipCacheError, match="unknown head 'tip_adaptor'"):
        create_head("tip_adaptor")
    with pytest.raises(ClipCacheError, match=r"heads\.vt_clip\.n_head\b"):
        create_head("vt_clip", {"n_head": 2})
    with pytest.raises(ClipCacheError, match=r"heads\.vt_clip\.n_heads must be int"):
        create_head("vt_clip", {"n_heads": "two"})


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        register_head("gda")(type("Again", (Head,), {}))

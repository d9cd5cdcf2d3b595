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


def test_head_section_reads_and_checks_every_head_of_params_yaml() -> None:
    from pipeline.heads.registry import head_section

    assert head_section({}, "gda") == {} and head_section({"heads": None}, "gda") == {}
    params = {"heads": {"tip_adapter": {"beta_grid": [0.1, 7.0, 10]}, "gda": None}}
    assert head_section(params, "tip_adapter") == {"beta_grid": [0.1, 7.0, 10]}
    assert head_section(params, "gda") == {} and head_section(params, "proker") == {}
    with pytest.raises(ClipCacheError) as error:
        head_section({"heads": ["gda"]}, "gda")
    assert str(error.value) == "params.yaml: 'heads' must map head names to their parameters"
    with pytest.raises(ClipCacheError) as error:
        head_section({"heads": {"gda": {}, "proker": 3}}, "gda")
    assert str(error.value) == "params.yaml: heads.proker must map parameter names to values, got 3"
    with pytest.raises(ClipCacheError, match=r"heads\.vt_clip\.n_head\b"):  # a slip in another head is named too
        head_section({"heads": {"gda": {}, "vt_clip": {"n_head": 2}}}, "gda")
    with pytest.raises(ClipCacheError, match="unknown head 'tip_adaptor'"):
        head_section({"heads": {"tip_adaptor": {}}}, "gda")


def test_describe_params_lists_every_field_with_its_default() -> None:
    from pipeline.heads.registry import describe_params

    for name in ALL:
        described = describe_params(name)
        assert described == {f.name: getattr(create_head(name).params, f.name)
                             for f in dataclasses.fields(create_head(name).params)}
    assert describe_params("coop")["n_ctx"] == 16 and describe_params("tip_adapter")["beta_grid"] == (0.1, 7.0, 200)


@pytest.mark.parametrize(("name", "params", "message"), [
    ("tip_adapter_f", {"eps": 0.0}, "heads.tip_adapter_f.eps must be > 0, got 0.0"),
    ("clip_adapter", {"lr": -0.1}, "heads.clip_adapter.lr must be >= 0, got -0.1"),
    ("clip_adapter", {"ratio": 1.5}, "heads.clip_adapter.ratio must be in [0, 1], got 1.5"),
    ("coop", {"n_ctx": 0}, "heads.coop.n_ctx must be >= 1, got 0"),
    ("coop", {"lr": float("nan")}, "heads.coop.lr must be finite, got nan"),
    ("tip_adapter", {"beta_grid": [0.1, float("inf"), 10]},
     "heads.tip_adapter.beta_grid must be finite, got (0.1, inf, 10)"),
    ("gda", {"template_set": "imagenet81"}, "heads.gda.template_set must be one of imagenet80, tip7, coop, reference, "
                                            "descriptions, got 'imagenet81'"),
])
def test_ranges_are_checked_for_every_field_by_name(name: str, params: dict, message: str) -> None:
    """Fields before the faulty one (a template_set string, booleans) do not stop the check."""
    with pytest.raises(ClipCacheError) as error:
        create_head(name, params)
    assert str(error.value) == message
    create_head("clip_adapter", {"ratio": 1.0, "lr": 0.0, "text_adapter": True})  # the edges pass

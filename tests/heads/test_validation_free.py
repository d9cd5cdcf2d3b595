"""Validation-free fits (train.protocol: validation_free): every head that has such a form fits with a validation
split any read of which is an error naming the head; the others say they have none."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.errors import ClipCacheError
from pipeline.heads import FitData, create_head, head_class, list_heads
from pipeline.heads.inputs import NoValidation
from tests.heads.conftest import PROMPT_LEARNERS, QUICK
from tests.heads.test_prompt_learners import cache, fit_data  # noqa: F401  (the tiny-ViT cache fixture)

SELECT_ON_VALIDATION = {"ape", "ape_t", "gda", "linear_probe", "lp_pp", "mm_adapter", "proker", "tip_adapter",
                        "tip_adapter_f"}
FREE = [name for name in list_heads() if head_class(name).validation_free is not None]


def test_the_heads_without_a_validation_free_form_are_those_that_select_on_validation() -> None:
    assert {name for name in list_heads() if head_class(name).validation_free is None} == SELECT_ON_VALIDATION
    assert dict(head_class("prolip").validation_free or ()) == {"search": False, "lambda_rule": "1/N"}
    assert dict(head_class("kgcoop").validation_free or ()) == {"keep": "last"}  # inherited from CoOp


@pytest.mark.parametrize("name", FREE)
def test_a_validation_free_fit_reads_no_validation_image(name: str, task, cache: Path) -> None:  # noqa: F811
    data = fit_data(cache) if name in PROMPT_LEARNERS else task[0]
    params = {**QUICK.get(name, {}), **dict(head_class(name).validation_free or ())}
    if name == "prolip":
        params["epochs"] = 2
    free = FitData(data.train, NoValidation(name), data.text, data.seed, torch.device("cpu"))  # type: ignore[arg-type]
    head = create_head(name, params).fit(free)
    assert head.selected.get("val_acc") is None and all("val_acc" not in h for h in head.history)


def test_reading_the_validation_split_there_names_the_head(task) -> None:
    data, _ = task
    free = FitData(data.train, NoValidation("gda"), data.text, data.seed, torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(ClipCacheError, match=r"gda read the validation split \(.*\) in a validation-free run"):
        create_head("gda", {}).fit(free)
    with pytest.raises(ClipCacheError, match=r"keep: best_val selects on validation"):
        create_head("clip_adapter", {"keep": "best_val", "epochs": 1}).fit(
            FitData(data.train, NoValidation("clip_adapter"), data.text, 1, torch.device("cpu")))  # type: ignore[arg-type]

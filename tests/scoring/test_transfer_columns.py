"""How a transfer target's classes are found among the source's: by ids (ImageNet's wnids) where both record them,
else by names, a name the source repeats matching nothing; and which heads keep columns."""

from __future__ import annotations

from pipeline.heads import head_class
from pipeline.scoring.transfer import class_columns, keeps_columns

SOURCE = {"name": "imagenet", "classnames": ["tench", "missile", "hen", "missile"],
          "class_ids": ["n01", "n02", "n03", "n04"]}


def test_ids_decide_where_both_data_sets_record_them() -> None:
    target = {"classnames": ["missile", "hen"], "class_ids": ["n04", "n03"]}
    assert class_columns(SOURCE, target) == [3, 2]  # by wnid: the second 'missile' is n04
    assert class_columns(SOURCE, {**target, "class_ids": ["n04", "n09"]}) is None  # n09 is no class of the source


def test_names_decide_otherwise_and_a_repeated_name_matches_nothing() -> None:
    assert class_columns({**SOURCE, "class_ids": []}, {"classnames": ["hen", "tench"]}) == [2, 0]
    assert class_columns({**SOURCE, "class_ids": []}, {"classnames": ["hen", "missile"]}) is None
    assert class_columns(SOURCE, {"classnames": ["hen", "kite"]}) is None
    assert class_columns(SOURCE, {"classnames": []}) is None


def test_text_heads_take_the_targets_names_and_per_class_heads_and_gda_keep_columns() -> None:
    keep = {name: keeps_columns(head_class(name)) for name in ("zero_shot", "coop", "clip_lora", "tip_adapter",
                                                                "linear_probe", "gda", "taskres")}
    assert keep == {"zero_shot": False, "coop": False, "clip_lora": False, "tip_adapter": True,
                    "linear_probe": True, "gda": True, "taskres": True}

"""The papers' numbers beside ours: matching by head, data set, backbone, weights and shots; the protocol judged
against the paper's preset; random weights never compared. Records are synthetic; the published data is the shipped
CSV (its rows are checked for form here, their values against the sources in published.csv's citations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.presets import load_preset
from pipeline.report import build_report
from pipeline.report.aggregate import by_group
from pipeline.report.load import load_runs
from pipeline.report.published import Published, applies, comparison_rows, published_numbers
from tests.report.records import record, write

TIP = {"template_set": "reference", "per_dataset": True}


def runs_of(tmp_path: Path, *records: dict) -> dict:
    for rec in records:
        write(tmp_path / "results", rec)
    return by_group(load_runs(tmp_path / "results"))


def tip(dataset: str, shots: int, seed: int, top1: float, **changes) -> dict:
    fields = {"model": "RN50", "pretrained": "openai", "head_params": TIP, **changes}
    return record(dataset, "tip_adapter", shots, seed, top1, **fields)


def test_the_shipped_numbers_are_well_formed_and_name_heads_we_have() -> None:
    from pipeline.heads.registry import MODULES
    from pipeline.presets import list_presets

    rows = published_numbers()
    assert len(rows) > 400 and all(0 < r.value <= 100 for r in rows)
    assert {r.head for r in rows} - {""} <= set(MODULES)
    assert {r.protocol for r in rows} <= set(list_presets())
    imagenet16 = [r.value for r in rows if (r.paper, r.head, r.dataset, r.shots, r.protocol) ==
                  ("tip_adapter", "tip_adapter", "imagenet", 16, "tip_adapter")]
    assert imagenet16 == [62.01]  # Tip-Adapter's exp.log, RN50, 16 shots (TDA's DG table prints 62.03)
    assert "imagenetv2" not in {r.dataset for r in rows}  # ImageNet-V2 is imagenet_v2, as its layout


def test_a_run_under_the_papers_protocol_is_compared(tmp_path: Path) -> None:
    groups = runs_of(tmp_path, tip("imagenet", 16, 1, 0.60), tip("imagenet", 16, 2, 0.62))
    rows = [r for r in comparison_rows(groups) if r[6].startswith("tip_adapter:")]
    assert rows == [["imagenet / RN50 / openai", "tip_adapter", "16", "61.0 (n=2)", "62.01", "-1.0",
                     "tip_adapter: Tip-Adapter, exp.log (Figs. 4-5 numeric)", "as the paper"]]
    gda_log = [r for r in comparison_rows(groups) if r[6].startswith("gda:")]
    assert [r[4] for r in gda_log] == ["62.01"]  # GDA's log repeats Tip-Adapter's number, cited separately


def test_two_sources_more_than_a_point_apart_are_both_shown_and_flagged(tmp_path: Path) -> None:
    """CLIP-Adapter on SUN397 at 4 shots: Tip-Adapter's exp.log says 65.96, APE's notebook 63.70."""
    run = record("sun397", "clip_adapter", 4, 1, 0.64, model="RN50", pretrained="openai", head_params={})
    rows = comparison_rows(runs_of(tmp_path, run))
    sources = {r[4]: r[6] for r in rows}
    assert sources["65.96"].endswith("— disagrees with ape: CLIP-Adapter (63.70)")
    assert sources["63.70"].endswith("— disagrees with tip_adapter: CLIP-Adapter (65.96)")
    close = record("imagenet", "tip_adapter", 16, 1, 0.6, model="RN50", pretrained="openai", head_params=TIP)
    assert not any("disagrees" in r[6] for r in comparison_rows(runs_of(tmp_path / "b", close)))  # 62.01 twice


def test_another_protocol_is_shown_without_a_difference(tmp_path: Path) -> None:
    groups = runs_of(tmp_path, tip("imagenet", 16, 1, 0.60, head_params={**TIP, "per_dataset": False}))
    (row, *_) = comparison_rows(groups)
    assert row[5] == "—" and row[7] == "differs: per_dataset: False != True"


def test_other_weights_backbones_shots_or_data_sets_match_nothing(tmp_path: Path) -> None:
    assert comparison_rows(runs_of(tmp_path / "a", tip("imagenet", 3, 1, 0.6))) == []
    assert comparison_rows(runs_of(tmp_path / "b", tip("textile", 16, 1, 0.6))) == []
    assert comparison_rows(runs_of(tmp_path / "c", tip("imagenet", 16, 1, 0.6, pretrained="laion400m_e32"))) == []


def test_random_weights_compare_nothing_and_say_so(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write(results, tip("imagenet", 16, 1, 0.6, pretrained="none", random_weights=True))
    write(results, tip("imagenet", 16, 2, 0.6, pretrained="none", random_weights=True))
    assert comparison_rows(by_group(load_runs(results))) == []
    build_report(results, tmp_path / "out")
    text = (tmp_path / "out" / "table.md").read_text()
    assert "## Published numbers beside ours" in text
    assert "Random weights, nothing compared: imagenet / RN50 / none." in text
    assert (tmp_path / "out" / "published_vs_ours.csv").read_text().startswith("data set / model / weights,head")


def test_zero_shot_rows_apply_at_every_shot_count_and_variants_need_their_params(tmp_path: Path) -> None:
    zs = record("eurosat", "zero_shot", 16, 1, 0.5, model="ViT-B-32", pretrained="openai",
                head_params={"template_set": "coop"})
    k10 = {**load_preset("cavpt").heads["cavpt"], "text_prompts": False, "aux_weight": 1.0}
    cavpt = record("caltech101", "cavpt", 16, 1, 0.9, model="ViT-B-32", pretrained="openai", head_params=k10)
    rows = comparison_rows(runs_of(tmp_path, zs, cavpt))
    assert [(r[1], r[4], r[7]) for r in rows if r[1] == "zero_shot"] == [("zero_shot", "45.19", "as the paper")]
    cavpt_rows = [r for r in rows if r[1] == "cavpt"]
    assert [r[6] for r in cavpt_rows] == ["cavpt: VPT-CLIP-CAVPT (K_N=10), Table 3"]  # not K_N 5/20/50/FULL
    assert cavpt_rows[0][7] == "as the paper"


@pytest.mark.parametrize("name", ["tip_adapter", "cavpt", "mm_adapter"])
def test_presets_fix_parameters_their_heads_know(name: str) -> None:
    """Every parameter a preset fixes is one of the head's own (a typo would never match a run)."""
    import dataclasses

    from pipeline.heads.registry import head_class

    for head, fixed in load_preset(name).heads.items():
        known = {f.name for f in dataclasses.fields(head_class(head).Params)}
        assert set(fixed) <= known, (head, set(fixed) - known)


def test_a_data_set_of_its_own_name_is_compared_by_its_layout(tmp_path: Path) -> None:
    """`{name: imagenet_mine, layout: imagenet}` is ImageNet to the published numbers; another layout is not."""
    mine = tip("imagenet_mine", 16, 1, 0.6, layout="imagenet")
    rows = comparison_rows(runs_of(tmp_path / "a", mine))
    assert rows and {r[0] for r in rows} == {"imagenet_mine / RN50 / openai"} and "62.01" in {r[4] for r in rows}
    assert comparison_rows(runs_of(tmp_path / "b", tip("imagenet_mine", 16, 1, 0.6, layout="image_folder"))) == []


def test_a_zero_shot_number_applies_to_zero_shot_only() -> None:
    row = Published("p", "t", "CLIP", "zero_shot", {}, "RN50", "openai", "imagenet", 0, 58.2, "coop", "", "c")
    key = ("imagenet", "RN50", "openai")
    assert applies(row, key, "zero_shot", 16, {}) and applies(row, key, "zero_shot", 1, {})
    assert not applies(row, key, "tip_adapter", 16, {}) and not applies(row, key, "tip_adapter", 0, {})
    assert not applies(row, ("imagenet", "RN50", "laion"), "zero_shot", 16, {})
    other = Published("p", "t", "Tip", "tip_adapter", {}, "RN50", "openai", "imagenet", 0, 60.0, "tip_adapter", "",
                      "c")
    assert applies(other, key, "tip_adapter", 0, {}) and not applies(other, key, "tip_adapter", 16, {})
    four = Published("p", "t", "CLIP", "zero_shot", {}, "RN50", "openai", "imagenet", 4, 58.2, "coop", "", "c")
    assert applies(four, key, "zero_shot", 4, {}) and not applies(four, key, "zero_shot", 16, {})
    transfer = Published("p", "t", "CLIP", "zero_shot", {}, "RN50", "openai", "imagenet", 0, 58.2, "cocoop_dg", "", "c")
    assert not applies(transfer, key, "zero_shot", 16, {})  # a transfer table's source column: not a few-shot cell

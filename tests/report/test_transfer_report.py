"""The transfer section of the report from synthetic transfer records: the papers' table, transfer.csv, published
numbers beside ours (each source shown, the preset judged) and malformed records named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ClipCacheError
from pipeline.presets import load_preset
from pipeline.report import build_report
from pipeline.report.load import load_runs
from pipeline.report.published_transfer import transfer_comparison
from tests.report.records import record

TARGETS = ["imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"]


def dg(head: str, seed: int, top1: float, targets: dict[str, float | None], **changes: Any) -> dict[str, Any]:
    """A domain-generalisation record of a ViT-B-16 (openai) head fitted on ImageNet."""
    listed = [{"dataset": name, "layout": name, **({"top1": value} if value is not None else
                                                 {"not_applicable": "per-class"})} for name, value in targets.items()]
    fields = {"model": "ViT-B-16", "pretrained": "openai", "protocol": "domain_generalisation",
              "transfer": {"source": "imagenet", "targets": listed}, **changes}
    return record("imagenet", head, 16, seed, top1, **fields)


def write(results: Path, rec: dict[str, Any]) -> None:
    folder = results / rec["head"] / "imagenet" / "ViT-B-16__openai" / f"k16-s{rec['seed']}-dg"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation.json").write_text(json.dumps(rec))


COOP = dict(load_preset("cocoop_dg").heads["coop"])


def test_the_table_the_csv_and_the_published_numbers_of_domain_generalisation(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for seed, shift in ((1, 0.0), (2, 0.01)):
        write(results, dg("coop", seed, 0.71 + shift, dict(zip(TARGETS, [0.64 + shift, 0.48, 0.50, 0.75],
                                                                strict=True)), head_params=COOP))
        write(results, dg("tip_adapter", seed, 0.70, {"imagenet_v2": 0.6, "imagenet_sketch": 0.4,
                                                      "imagenet_a": None, "imagenet_r": 0.7}))
    build_report(results, tmp_path / "report")
    table = (tmp_path / "report" / "table.md").read_text()
    assert "| head | imagenet | imagenet_v2 | imagenet_sketch | imagenet_a | imagenet_r | Average | seeds |" in table
    assert "| coop | 71.5 | 64.5 | 48.0 | 50.0 | 75.0 | 59.4 | 2 |" in table  # Average: (64.5 + 48 + 50 + 75) / 4
    assert "| tip_adapter | 70.0 | 60.0 | 40.0 | n/a | 70.0 | — | 2 |" in table
    rows = {(r[1], r[2], r[4]): r for r in transfer_comparison(load_runs(results)).rows}
    v2 = rows[("coop", "imagenet_v2", "64.20")]
    assert v2[3] == "64.5 (n=2)" and v2[5] == "+0.3" and v2[7] == "as the paper"
    assert ("coop", "imagenet_v2", "64.60") in rows and ("coop", "average", "59.28") in rows
    assert rows[("coop", "imagenet", "71.51")][5] == "-0.0"  # the source column: 71.5 against 71.51
    assert not any(key[0] == "tip_adapter" and key[1] == "imagenet_a" for key in rows)  # no number of ours there
    csv_rows = (tmp_path / "report" / "transfer.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 4 * 5 and any(",imagenet_a,ViT-B-16,openai,False,tip_adapter,16,1,n/a," in line
                                               for line in csv_rows)


def test_a_run_off_the_preset_is_shown_without_a_difference_and_sources_apart_are_flagged(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write(results, dg("coop", 1, 0.7, dict.fromkeys(TARGETS, 0.5), head_params={**COOP, "epochs": 10}))
    rows = transfer_comparison(load_runs(results)).rows
    assert rows and all(r[5] == "—" and r[7] == "differs: epochs: 10 != 0" for r in rows)
    rn50 = tmp_path / "rn50"
    for template_set in ("coop", "imagenet80"):
        write(rn50 / template_set, dg("zero_shot", 1, 0.58, dict.fromkeys(TARGETS, 0.5), model="RN50",
                                      head_params={"template_set": template_set}))
    single = [r for r in transfer_comparison(load_runs(rn50 / "coop")).rows if r[2] == "imagenet_v2"]
    assert sorted(r[4] for r in single) == ["51.41", "51.41"]  # TPT's and DMN's single-prompt row, not the ensemble
    ensemble = [r for r in transfer_comparison(load_runs(rn50 / "imagenet80")).rows if r[2] == "imagenet_v2"]
    assert sorted(r[4] for r in ensemble) == ["52.91", "52.91", "52.91"]


def test_a_malformed_transfer_record_is_named(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write(results, dg("coop", 1, 0.7, {"imagenet_v2": 0.5}))
    path = next(results.rglob("evaluation.json"))
    rec = json.loads(path.read_text())
    rec["transfer"]["targets"][0].pop("top1")
    path.write_text(json.dumps(rec))
    with pytest.raises(ClipCacheError, match=r"evaluation\.json: missing field transfer\.targets\[0\]\.top1"):
        load_runs(results)
    rec["transfer"] = {"targets": {}}
    path.write_text(json.dumps(rec))
    with pytest.raises(ClipCacheError, match=r"field transfer\.targets must list each target data set"):
        load_runs(results)

"""Cross-data-set transfer and domain generalisation end to end: tiny format-exact ImageNet, ImageNet-V2 and
ImageNet-A folders and a data set of other classes, encoded by a tiny ViT; sweeps fit on ImageNet and score the
targets; the numbers are checked against the heads' scores recomputed from the cache files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.encode.entry import encode_from_params
from pipeline.errors import ClipCacheError
from pipeline.heads.io import load_head
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.sweep.entry import sweep_from_params, sweep_status
from tests.heads.conftest import QUICK
from tests.helpers import PAIR, TINY, make_folder, make_image, make_imagenet, make_imagenet_shift
from tests.sweep.conftest import write

NAMES = ["tench", "goldfish", "shark", "ray", "hen"]
A_CLASSES = [3, 4]  # ImageNet-A's classes here: the last two of ImageNet's (wnids n00000003, n00000004)
HEADS = ["zero_shot", "tip_adapter", "gda", "coop"]


def dataset(name: str, root: Path, **more: Any) -> dict[str, Any]:
    return {"name": name, "root": str(root), **more}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """$DATA with imagenet (5 classes), imagenetv2 (the 5), imagenet-adversarial (2 of them) and a folder of 3 other
    classes, encoded (test-only shifts: test and text files only); the params of a grid over them."""
    data = tmp_path_factory.mktemp("data")
    make_imagenet(data / "imagenet", NAMES, 6)
    for i in range(1, 3):  # 3 test images per class
        for label in range(len(NAMES)):
            make_image(data / "imagenet" / "images" / "val" / f"n{label:08d}" / f"v{i}.JPEG", label, 90 + i)
    make_imagenet_shift(data, "imagenet_v2", NAMES, list(range(len(NAMES))), 2)
    make_imagenet_shift(data, "imagenet_a", NAMES, A_CLASSES, 3)
    make_folder(data / "other", ["kite", "lamp", "drum"], 10)
    cache = tmp_path_factory.mktemp("cache")
    params = {
        "grid": {"datasets": [dataset("imagenet", data / "imagenet"), dataset("imagenet_v2", data),
                              dataset("imagenet_a", data),
                              dataset("other", data / "other", layout="image_folder",
                                      options={"val_fraction": 0.2, "test_fraction": 0.3, "split_seed": 0})],
                 "models": [{"name": TINY["vit"], "pretrained": "none"}]},
        "encode": {"protocol": {"shots": [2], "seeds": [1, 2]},
                   "views": {"count": 3, "seed": 0, "scale": [0.5, 1.0], "spatial": False},
                   "features": {"spatial": False, "spatial_raw": False, "late_tokens": 0},
                   "templates": ["imagenet80", "tip7", "coop"], "cache_dir": str(cache)},
        "runtime": {"workers": 0, "batch_size": 8, "device": "cpu"},
        "train": {"heads": HEADS, "protocol": "domain_generalisation",
                  "transfer": {"source": "imagenet", "targets": ["imagenet_v2", "imagenet_a"]}},
        "heads": {**copy.deepcopy(QUICK), "gda": {"novel_neighbours": 4}},
        "evaluate": {"results_dir": str(data / "results"), "report_dir": str(data / "report")},
    }
    encode_from_params(write(params, data / "params.yaml"), [], {})
    return {"data": data, "cache": cache, "params": params}


def run(world: dict[str, Any], tmp_path: Path, **train: Any) -> tuple[dict[str, Any], Path]:
    params = copy.deepcopy(world["params"])
    params["train"].update(train)
    params["evaluate"] = {"results_dir": str(tmp_path / "results"), "report_dir": str(tmp_path / "report")}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write(params, tmp_path / "params.yaml")
    return params, path


def record(results: Path, head: str, folder: str) -> dict[str, Any]:
    return json.loads((results / head / "imagenet" / PAIR["vit"] / folder / "evaluation.json").read_text())


def targets(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A transfer record's targets by name."""
    return {t["dataset"]: t for t in evaluation["transfer"]["targets"]}


def test_test_only_shifts_hold_a_test_and_a_text_file_and_no_runs_of_their_own(world: dict[str, Any],
                                                                                tmp_path: Path) -> None:
    folder = world["cache"] / "imagenet_a" / PAIR["vit"]
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["test.h5", "text.h5"]
    test = FeatureSplit(folder / "test.h5")
    assert test.provenance["dataset"]["class_ids"] == ["n00000003", "n00000004"]
    _, path = run(world, tmp_path, protocol="all", heads=["zero_shot"])
    report = sweep_from_params(path, [], None, {})
    assert sorted({r.key.split("/")[0] for r in report.results}) == ["imagenet", "other"]


def test_domain_generalisation_scores_each_target_by_text_or_by_the_source_columns(world: dict[str, Any],
                                                                                   tmp_path: Path) -> None:
    """Text heads take the target's names; per-class heads keep the columns of the target's wnids among
    ImageNet's; every number equals the head's scores recomputed from the files; a second sweep fits nothing."""
    _, path = run(world, tmp_path)
    report = sweep_from_params(path, [], None, {})
    assert {r.status for r in report.results} == {"done"} and len(report.results) == len(HEADS) * 2
    results = tmp_path / "results"
    zero = record(results, "zero_shot", "k2-s1-dg")
    assert zero["protocol"] == "domain_generalisation" and zero["transfer"]["source"] == "imagenet"
    a_cache = world["cache"] / "imagenet_a" / PAIR["vit"]
    test, text = FeatureSplit(a_cache / "test.h5"), TextFeatures(a_cache / "text.h5")
    feats = torch.nn.functional.normalize(torch.from_numpy(test.read("global")).float(), dim=-1)  # [N, D]
    weights = torch.from_numpy(text.mean(zero["head_params"]["template_set"]
                                         .replace("reference", "tip7"))).float()  # [2, D]
    expected = float(((feats @ weights.T).argmax(1).numpy() == test.labels).mean())  # [N, D] @ [D, 2]
    target = targets(zero)["imagenet_a"]
    assert target["applied"] == "text" and target["n_classes"] == 2 and target["top1"] == pytest.approx(expected)
    for head in ("tip_adapter", "gda"):
        found = record(results, head, "k2-s2-dg")
        assert [(t["dataset"], t["applied"]) for t in found["transfer"]["targets"]] == [
            ("imagenet_v2", "columns"), ("imagenet_a", "columns")]
        fitted, _ = load_head(results / head / "imagenet" / PAIR["vit"] / "k2-s2-dg")
        scores = fitted.scores(test).numpy()[:, A_CLASSES]  # [N, 5] -> [N, 2]: A's wnids among ImageNet's
        top1 = float((scores.argmax(1) == test.labels).mean())
        assert targets(found)["imagenet_a"]["top1"] == pytest.approx(top1)
        assert found["transfer"]["average"] == pytest.approx(np.mean([v["top1"] for v in
                                                                      found["transfer"]["targets"]]))
    assert targets(record(results, "coop", "k2-s1-dg"))["imagenet_v2"]["applied"] == "text"
    inputs = json.loads((results / "coop" / "imagenet" / PAIR["vit"] / "k2-s1-dg" / "run.json").read_text())["inputs"]
    assert {"test@imagenet_v2", "text@imagenet_v2", "test@imagenet_a", "text@imagenet_a"} <= set(inputs["cache"])
    assert inputs["protocol"] == "domain_generalisation"
    again = sweep_from_params(path, [], None, {})
    assert {r.status for r in again.results} == {"skipped"}
    rows = sweep_status(path, [])
    assert [(r["head"], r["dataset"], r["done"]) for r in rows] == [(h, "imagenet", 2) for h in sorted(HEADS)]


def test_the_report_prints_the_papers_transfer_table(world: dict[str, Any], tmp_path: Path) -> None:
    from pipeline.report import build_report

    _, path = run(world, tmp_path, heads=["zero_shot", "tip_adapter"])
    sweep_from_params(path, [], None, {})
    build_report(tmp_path / "results", tmp_path / "report")
    table = (tmp_path / "report" / "table.md").read_text()
    assert "## Transfer to other data sets" in table and "### Domain generalisation — imagenet" in table
    header = next(line for line in table.splitlines() if line.startswith("| head | imagenet |"))
    assert header == "| head | imagenet | imagenet_v2 | imagenet_a | Average | seeds |"
    zero = [record(tmp_path / "results", "zero_shot", f"k2-s{s}-dg") for s in (1, 2)]
    row = next(line for line in table.splitlines() if line.startswith("| zero_shot |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    means = [100 * np.mean([targets(z)[t]["top1"] for z in zero]) for t in ("imagenet_v2", "imagenet_a")]
    assert cells[1] == f"{100 * np.mean([z['metrics']['top1'] for z in zero]):.1f}"
    assert cells[2:5] == [f"{means[0]:.1f}", f"{means[1]:.1f}", f"{np.mean(means):.1f}"] and cells[5] == "2"
    csv_rows = (tmp_path / "report" / "transfer.csv").read_text().splitlines()
    assert csv_rows[0].startswith("protocol,source,target,model") and len(csv_rows) == 1 + 2 * 2 * 3
    assert "| zero_shot |" not in table.split("## Transfer")[0]  # transfer runs are not few-shot rows


def test_cross_dataset_transfer_retargets_text_heads_and_names_per_class_heads_not_applicable(
        world: dict[str, Any], tmp_path: Path) -> None:
    """Fitted on ImageNet, scored on a data set of other classes: zero-shot and CoOp take its names, Tip-Adapter
    does not apply there (its average is missing), GDA synthesises the classes from text and its training views."""
    from pipeline.report import build_report

    _, path = run(world, tmp_path, protocol="cross_dataset", transfer={"source": "imagenet", "targets": ["other"]},
                  heads=["zero_shot", "tip_adapter", "gda"])
    sweep_from_params(path, [], None, {})
    results = tmp_path / "results"
    found = {h: record(results, h, "k2-s1-xd") for h in ("zero_shot", "tip_adapter", "gda")}
    other = {h: targets(r)["other"] for h, r in found.items()}
    assert other["zero_shot"]["applied"] == "text" and other["gda"]["applied"] == "synthesised"
    assert "not all among imagenet's" in other["tip_adapter"]["not_applicable"]
    assert found["tip_adapter"]["transfer"]["average"] is None
    zero_on_other = other["zero_shot"]["top1"]
    _, own = run(world, tmp_path / "own", protocol="all", heads=["zero_shot"])
    sweep_from_params(own, [], None, {}, dataset="other")
    direct = json.loads((tmp_path / "own" / "results" / "zero_shot" / "other" / PAIR["vit"] / "k2-s1"
                         / "evaluation.json").read_text())
    assert zero_on_other == pytest.approx(direct["metrics"]["top1"])  # zero-shot is zero-shot wherever it was fitted
    build_report(results, tmp_path / "report")
    row = next(line for line in (tmp_path / "report" / "table.md").read_text().splitlines()
               if line.startswith("| tip_adapter |"))
    assert row.split("|")[3].strip() == "n/a" and row.split("|")[4].strip() == "—"


def test_transfer_settings_are_checked_before_anything_runs(world: dict[str, Any], tmp_path: Path) -> None:
    _, path = run(world, tmp_path, transfer={"source": "imagenet_a", "targets": ["imagenet_v2"]})
    with pytest.raises(ClipCacheError, match=r"source 'imagenet_a' is a test-only data set \(layout imagenet_a\)"):
        sweep_from_params(path, [], None, {})
    _, path = run(world, tmp_path, transfer={"source": "imagenet", "targets": ["imagenet_r"]})
    with pytest.raises(ClipCacheError, match=r"train.transfer names 'imagenet_r', which is no data set of the grid"):
        sweep_from_params(path, [], None, {})
    _, path = run(world, tmp_path, transfer={"source": "imagenet", "targets": ["imagenet"]})
    with pytest.raises(ClipCacheError, match=r"targets must name data sets other than the source 'imagenet'"):
        sweep_from_params(path, [], None, {})
    _, path = run(world, tmp_path)
    with pytest.raises(ClipCacheError, match=r"transfers from 'imagenet', which is not among the chosen data sets"):
        sweep_from_params(path, [], None, {}, dataset="other")

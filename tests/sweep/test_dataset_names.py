"""A data set's own name everywhere: two image_folder data sets in one grid, encoded, swept and reported under the
names the grid gives them, their layout shown as the layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from pipeline.encode.entry import encode_from_params
from pipeline.errors import ClipCacheError
from pipeline.report import build_report
from pipeline.store.inspect import describe, render
from pipeline.sweep.entry import sweep_from_params
from tests.helpers import PAIR, make_folder
from tests.sweep.conftest import grid_params, write


def named(section: dict, name: str, root: Path) -> dict:
    """The grid's data set entry of `section` under its own name, read with the image_folder layout."""
    return {**section["dataset"], "name": name, "layout": "image_folder", "root": str(root)}


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory: pytest.TempPathFactory, two_seed_cache: dict) -> tuple[Path, Path]:
    """(params file, results) of a grid of two image_folder data sets 'parts' and 'tools' (different classes)."""
    tmp = tmp_path_factory.mktemp("names")
    parts = make_folder(tmp / "parts", ["bolt", "nut", "washer"], 10)
    tools = make_folder(tmp / "tools", ["saw", "drill"], 10)
    section = {**two_seed_cache, "cache_dir": str(tmp / "cache"), "protocol": {"shots": [1], "seeds": [1]}}
    params = grid_params(section, tmp, heads=["zero_shot", "gda"])
    params["grid"]["datasets"] = [named(section, "parts", parts), named(section, "tools", tools)]
    path = write(params, tmp / "params.yaml")
    encode_from_params(path, [], {})
    sweep_from_params(path, [], None, {})
    return path, tmp / "results"


def test_records_and_metrics_carry_the_grids_name(two_folders: tuple[Path, Path]) -> None:
    _, results = two_folders
    for name, classes in (("parts", ["bolt", "nut", "washer"]), ("tools", ["drill", "saw"])):
        folder = results / "gda" / name / PAIR["vit"] / "k1-s1"
        record = json.loads((folder / "evaluation.json").read_text())
        assert (record["dataset"], record["layout"], record["classnames"]) == (name, "image_folder", classes)
        assert json.loads((folder / "head.json").read_text())["provenance"]["dataset"]["name"] == name
    metrics = json.loads((results / "metrics" / "gda.json").read_text())
    assert sorted(metrics) == ["parts", "tools"]


def test_the_report_keeps_both_data_sets_apart(two_folders: tuple[Path, Path], tmp_path: Path) -> None:
    _, results = two_folders
    written = build_report(results, tmp_path / "report")
    rows = list(csv.DictReader((tmp_path / "report" / "runs.csv").open()))
    assert sorted({(r["dataset"], r["layout"]) for r in rows}) == [("parts", "image_folder"),
                                                                  ("tools", "image_folder")]
    assert len(rows) == 4  # 2 data sets x 2 heads x 1 shot x 1 seed, none merged
    top1 = {(r["dataset"], r["head"]): 100 * float(r["top1"]) for r in rows}
    summary = list(csv.DictReader((tmp_path / "report" / "summary.csv").open()))
    assert sorted({r["dataset"] for r in summary}) == ["parts", "tools"]
    table = (tmp_path / "report" / "table.md").read_text()
    assert "parts" in table and "tools" in table and "image_folder" not in table
    for head in ("zero_shot", "gda"):  # the Average over the two data sets, as the table prints it (one decimal)
        mean = (top1[("parts", head)] + top1[("tools", head)]) / 2
        assert f"{mean:.1f}" in table
    figures = [p.name for p in written if p.suffix == ".png"]
    assert any("parts" in f for f in figures) and any("tools" in f for f in figures)
    assert not any("image_folder" in f for f in figures)


def test_inspect_names_the_data_set_and_its_layout(two_folders: tuple[Path, Path]) -> None:
    params, _ = two_folders
    cache = Path(yaml.safe_load(params.read_text())["encode"]["cache_dir"])
    entries = describe(cache / "tools")
    assert entries and {e["dataset"] for e in entries} == {"tools"} and {e["layout"] for e in entries} == {
        "image_folder"}
    assert "data set tools (layout image_folder)" in render(entries)


def test_a_few_shot_error_names_the_data_set(two_folders: tuple[Path, Path]) -> None:
    params, _ = two_folders
    with pytest.raises(ClipCacheError, match=r"tools \(layout image_folder\) train: class 'drill' has \d+ image\(s\), "
                                             r"fewer than the 16"):
        encode_from_params(params, ["encode.protocol.shots=[16]"], {}, dataset="tools")


def test_coops_keep_all_rule_encodes_and_fits_a_short_class(two_folders: tuple[Path, Path], tmp_path: Path) -> None:
    """short_classes: keep_all: every class with fewer than K training images keeps all of them, the files say
    which, and a head fits on them (the check for skipped images accepts exactly those classes)."""
    from pipeline.store import FeatureSplit
    from pipeline.train.entry import train_from_params

    params, _ = two_folders
    over = ["encode.protocol.shots=[16]", "encode.protocol.short_classes=keep_all", f"encode.cache_dir={tmp_path}",
            "train.shots=16", f"evaluate.results_dir={tmp_path / 'results'}"]
    encode_from_params(params, over, {}, dataset="tools")
    train = next(tmp_path.rglob("k16-s1/train.h5"))
    split = FeatureSplit(train).provenance["split"]
    assert split["short_classes"] == ["drill", "saw"] and split["sampler"] == "dassl"
    result = train_from_params(params, over, "zero_shot", {"device": "cpu"}, "tools")
    assert result.metrics["shots"] == 16

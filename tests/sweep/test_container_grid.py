"""The container layouts end to end: one grid of an image folder and the same images as webdataset shards, as
img2dataset parquet files, and (with its own splits) as a datasets save_to_disk folder, encoded (one DataLoader
worker: members read in another process), swept and reported; every feature of a member is bitwise the feature of
the same image file, so the layouts feed exactly the same pixels."""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.encode.entry import encode_from_params
from pipeline.report import build_report
from pipeline.store import FeatureSplit
from pipeline.sweep.entry import sweep_from_params
from tests.data.containers import make_parquet, make_saved_dataset, make_shards, split_copy
from tests.helpers import PAIR, cache_tensors, encode_section, make_folder, write_params
from tests.sweep.conftest import grid_params, write

HEADS = ["zero_shot", "linear_probe"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data root, cache, results) of a swept grid of five data sets: folder / shards / rows (partitioned alike) and
    split / saved (train and test of their own)."""
    tmp = tmp_path_factory.mktemp("containers")
    folder = make_folder(tmp / "folder", ["red_thing", "green_thing", "blue_thing"], 6)
    make_shards(tmp / "shards", folder, 7)
    make_parquet(tmp / "rows", folder, 10)
    make_saved_dataset(tmp / "saved", split_copy(tmp / "split", folder))
    section = encode_section(folder, "vit", tmp / "cache", protocol__shots=[1], views__count=1,
                             views__spatial=False, features__spatial=False, features__spatial_raw=False,
                             features__late_tokens=0, templates=["coop"])
    params = grid_params(section, tmp, heads=HEADS, runtime={"workers": 1, "batch_size": 4})
    layouts = {"folder": "image_folder", "shards": "webdataset", "rows": "parquet", "split": "image_folder",
               "saved": "parquet"}
    params["grid"]["datasets"] = [{"name": name, "layout": layout, "root": str(tmp / name)}
                                  for name, layout in layouts.items()]
    path = write(params, tmp / "params.yaml")
    encode_from_params(path, [], {})
    sweep_from_params(path, [], None, {})
    return tmp, tmp / "cache", tmp / "results"


@pytest.mark.parametrize(("name", "twin", "id_pattern"), [
    ("shards", "folder", r"^shards-00000[0-2]\.tar#[a-z]+_thing_img_00[0-5]\.jpg$"),
    ("rows", "folder", r"^0000[01]\.parquet#0000000[0-9][0-9]\.jpg$"),
    ("saved", "split", r"^(train|test)/data-00000-of-00001\.arrow#[0-9]+\.image$"),
])
def test_members_encode_to_the_features_of_the_same_files(grid: tuple[Path, Path, Path], name: str, twin: str,
                                                          id_pattern: str) -> None:
    _, cache, _ = grid
    mine, theirs = sorted((cache / name).rglob("*.h5")), sorted((cache / twin).rglob("*.h5"))
    assert len(mine) == 4  # test, train and val of 1 shot x 1 seed, text
    for path, other in zip(mine, theirs, strict=True):
        if path.name == "text.h5":
            continue
        got, want = FeatureSplit(path), FeatureSplit(other)
        assert got.n == want.n > 0 and all(re.match(id_pattern, i) for i in got.image_ids), got.image_ids[:3]
        assert got.provenance["dataset"]["layout"] in ("webdataset", "parquet")
        assert got.provenance["split"]["content_sha256"] == want.provenance["split"]["content_sha256"]
    ours, twins = cache_tensors(cache / name), cache_tensors(cache / twin)
    compared = [key for key in twins if not key.endswith(":image_id")]
    assert sorted(ours) == sorted(twins) and any(key.endswith("train.h5:views/global") for key in compared)
    for key in compared:  # features, views and their boxes, labels, item indices, text: bitwise
        assert np.array_equal(ours[key], twins[key]), f"{key} differs from {twin}'s"


def test_heads_are_swept_and_reported_on_every_layout(grid: tuple[Path, Path, Path]) -> None:
    tmp, _, results = grid
    for head in HEADS:
        metrics = json.loads((results / "metrics" / f"{head}.json").read_text())
        assert sorted(metrics) == ["folder", "rows", "saved", "shards", "split"]
    top1 = {}
    for name in ("folder", "shards", "rows", "split", "saved"):
        record = json.loads((results / "linear_probe" / name / PAIR["vit"] / "k1-s1" / "evaluation.json").read_text())
        top1[name] = record["metrics"]["top1"]
    assert top1["shards"] == top1["rows"] == top1["folder"] and top1["saved"] == top1["split"]
    build_report(results, tmp / "report")
    rows = list(csv.DictReader((tmp / "report" / "runs.csv").read_text().splitlines()))
    assert sorted({(r["dataset"], r["layout"]) for r in rows}) == [
        ("folder", "image_folder"), ("rows", "parquet"), ("saved", "parquet"), ("shards", "webdataset"),
        ("split", "image_folder")]
    assert len(rows) == 5 * len(HEADS)


def test_a_damaged_member_stops_encode_naming_shard_and_key_then_skips(tmp_path: Path, capsys) -> None:
    """As a bad image file: one line naming `<shard>#<member>`, then --skip-bad-images encodes the rest and lists it;
    the members are read as bytes for `decode: gpu` too (its CPU decoder here)."""
    folder = make_folder(tmp_path / "folder", ["a", "b"], 5)
    shards = make_shards(tmp_path / "shards", folder, 4)
    with tarfile.open(shards[0]) as archive:
        members = [(m.name, archive.extractfile(m).read()) for m in archive.getmembers()]  # type: ignore[union-attr]
    bad = next(name for name, _ in members if name.endswith(".jpg"))
    with tarfile.open(shards[0], "w") as archive:  # the first image's bytes are no JPEG
        for name, data in members:
            data = b"\xff\xd8 not a jpeg" if name == bad else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    section = encode_section(tmp_path / "shards", "vit", tmp_path / "cache", dataset__name="webdataset",
                             protocol__shots=[1], views__count=0, features__spatial=False,
                             features__spatial_raw=False, features__late_tokens=0, templates=["coop"],
                             features__decode="gpu", dataset__options={"test_fraction": 0.6, "val_fraction": 0.0})
    params = write_params(tmp_path / "params.yaml", section, {"workers": 1, "batch_size": 4, "device": "cpu"})
    assert main(["encode", "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{shards[0]}#{bad}: " in err and "--skip-bad-images" in err, err
    assert main(["encode", "--params", str(params), "--skip-bad-images"]) == 0
    files = [FeatureSplit(p) for p in sorted((tmp_path / "cache").rglob("*.h5")) if p.name != "text.h5"]
    skipped = [s for f in files for s in f.skipped]
    assert len(skipped) == 1 and skipped[0].startswith(f"{shards[0]}#{bad}: ")
    assert [f.provenance["split"]["n_items"] - f.n for f in files].count(1) == 1  # one row short, in one file
    assert all(FeatureSplit(p).provenance["features"]["decode"] == "gpu" for p in (tmp_path / "cache").rglob("t*.h5")
               if p.name != "text.h5")

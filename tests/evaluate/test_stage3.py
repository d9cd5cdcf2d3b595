"""Stage 3 end to end on a real tiny cache: evaluate with provenance, then a report from the JSON files alone."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.heads.conftest import QUICK
from tests.helpers import LABEL, PAIR, encode_section, write_params


def test_train_evaluate_report(encoded, image_root: Path, tmp_path: Path, capsys) -> None:
    kind, report = encoded
    if kind != "vit":
        pytest.skip("stage 3 end to end runs once, on the ViT cache (vt_clip needs its spatial maps)")
    section = encode_section(image_root, kind, report.folder.parents[1])
    params = write_params(tmp_path / "params.yaml", section, heads=QUICK,
                          train={"shots": 2, "seed": 1},
                          evaluate={"results_dir": str(tmp_path / "results"), "report_dir": str(tmp_path / "report")})
    for head in ("zero_shot", "gda", "vt_clip"):
        assert main(["train", "--params", str(params), "--head", head]) == 0
        assert main(["evaluate", "--params", str(params), "--head", head]) == 0
    found = next((tmp_path / "results").rglob(f"vt_clip/image_folder/{PAIR['vit']}/k2-s1/evaluation.json"))
    record = json.loads(found.read_text())
    assert {"dataset", "model", "pretrained", "random_weights", "shots", "seed", "head", "head_params", "selected",
            "cache_files"} <= set(record)
    cuda = __import__("torch").cuda.is_available()
    assert record["device"] == ("cuda" if cuda else "cpu")  # runtime.device 'auto', recorded with the numbers
    if not cuda:  # evaluate runs on the runtime device, as train does
        capsys.readouterr()
        assert main(["evaluate", "--params", str(params), "--head", "gda", "--device", "cuda"]) == 1
        assert "device 'cuda' asked for, but CUDA is not available here" in capsys.readouterr().err
    assert record["random_weights"] is True and record["pretrained"] == "none" and record["model"] == LABEL["vit"]
    assert set(record["cache_files"]) == {"k2-s1/train.h5", "k2-s1/val.h5", f"{PAIR['vit']}/text.h5", "test.h5"}
    assert record["draw"] == {"sampler": "dassl", "val_rule": "coop", "val_images": 6}  # min(2, 4) x 3 classes
    assert record["metrics"]["n_test"] == 9 and 0 <= record["metrics"]["top1"] <= 1
    assert len(record["attention"]) == 4 and Path(record["attention"][0]["image"]).is_file()
    assert len(record["attention"][0]["attention_true"]) == 4  # a 4 x 4 grid for the tiny ViT (64 px, patch 16)

    results = tmp_path / "only-json"
    shutil.copytree(tmp_path / "results", results)
    for fitted in results.rglob("head.safetensors"):
        fitted.unlink()  # the report needs neither fitted heads nor the cache
    capsys.readouterr()
    assert main(["report", "--params", str(params), "--results", str(results), "--out", str(tmp_path / "rep")]) == 0
    table = (tmp_path / "rep" / "table.md").read_text()
    assert "RANDOM WEIGHTS" in table and "| vt_clip |" in table and "2 shots" in table
    assert "Few-shot sets: dassl sampler, coop validation (dassl: the images Dassl's sampler draws" in table
    rows = list(csv.DictReader((tmp_path / "rep" / "runs.csv").open()))
    assert {r["head"] for r in rows} == {"zero_shot", "gda", "vt_clip"} and all(r["pretrained"] == "none" for r in rows)
    pngs = sorted(p.name for p in (tmp_path / "rep" / "figures").glob("*.png"))
    assert "head,shots,top1" in (tmp_path / "rep" / "accuracy_by_shots.csv").read_text()
    assert any(n.startswith("accuracy_vs_shots") for n in pngs) and any(n.startswith("attention__") for n in pngs)
    assert sum(n.startswith("confusion__") for n in pngs) == 3
    assert "| gda |" in capsys.readouterr().out


def test_report_without_results_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["report", "--params", str(tmp_path / "none.yaml"), "--results", str(tmp_path)]) == 1
    assert "no evaluation.json" in capsys.readouterr().err


def test_evaluate_before_train_says_so(encoded, image_root: Path, tmp_path: Path, capsys) -> None:
    kind, report = encoded
    section = encode_section(image_root, kind, report.folder.parents[1])
    params = write_params(tmp_path / "p.yaml", section, train={"shots": 2, "seed": 1},
                          evaluate={"results_dir": str(tmp_path / "none")})
    assert main(["evaluate", "--params", str(params), "--head", "gda"]) == 1
    assert "no readable fitted head" in capsys.readouterr().err

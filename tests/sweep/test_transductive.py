"""Transductive scoring in the sweep: never unless asked, its own k<K>-s<seed>-transclip folders and fingerprints, the
head's own metrics kept beside the refined ones, and the report's label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ClipCacheError
from pipeline.sweep.entry import sweep_from_params
from tests.helpers import PAIR as TINY_PAIR
from tests.sweep.conftest import grid_params, write

PAIR = f"image_folder/{TINY_PAIR['vit']}"


def sweep(params: dict, tmp_path: Path) -> object:
    return sweep_from_params(write(params, tmp_path / "params.yaml"), [], None, {})


def run_dir(tmp_path: Path, head: str, name: str) -> Path:
    return tmp_path / "results" / head / "image_folder" / TINY_PAIR["vit"] / name


def test_no_run_is_transductive_unless_asked(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "tip_adapter"])
    report = sweep(params, tmp_path)
    assert report.total == 8 and not any("transclip" in r.key for r in report.results)
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("run.json")]
    assert len(runs) == 8 and all(r["transductive"] is None and "transductive" not in r["inputs"] for r in runs)
    assert not any("transductive" in json.loads(p.read_text())
                   for p in (tmp_path / "results").rglob("evaluation.json"))


def test_listed_heads_get_transclip_runs_of_their_own(two_seed_cache, tmp_path: Path) -> None:
    from pipeline.report import build_report

    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "tip_adapter"])
    params["transductive"] = {"heads": ["zero_shot"]}
    report = sweep(params, tmp_path)
    keys = {r.key for r in report.results if r.status == "done"}
    assert report.total == 12 and f"{PAIR}/zero_shot/k2-s1-transclip" in keys
    assert not any(k.startswith(f"{PAIR}/tip_adapter/") and k.endswith("transclip") for k in keys)
    inductive = json.loads((run_dir(tmp_path, "zero_shot", "k2-s1") / "evaluation.json").read_text())
    refined = json.loads((run_dir(tmp_path, "zero_shot", "k2-s1-transclip") / "evaluation.json").read_text())
    own = refined["transductive"]
    assert (own["method"], own["mode"], own["selected"]) == ("transclip", "zero-shot", {})
    assert "never its labels" in own["reads"] and own["params"]["gammas"] == [0.002, 0.01, 0.02, 0.2]
    assert own["inductive_metrics"]["top1"] == inductive["metrics"]["top1"]  # the same fit, scored by itself
    assert refined["metrics"]["n_test"] == inductive["metrics"]["n_test"] and "attention" not in refined
    run = json.loads((run_dir(tmp_path, "zero_shot", "k2-s1-transclip") / "run.json").read_text())
    assert run["transductive"] == "transclip" and run["inputs"]["transductive"]["params"]["support"] is False
    build_report(tmp_path / "results", tmp_path / "report")
    table = (tmp_path / "report" / "table.md").read_text()
    assert "| zero_shot+transclip |" in table and "Transductive rows (zero_shot+transclip)" in table
    assert "tip_adapter+transclip" not in table


def test_transclip_params_refit_only_the_transductive_runs(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot"])
    params["transductive"] = {"heads": ["zero_shot"]}
    assert sweep(params, tmp_path).count("done") == 8
    params["transductive"]["transclip"] = {"support": True}
    again = sweep(params, tmp_path)
    assert (again.count("done"), again.count("skipped")) == (4, 4)
    assert all(r.key.endswith("-transclip") for r in again.results if r.status == "done")
    record = json.loads((run_dir(tmp_path, "zero_shot", "k2-s2-transclip") / "evaluation.json").read_text())
    own = record["transductive"]
    assert own["mode"] == "few-shot" and own["selected"]["gamma"] in (0.002, 0.01, 0.02, 0.2)
    assert 0.0 <= own["selected"]["val_top1"] <= 1.0


def test_transductive_heads_are_checked_before_anything_runs(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot"])
    params["transductive"] = {"heads": ["zero_shoot"]}
    with pytest.raises(ClipCacheError, match="zero_shoot"):
        sweep(params, tmp_path)
    params["transductive"] = {"heads": ["zero_shot"]}
    params["train"]["protocol"] = "base_to_novel"
    with pytest.raises(ClipCacheError, match=r"transductive\.heads \(zero_shot\) cannot be scored under"):
        sweep(params, tmp_path)
    assert not (tmp_path / "results" / "zero_shot").exists()

"""Training curves end to end on a real tiny cache: a sweep's trained runs hold DVCLive curves (checksummed in run.json,
their finals in the head's metrics file), untrained runs none; a changed curve file is damage; the report draws the
runs evaluate.curves chooses and copies their files for `dvc plots show`, and a pattern that matches nothing is one
line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pipeline.errors import ClipCacheError
from pipeline.report import build_report
from pipeline.sweep.entry import sweep_from_params
from pipeline.sweep.record import run_state
from stages.report import main as report_main
from tests.helpers import PAIR as TINY_PAIR
from tests.sweep.conftest import grid_params, write

PAIR = f"image_folder/{TINY_PAIR['vit']}"
CURVE_FILES = ["dvclive/metrics.json", "dvclive/plots/metrics/lr.tsv", "dvclive/plots/metrics/train_loss.tsv",
               "dvclive/plots/metrics/val_acc.tsv"]


def tsv(path: Path, name: str) -> list[tuple[int, float]]:
    with path.open(newline="") as handle:
        return [(int(row["step"]), float(row[name])) for row in csv.DictReader(handle, delimiter="\t")]


@pytest.fixture(scope="module")
def swept(two_seed_cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """zero_shot and a 3-epoch CLIP-Adapter (best on validation: every epoch validated), shots 1 and 2, seed 1."""
    folder = tmp_path_factory.mktemp("curves")
    params = grid_params(two_seed_cache, folder, heads=["zero_shot", "clip_adapter"])
    params["encode"]["protocol"]["seeds"] = [1]
    params["heads"]["clip_adapter"] = {"epochs": 3, "keep": "best_val"}
    assert sweep_from_params(write(params, folder / "params.yaml"), [], None, {}).count("done") == 4
    return folder


def test_trained_runs_hold_checksummed_curves_and_untrained_runs_none(swept: Path) -> None:
    results = swept / "results"
    run = results / "clip_adapter" / PAIR / "k2-s1"
    recorded = json.loads((run / "run.json").read_text())["checksums"]
    assert sorted(k for k in recorded if k.startswith("dvclive/")) == CURVE_FILES
    fit = json.loads((run / "fit.json").read_text())
    for name in ("train_loss", "val_acc", "lr"):
        assert tsv(run / "dvclive" / "plots" / "metrics" / f"{name}.tsv", name) == [
            (h["epoch"], h[name]) for h in fit["history"]]
    summary = json.loads((run / "dvclive" / "metrics.json").read_text())
    scores = json.loads((run / "metrics.json").read_text())
    assert summary["kept"] == {"epoch": fit["selected"]["epoch"], "val_acc": fit["selected"]["val_acc"]}
    assert summary["test"]["top1"] == scores["top1"] and summary["step"] == 3
    assert not (results / "zero_shot" / PAIR / "k2-s1" / "dvclive").exists()
    listed = json.loads((results / "metrics" / "clip_adapter.json").read_text())["image_folder"][TINY_PAIR["vit"]]
    assert listed["k2-s1"] == {"top1": scores["top1"], "mean_per_class_accuracy": scores["mean_per_class_accuracy"],
                               "ece": scores["ece"], "kept_epoch": fit["selected"]["epoch"],
                               "kept_val_acc": fit["selected"]["val_acc"],
                               "final_train_loss": fit["history"][-1]["train_loss"]}
    untrained = json.loads((results / "metrics" / "zero_shot.json").read_text())["image_folder"][TINY_PAIR["vit"]]
    assert set(untrained["k2-s1"]) == {"top1", "mean_per_class_accuracy", "ece"}


def test_a_changed_curve_file_is_damage_and_the_run_is_fitted_again(swept: Path) -> None:
    run = swept / "results" / "clip_adapter" / PAIR / "k1-s1"
    curve = run / "dvclive" / "plots" / "metrics" / "train_loss.tsv"
    before = curve.read_text()
    digest = json.loads((run / "run.json").read_text())["fingerprint"]
    curve.write_text(before.replace("\n1\t", "\n1\t9"))
    assert run_state(run, digest) == ("damaged", "dvclive/plots/metrics/train_loss.tsv does not match the checksum "
                                                 "in run.json")
    again = sweep_from_params(swept / "params.yaml", [], None, {})
    assert list(again.repaired) == [f"{PAIR}/clip_adapter/k1-s1"] and again.count("skipped") == 3
    assert curve.read_text() == before and run_state(run, digest)[0] == "done"  # the same curve, fitted again


def test_the_report_draws_the_chosen_runs_and_copies_their_files_for_dvc(swept: Path, tmp_path: Path) -> None:
    results = swept / "results"
    build_report(results, tmp_path / "auto")  # auto: clip_adapter's largest shot count, first seed
    table = (tmp_path / "auto" / "table.md").read_text()
    assert "## Training curves" in table and "training_curves.png" in "".join(
        p.name for p in (tmp_path / "auto" / "figures").iterdir())
    row = next(line for line in table.splitlines() if f"clip_adapter/{PAIR}/" in line)
    kept = json.loads((results / "clip_adapter" / PAIR / "k2-s1" / "fit.json").read_text())["selected"]["epoch"]
    assert [c.strip() for c in row.strip("|").split("|")][:5] == [f"clip_adapter/{PAIR}/k2-s1", "3", "3", "3",
                                                                  str(kept)]
    assert "Training curves" in (tmp_path / "auto" / "index.html").read_text()
    copied = sorted(p.relative_to(tmp_path / "auto").as_posix() for p in (tmp_path / "auto").rglob("*.tsv"))
    assert copied == [f"training/clip_adapter/{PAIR}/k2-s1/{n}.tsv" for n in ("lr", "train_loss", "val_acc")]
    assert (tmp_path / "auto" / "training" / "clip_adapter" / PAIR / "k2-s1" / "lr.tsv").read_bytes() == (
        results / "clip_adapter" / PAIR / "k2-s1" / "dvclive" / "plots" / "metrics" / "lr.tsv").read_bytes()
    build_report(results, tmp_path / "auto", ("clip_adapter/*/*/k1-s?", "clip_adapter/*/*/k2-s1"))
    rows = [line for line in (tmp_path / "auto" / "table.md").read_text().splitlines() if "/k1-s1 " in line
            or "/k2-s1 " in line]
    assert len(rows) == 2
    build_report(results, tmp_path / "auto", ())
    assert "Training curves" not in (tmp_path / "auto" / "table.md").read_text()
    assert list((tmp_path / "auto" / "training").iterdir()) == []  # the previous report's copies are gone


def test_a_run_id_that_matches_no_curves_is_one_line(swept: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    build_report(swept / "results", tmp_path / "out")
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    with pytest.raises(ClipCacheError, match=r"evaluate.curves: 'zero_shot/\*' matches no run with training curves"):
        build_report(swept / "results", tmp_path / "out", ("zero_shot/*",))
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before  # nothing lost
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"evaluate": {"results_dir": str(swept / "results"), "report_dir": str(tmp_path / "r"),
                                               "curves": ["clip_adapter/nosuch/*"]}}))
    assert report_main(["--params", str(params)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "'clip_adapter/nosuch/*' matches no run" in error[0]
    assert f"clip_adapter/{PAIR}/k1-s1" in error[0]

"""The sweep verifies before it skips: a run folder whose files no longer match the checksums its run.json records is
fitted again, published whole and named; the per-head metrics for DVC come from verified files only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pipeline.digest import file_checksum
from pipeline.errors import ClipCacheError
from pipeline.layout import head_metrics_file
from pipeline.params import encode_params
from pipeline.report import build_report
from pipeline.store.verify import verify_path
from pipeline.sweep.entry import sweep_from_params, write_head_metrics
from pipeline.sweep.execute import RunSpec
from pipeline.sweep.record import damage, run_state
from tests.helpers import PAIR
from tests.sweep.conftest import grid_params, write

HEADS = ["zero_shot", "gda"]


def flip_bit(path: Path, offset: int = -3) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def swept(two_seed_cache: dict, tmp_path: Path) -> Path:
    """A params file whose 2 heads x 2 shots x 1 seed runs are all done."""
    section = {**two_seed_cache, "protocol": {"shots": [1, 2], "seeds": [1]}}
    path = write(grid_params(section, tmp_path, heads=HEADS), tmp_path / "params.yaml")
    assert sweep_from_params(path, [], None, {}).count("done") == 4
    return path


def run_dir(params: Path, head: str, shots: int) -> Path:
    return params.parent / "results" / head / "image_folder" / PAIR["vit"] / f"k{shots}-s1"


@pytest.mark.parametrize(("damage", "why"), [
    (lambda f: flip_bit(f / "metrics.json"), "metrics.json does not match the checksum in run.json"),
    (lambda f: flip_bit(f / "evaluation.json", 40), "evaluation.json does not match the checksum in run.json"),
    (lambda f: (f / "head.safetensors").write_bytes((f / "head.safetensors").read_bytes()[:-7]),
     "head.safetensors does not match"),
    (lambda f: (f / "fit.json").unlink(), "fit.json cannot be read"),
    (lambda f: (f / "run.json").write_text("{"), "run.json is missing or unreadable"),
])
def test_a_damaged_run_is_fitted_again_and_named(swept: Path, damage, why: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    folder = run_dir(swept, "gda", 2)
    before = json.loads((folder / "evaluation.json").read_text())["metrics"]
    damage(folder)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        report = sweep_from_params(swept, [], None, {})
    key = f"image_folder/{PAIR['vit']}/gda/k2-s1"
    assert (report.count("done"), report.count("skipped")) == (1, 3)
    assert list(report.repaired) == [key] and why in report.repaired[key]
    assert [r.key for r in report.results if r.status == "done"] == [key]
    assert f"{key} is damaged" in caplog.text and why in caplog.text
    summary = [m for m in caplog.messages if m.startswith("sweep: 1 damaged")]
    assert summary == [f"sweep: 1 damaged run(s) found and fitted again: {key} ({report.repaired[key]})"]
    assert [(e["path"], e["status"]) for e in verify_path(folder)] == [(str(folder), "ok (fitted run)")]
    after = json.loads((folder / "evaluation.json").read_text())["metrics"]
    assert after == before  # the same seed fits the same head
    metrics = json.loads(head_metrics_file(swept.parent / "results", "gda").read_text())
    assert metrics["image_folder"][PAIR["vit"]]["k2-s1"]["top1"] == before["top1"]
    assert sweep_from_params(swept, [], None, {}).count("skipped") == 4  # and then it is done


def test_the_reports_advice_followed_literally_works(swept: Path, tmp_path: Path) -> None:
    flip_bit(run_dir(swept, "zero_shot", 1) / "evaluation.json", 40)
    with pytest.raises(ClipCacheError, match="run `clipcache verify` and sweep again"):
        build_report(swept.parent / "results", tmp_path / "report")
    assert any(e["status"].startswith("damaged") for e in verify_path(swept.parent / "results"))
    sweep_from_params(swept, [], None, {})
    assert build_report(swept.parent / "results", tmp_path / "report")
    assert all(e["status"].startswith("ok") for e in verify_path(swept.parent / "results"))


def test_metrics_for_dvc_are_written_from_verified_files_only(swept: Path, two_seed_cache: dict) -> None:
    folder = run_dir(swept, "gda", 1)
    good = json.loads((run_dir(swept, "gda", 2) / "metrics.json").read_text())["top1"]
    (folder / "metrics.json").write_text(json.dumps({"top1": 0.0, "mean_per_class_accuracy": 0.0, "ece": 1.0}))
    section = {**two_seed_cache, "protocol": {"shots": [1, 2], "seeds": [1]}}
    specs = [RunSpec(encode_params(section), "gda", {}, shots, 1, str(swept.parent / "results"))
             for shots in (1, 2)]
    out = swept.parent / "gda.json"
    write_head_metrics(specs, out)
    tree = json.loads(out.read_text())["image_folder"][PAIR["vit"]]
    assert set(tree) == {"k2-s1"} and tree["k2-s1"]["top1"] == good  # the edited k1-s1 is left out


def test_large_weights_are_remembered_by_their_checksum(tmp_path: Path) -> None:
    """A head's weights (>= 1 MiB) are verified once and remembered with the checksum they matched: a run.json that
    records another checksum for the same bytes is damage, memo or not."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("head.json", "evaluation.json", "metrics.json"):
        (folder / name).write_text("{}")
    (folder / "head.safetensors").write_bytes(bytes(range(256)) * 8192)  # 2 MiB
    checksums = {p.name: file_checksum(p) for p in folder.iterdir()}
    assert damage(folder, {"checksums": checksums}) is None  # verified whole, now remembered
    wrong = {**checksums, "head.safetensors": "xxh3_64:0000000000000000"}
    assert damage(folder, {"checksums": wrong}) == "head.safetensors does not match the checksum in run.json"


def test_run_state_tells_absent_stale_damaged_and_done(swept: Path, tmp_path: Path) -> None:
    folder = run_dir(swept, "gda", 1)
    run = json.loads((folder / "run.json").read_text())
    digest = run["fingerprint"]
    assert set(run["inputs"]) == {"head", "params", "shots", "seed", "cache", "code"}
    assert (run["head"], run["shots"], run["seed"], run["dataset"]) == ("gda", 1, 1, "image_folder")
    assert run_state(folder, digest) == ("done", "")
    assert run_state(folder, "0" * 64) == ("stale", "")
    assert run_state(tmp_path / "nothing", digest) == ("absent", "")
    record = json.loads((folder / "run.json").read_text())
    del record["checksums"]["head.json"]
    (folder / "run.json").write_text(json.dumps(record))
    assert run_state(folder, digest) == ("damaged", "run.json records no checksum of head.json")

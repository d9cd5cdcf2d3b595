"""The in-process sweep on a real tiny cache: keys, fingerprints, resumption, atomic folders, failures, pruning."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest

from pipeline.encode.entry import encode_from_params
from pipeline.errors import ClipCacheError
from pipeline.params import encode_params
from pipeline.store import FeatureSplit
from pipeline.sweep.entry import sweep_from_params
from pipeline.sweep.plan import plan_runs
from tests.helpers import LABEL, encode_section
from tests.helpers import PAIR as TINY_PAIR
from tests.sweep.conftest import grid_params, write

PAIR = f"image_folder/{TINY_PAIR['vit']}"


def stamps(results: Path) -> dict[str, int]:
    return {str(p.relative_to(results)): p.stat().st_mtime_ns for p in sorted(results.rglob("run.json"))}


def sweep(params: dict, tmp_path: Path, **kwargs) -> object:
    return sweep_from_params(write(params, tmp_path / "params.yaml"), [], None, {}, **kwargs)


def test_runs_are_keyed_and_complete(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path)
    report = sweep(params, tmp_path)
    assert (report.total, report.count("done"), report.count("skipped")) == (3 * 2 * 2, 12, 0)
    folder = tmp_path / "results" / "gda" / "image_folder" / TINY_PAIR["vit"] / "k2-s1"
    assert sorted(p.name for p in folder.iterdir()) == ["evaluation.json", "fit.json", "head.json",
                                                       "head.safetensors", "metrics.json", "run.json", "run.log"]
    record = json.loads((folder / "evaluation.json").read_text())
    assert (record["dataset"], record["model"], record["head"], record["shots"], record["seed"]) == (
        "image_folder", LABEL["vit"], "gda", 2, 1)
    run = json.loads((folder / "run.json").read_text())
    assert run["key"] == f"{PAIR}/gda/k2-s1" and run["inputs"]["params"]["alpha_grid"] == [-4.0, 2.0, 7]
    assert set(run["inputs"]["cache"]) == {"train", "val", "text", "test"} and len(run["fingerprint"]) == 64
    metrics = json.loads((tmp_path / "results" / "metrics" / "gda.json").read_text())
    assert set(metrics["image_folder"][TINY_PAIR["vit"]]) == {"k1-s1", "k1-s2", "k2-s1", "k2-s2"}
    assert metrics["image_folder"][TINY_PAIR["vit"]]["k2-s1"]["top1"] == record["metrics"]["top1"]


def test_a_second_sweep_skips_everything_and_a_new_seed_fits_only_its_runs(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path)
    params["encode"]["protocol"]["seeds"] = [1]
    assert sweep(params, tmp_path).count("done") == 6
    before = stamps(tmp_path / "results")
    again = sweep(params, tmp_path)
    assert (again.count("done"), again.count("skipped")) == (0, 6) and stamps(tmp_path / "results") == before
    params["encode"]["protocol"]["seeds"] = [1, 2]
    grown = sweep(params, tmp_path)
    assert (grown.count("done"), grown.count("skipped")) == (6, 6)
    after = stamps(tmp_path / "results")
    assert {k: after[k] for k in before} == before and len(after) == 12
    assert sorted(r.key for r in grown.results if r.status == "done") == sorted(
        f"{PAIR}/{h}/k{k}-s2" for h in ("zero_shot", "gda", "tip_adapter") for k in (1, 2))


def test_changing_one_heads_parameter_refits_only_that_head(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path)
    sweep(params, tmp_path)
    before = stamps(tmp_path / "results")
    params["heads"].setdefault("tip_adapter", {})["alpha_grid"] = [0.5, 2.0, 4]
    report = sweep(params, tmp_path)
    assert {r.key.split("/")[2] for r in report.results if r.status == "done"} == {"tip_adapter"}
    assert report.count("done") == 4
    after = stamps(tmp_path / "results")
    assert {k: v for k, v in after.items() if not k.startswith("tip_adapter")} == {
        k: v for k, v in before.items() if not k.startswith("tip_adapter")}
    saved = json.loads(next((tmp_path / "results" / "tip_adapter").rglob("head.json")).read_text())
    assert saved["params"]["alpha_grid"] == [0.5, 2.0, 4]


def test_same_seed_same_metrics_and_a_refit_replaces_the_folder(two_seed_cache, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    params = grid_params(two_seed_cache, tmp_path / "a", heads=["tip_adapter"])
    first = {r.key: r.metrics for r in sweep(params, tmp_path / "a").results}
    params_b = grid_params(two_seed_cache, tmp_path / "b", heads=["tip_adapter"])
    second = {r.key: r.metrics for r in sweep(params_b, tmp_path / "b").results}
    assert first == second and len(first) == 4
    folder = tmp_path / "b" / "results" / "tip_adapter" / "image_folder" / TINY_PAIR["vit"] / "k1-s1"
    (folder / "run.json").write_text(json.dumps({"fingerprint": "stale"}))  # as if its inputs had changed
    (folder.parent / ".tmp-k1-s1-host-1-dead").mkdir()  # what a killed run leaves behind
    (folder.parent / ".old-k1-s1-dead").mkdir()
    report = sweep(params_b, tmp_path / "b")
    assert [r.key for r in report.results if r.status == "done"] == [f"{PAIR}/tip_adapter/k1-s1"]
    assert json.loads((folder / "run.json").read_text())["fingerprint"] != "stale"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["k1-s1", "k1-s2", "k2-s1", "k2-s2"]


def test_a_failed_run_is_named_and_the_others_complete(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot"])
    params["encode"]["protocol"]["shots"] = [1, 4]  # k4 was never encoded
    with pytest.raises(ClipCacheError, match=r"2 of 4 runs failed; first: "
                                             rf"image_folder/{TINY_PAIR['vit']}/zero_shot/k4-s1"
                                             r".*k4-s1/train\.h5' does not exist"):
        sweep(params, tmp_path)
    done = sorted(p.parent.name for p in (tmp_path / "results").rglob("run.json"))
    assert done == ["k1-s1", "k1-s2"]


def test_prune_removes_runs_the_grid_no_longer_holds(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "gda"])
    sweep(params, tmp_path)
    params["encode"]["protocol"]["seeds"] = [2]
    params["train"]["heads"] = ["zero_shot"]
    sweep(params, tmp_path, prune=True)
    kept = sorted(str(p.parent.relative_to(tmp_path / "results")) for p in (tmp_path / "results").rglob("run.json"))
    assert kept == [f"gda/{PAIR}/k{k}-s{s}" for k in (1, 2) for s in (1, 2)] + [
        f"zero_shot/{PAIR}/k{k}-s2" for k in (1, 2)]


def test_an_unknown_protocol_is_named_with_the_known_ones(two_seed_cache, tmp_path: Path) -> None:
    with pytest.raises(ClipCacheError) as refused:
        plan_runs([encode_params(two_seed_cache)], ["zero_shot"], {}, str(tmp_path), protocol="novel")
    assert str(refused.value) == ("train.protocol must be one of all, base_to_novel, validation_free, cross_dataset, "
                                  "domain_generalisation, got 'novel'")


def test_unknown_head_is_named_before_anything_runs(two_seed_cache, tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "tip_adaptor"])
    with pytest.raises(ClipCacheError, match="unknown head 'tip_adaptor'"):
        sweep(params, tmp_path)
    assert not (tmp_path / "results").exists()


def test_progress_lines_of_the_sweep_and_of_each_epoch(two_seed_cache, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipeline")
    params = grid_params(two_seed_cache, tmp_path, heads=["tip_adapter_f"])
    params["encode"]["protocol"].update(shots=[1], seeds=[1, 2])
    sweep(params, tmp_path)
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("tip_adapter_f epoch ") for m in messages) == 2 * 2  # 2 epochs x 2 runs
    assert any(m.startswith("tip_adapter_f epoch 2/2: loss ") and ", val acc " in m and ", lr " in m for m in messages)
    own = (tmp_path / "results" / "tip_adapter_f" / "image_folder" / TINY_PAIR["vit"] / "k1-s2" / "run.log").read_text()
    assert own.count(" tip_adapter_f epoch ") == 2 and "k1 s2: top-1 " in own and "k1 s1:" not in own  # its own only
    run = json.loads((tmp_path / "results" / "tip_adapter_f" / "image_folder" / TINY_PAIR["vit"] / "k1-s2"
                      / "run.json").read_text())
    assert "run.log" in run["checksums"]  # verified with the run's other files
    progress = [m for m in messages if m.startswith("[")]
    assert [m.split("]")[0] for m in progress] == ["[1/2", "[2/2"] and all("ETA" in m for m in progress)
    here = f"({socket.gethostname()}:{os.getpid()})"  # the worker that ran it: this process, in-process
    assert all(here in m for m in progress), progress


def test_a_grid_of_a_resnet_and_late_tokens_keeps_none_and_late_prompts_do_not_apply(image_root: Path, tmp_path: Path,
                                                                                   caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pipeline")
    section = encode_section(image_root, "resnet", tmp_path / "cache", features__late_tokens=1)
    reports = encode_from_params(write({"encode": section, "runtime": {"workers": 0, "batch_size": 8}},
                                       tmp_path / "encode.yaml"), [], {})
    assert any("ModifiedResNet image tower: no late tokens" in r.getMessage() for r in caplog.records)
    train = FeatureSplit(reports[0].folder / "k2-s1" / "train.h5")
    assert train.provenance["features"]["late_tokens"] == 0
    assert train.provenance["features"]["late_tokens_skipped"] == "ModifiedResNet"
    with pytest.raises(ClipCacheError, match="late_tokens"):
        train.array("late_tokens")
    params = grid_params(section, tmp_path, heads=["zero_shot", "vpt_late", "cavpt"])
    report = sweep(params, tmp_path)  # no exception: nothing failed
    assert {r.key.split("/")[2]: r.status for r in report.results} == {"zero_shot": "done", "vpt_late": "n/a",
                                                                        "cavpt": "n/a"}
    assert {r.worker for r in report.results} == {f"{socket.gethostname()}:{os.getpid()}"}
    expected = f"prompts CLIP ViT blocks; model '{LABEL['resnet']}' has a ModifiedResNet image tower"
    assert expected in report.results[-1].error


def test_base_to_novel_runs_fit_the_base_half_and_score_both(two_seed_cache, tmp_path: Path) -> None:
    """train.protocol base_to_novel: runs in k<K>-s<seed>-b2n folders; heads with per-class parameters are n/a."""
    from pipeline.report import build_report

    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "mm_adapter", "tip_adapter"])
    params["train"]["protocol"] = "base_to_novel"
    report = sweep(params, tmp_path)
    statuses = {r.key: r.status for r in report.results}
    assert statuses[f"{PAIR}/zero_shot/k2-s1-b2n"] == "done" and statuses[f"{PAIR}/tip_adapter/k2-s1-b2n"] == "n/a"
    record = json.loads((tmp_path / "results" / "zero_shot" / "image_folder" / TINY_PAIR["vit"] / "k2-s1-b2n"
                         / "evaluation.json").read_text())
    b2n = record["base_to_novel"]
    assert (b2n["base_classes"], b2n["novel_classes"]) == ([0, 1], [2])  # 3 classes: ceil(3 / 2) base
    assert len(record["classnames"]) == 2 and len(record["metrics"]["confusion"]) == 2
    assert b2n["novel"] == 1.0  # one novel class: every novel image is right among the novel classes
    run = json.loads((tmp_path / "results" / "zero_shot" / "image_folder" / TINY_PAIR["vit"] / "k2-s1-b2n"
                      / "run.json").read_text())
    assert run["protocol"] == "base_to_novel" and run["inputs"]["protocol"] == "base_to_novel"
    build_report(tmp_path / "results", tmp_path / "report")
    table = (tmp_path / "report" / "table.md").read_text()
    assert "## Base-to-novel" in table and "| mm_adapter | 2 shots |" in table
    params["train"]["protocol"] = "novel_only"
    with pytest.raises(ClipCacheError, match=r"train\.protocol must be one of all, base_to_novel"):
        sweep(params, tmp_path)


def test_validation_free_runs_never_open_a_val_file(two_seed_cache, tmp_path: Path, monkeypatch) -> None:
    """train.protocol validation_free: k<K>-s<seed>-vfree folders; no val.h5 is opened by the sweep; heads that select
    on validation are n/a; the record and the report say so."""
    import pipeline.store.reader as reader
    from pipeline.report import build_report

    opened: list[str] = []
    real = reader.open_h5
    monkeypatch.setattr(reader, "open_h5", lambda path: opened.append(str(path)) or real(path))
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "vt_clip", "tip_adapter"])
    params["train"]["protocol"] = "validation_free"
    params["heads"]["vt_clip"] = {**params["heads"]["vt_clip"], "keep": "best_val"}  # replaced by its val-free form
    report = sweep(params, tmp_path)
    statuses = {r.key: r.status for r in report.results}
    assert statuses[f"{PAIR}/zero_shot/k2-s1-vfree"] == "done" and statuses[f"{PAIR}/vt_clip/k1-s2-vfree"] == "done"
    assert statuses[f"{PAIR}/tip_adapter/k2-s1-vfree"] == "n/a"
    assert opened and not [p for p in opened if p.endswith("val.h5")], opened
    folder = tmp_path / "results" / "vt_clip" / "image_folder" / TINY_PAIR["vit"] / "k2-s1-vfree"
    record = json.loads((folder / "evaluation.json").read_text())
    assert record["protocol"] == "validation_free" and record["selected"]["keep"] == "last"
    assert record["selected"]["val_acc"] is None and record["head_params"]["keep"] == "last"
    run = json.loads((folder / "run.json").read_text())
    assert run["inputs"]["protocol"] == "validation_free" and "val" not in run["inputs"]["cache"]
    build_report(tmp_path / "results", tmp_path / "report")
    table = (tmp_path / "report" / "table.md").read_text()
    assert "| zero_shot+vfree |" in table and "Validation-free rows (vt_clip+vfree, zero_shot+vfree)" in table


def test_status_counts_done_pending_stale_damaged_and_fits_nothing(two_seed_cache, tmp_path: Path, capsys) -> None:
    from pipeline.cli import main
    from pipeline.sweep.entry import sweep_status

    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "gda"])
    sweep(params, tmp_path)
    path = write(params, tmp_path / "params.yaml")
    assert sweep_status(path, []) == [
        {"head": "gda", "dataset": "image_folder", "done": 4, "pending": 0, "stale": 0, "damaged": 0,
         "not encoded": 0},
        {"head": "zero_shot", "dataset": "image_folder", "done": 4, "pending": 0, "stale": 0, "damaged": 0,
         "not encoded": 0}]
    before = stamps(tmp_path / "results")
    (tmp_path / "results" / "gda" / "image_folder" / TINY_PAIR["vit"] / "k1-s1" / "evaluation.json").unlink()
    rows = {r["head"]: r for r in sweep_status(path, ["heads.zero_shot.template_set=tip7",
                                                      "encode.protocol.seeds=[1, 2, 3]"], ["zero_shot", "gda", "coop"])}
    assert (rows["zero_shot"]["stale"], rows["zero_shot"]["not encoded"]) == (4, 2)  # seed 3 was never encoded
    assert (rows["gda"]["done"], rows["gda"]["damaged"], rows["gda"]["not encoded"]) == (3, 1, 2)
    assert rows["coop"]["pending"] == 4 and rows["coop"]["not encoded"] == 2
    assert stamps(tmp_path / "results") == before  # nothing was fitted or written
    capsys.readouterr()
    assert main(["status", "--params", str(path), "--head", "gda"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["head", "data", "set", "done", "pending", "stale", "damaged", "not", "encoded"]
    assert out[1].split() == ["gda", "image_folder", "3", "0", "0", "1", "0"]


def test_a_damaged_run_file_is_named_by_verify(two_seed_cache, tmp_path: Path, capsys) -> None:
    """run.json records the checksum of every file of its run, head.json that of the weights."""
    from pipeline.cli import main

    sweep(grid_params(two_seed_cache, tmp_path, heads=["tip_adapter"]), tmp_path)
    results = tmp_path / "results"
    assert main(["verify", str(results)]) == 0
    record = results / "tip_adapter" / "image_folder" / TINY_PAIR["vit"] / "k2-s1" / "evaluation.json"
    record.write_text(record.read_text() + "\n")  # still valid JSON, other bytes
    capsys.readouterr()
    assert main(["verify", str(results)]) == 1
    assert "k2-s1: damaged (evaluation.json does not match the checksum in run.json)" in capsys.readouterr().out


def test_the_report_refuses_an_evaluation_changed_after_its_run(two_seed_cache, tmp_path: Path) -> None:
    from pipeline.report.load import read_record

    sweep(grid_params(two_seed_cache, tmp_path, heads=["zero_shot"]), tmp_path)
    record = next((tmp_path / "results").rglob("evaluation.json"))
    assert read_record(record)["head"] == "zero_shot"
    record.write_text(record.read_text().replace('"top1": ', '"top1": 1.0, "was": ', 1))  # a number made up by hand
    with pytest.raises(ClipCacheError, match=r"evaluation\.json: does not match the checksum in .*run\.json"):
        read_record(record)

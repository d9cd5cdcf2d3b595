"""The distributed encode's driver and tasks (pipeline/encode/distributed.py) on the in-process engine, in seconds:
the same text task, shard plan, shard tasks and finalize tasks a dask cluster runs, without starting one (the real
workers, and one killed mid-shard, are the slow tests of tests/faults/test_distributed_encode.py). The files equal
a single-process encode's bit for bit; a second run finds every file up to date; an interrupted split is finished
from its pending shards only."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path

import h5py
import pytest

from pipeline.data import create_dataset
from pipeline.data.templates import templates_for
from pipeline.encode import run_encode
from pipeline.encode.distributed import (
    FinalizeTask,
    ShardTask,
    TextTask,
    plan_shards,
    run_encode_distributed,
    shard_task,
    text_task,
    worker_encoder,
)
from pipeline.encode.entry import encode_from_params
from pipeline.encode.plan import cache_folder, dataset_provenance, plan_jobs
from pipeline.encode.run import EncodeReport
from pipeline.engine import cluster_params
from pipeline.errors import ClipCacheError
from pipeline.layout import TEXT_FILE
from pipeline.params import EncodeParams, RuntimeParams, encode_params, runtime_params
from tests.helpers import LABEL, TINY, assert_same_tensors, encode_section, write_params

RUNTIME = {"workers": 0, "batch_size": 4, "shard_images": 2}


def section(root: Path, cache: Path) -> dict:
    """A data set of its own name ('parts', read by the image_folder layout), as a grid names it."""
    out = encode_section(root, "vit", cache, views__count=2, features__spatial_raw=False)
    out["dataset"] = {**out["dataset"], "name": "parts", "layout": "image_folder"}
    return out


def test_engine_encode_equals_a_single_process_and_resumes(image_root: Path, tmp_path: Path) -> None:
    runtime = runtime_params(RUNTIME)
    single = run_encode(encode_params(section(image_root, tmp_path / "single")), runtime)
    params = encode_params(section(image_root, tmp_path / "engine"))
    report = run_encode_distributed(params, runtime, cluster_params({"cluster": "none"}))
    folder = report.folder
    assert folder.relative_to(tmp_path / "engine") == single.folder.relative_to(tmp_path / "single")
    assert (report.images, report.forwards) == (single.images, single.forwards) and report.images > 0
    assert report.files == {str(folder / p): "written" for p in ("text.h5", "test.h5", "k2-s1/train.h5",
                                                                  "k2-s1/val.h5")}
    assert report.seconds > 0
    assert_same_tensors(tmp_path / "engine", tmp_path / "single")
    assert folder.parent.name == "parts"
    with h5py.File(folder / "test.h5", "r") as handle:  # the build record names the engine and the images' root
        build = json.loads(handle.attrs["build"])
        assert build["device"] == "engine: in-process" and build["dataset_root"] == str(image_root)
    assert not [p for p in folder.rglob("*") if ".tmp-" in p.name or p.name.endswith(".parts")]

    again = run_encode_distributed(params, runtime, cluster_params({"cluster": "none"}))
    assert again.files[str(folder / "text.h5")] == "up to date"
    assert {v for k, v in again.files.items() if k.endswith("/test.h5") or "/k2-s1/" in k} == {"up to date"}
    assert (again.images, again.forwards) == (0, 0)


def pending_plan(params: EncodeParams, runtime: RuntimeParams) -> tuple[list[ShardTask], list[FinalizeTask]]:
    """The driver's plan of shard and finalize tasks, as run_encode_distributed makes it (locks released after)."""
    dataset = create_dataset(params.dataset.registered, params.dataset.root, params.dataset.options,
                             params.dataset.name)
    folder = cache_folder(params)
    text = TextTask(params, runtime, list(dataset.classnames),
                    {name: templates_for(name, dataset) for name in params.templates},
                    dataset_provenance(dataset), folder / TEXT_FILE, {})
    with ExitStack() as locks:
        return plan_shards(text_task(text), runtime, dataset, plan_jobs(params, dataset, folder), {}, locks,
                           EncodeReport(folder))


def test_an_interrupted_split_is_finished_from_its_pending_shards(image_root: Path, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    runtime = runtime_params(RUNTIME)
    run_encode(encode_params(section(image_root, tmp_path / "want")), runtime)
    params = encode_params(section(image_root, tmp_path / "got"))
    tasks, finals = pending_plan(params, runtime)
    test = [t for t in tasks if t.job.split == "test"]
    assert [(t.shard.start, t.shard.stop) for t in test] == [(s, min(s + 2, 9)) for s in range(0, 9, 2)]
    assert len(finals) == 3 and {f.job.split for f in finals} == {"test", "train", "val"}
    assert shard_task(test[0]) == (str(test[0].job.path), 0, 2, 2)  # one shard of the test split, then a "kill"
    assert shard_task(test[1])[1:] == (2, 2, 2)
    with caplog.at_level(logging.INFO, logger="pipeline"):
        report = run_encode_distributed(params, runtime, cluster_params({"cluster": "none"}))
    assert f"{test[0].job.path}: resuming, 2 of 5 shards already complete" in caplog.messages
    train_images = sum(len(t.job.items) for t in finals if t.job.split == "train")
    val_images = sum(len(t.job.items) for t in finals if t.job.split == "val")
    views = 2
    assert report.images == (9 - 4) + train_images + val_images  # the test split's 2 written shards are kept
    assert report.forwards == (9 - 4) + train_images * (1 + views) + val_images
    assert_same_tensors(tmp_path / "got", tmp_path / "want")
    again, finals_again = pending_plan(params, runtime)
    assert again == [] and finals_again == []  # every split is complete: nothing to hand out


def test_the_worker_keeps_one_encoder_per_pair(image_root: Path, tmp_path: Path) -> None:
    params = encode_params(section(image_root, tmp_path / "c"))
    runtime = runtime_params(RUNTIME)
    assert worker_encoder(params, runtime) is worker_encoder(params, runtime)


def test_a_plan_without_splits_is_refused(image_root: Path, tmp_path: Path) -> None:
    params = encode_params(section(image_root, tmp_path / "c"))
    dataset = create_dataset("image_folder", str(image_root), params.dataset.options, "parts")
    with ExitStack() as locks, pytest.raises(ClipCacheError, match="nothing to encode: the plan holds no split"):
        plan_shards({"params": params, "provenance": {}, "notes": {}}, runtime_params(RUNTIME), dataset, [], {}, locks,
                    EncodeReport(tmp_path))


def test_encode_names_each_pair_it_encodes(image_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    params = write_params(tmp_path / "params.yaml", section(image_root, tmp_path / "c"), RUNTIME)
    with caplog.at_level(logging.INFO, logger="pipeline"):
        encode_from_params(params, [], {})
    assert f"encoding parts with {TINY['vit']} (none)" in caplog.messages
    assert any(m.startswith(f"written    {tmp_path / 'c' / 'parts'}") and LABEL["vit"] in m for m in caplog.messages)

"""Concurrency and locking at a size the default (non-slow) selection runs in seconds: the split lock makes writers
take turns, two writers of one split end with one whole file, racing publishers leave one whole run folder, and
racing JSON writers never show a reader half a file. Real files and threads (flock locks open file descriptions, so
two threads contend exactly as two processes do); the process-level versions are the slow tests beside these."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.store import FeatureSplit
from pipeline.store.atomic import exclusive, replace_folder, temp_folder, write_json_atomic
from pipeline.store.provenance import SCHEMA_VERSION
from pipeline.store.writer import SplitWriter


def run_all(*targets) -> None:
    """Run the targets in threads at once; each must finish, without raising."""
    errors: list[BaseException] = []

    def guarded(target) -> None:
        try:
            target()
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is still waiting: a lock was never released"
    assert not errors, errors[0]


def test_the_split_lock_makes_writers_take_turns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    held = threading.Event()

    def holder() -> None:
        with exclusive(tmp_path / ".x.lock", "x"):
            events.append("first in")
            held.set()
            time.sleep(0.3)
            events.append("first out")

    def waiter() -> None:
        held.wait(10)
        with exclusive(tmp_path / ".x.lock", "x"):
            events.append("second in")

    with caplog.at_level("INFO", logger="pipeline"):
        run_all(holder, waiter)
    assert events == ["first in", "first out", "second in"]
    assert "waiting for another process writing x" in caplog.text


def rows(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"global": rng.normal(size=(n, 8)).astype(np.float32), "labels": np.arange(n) % 3,
            "item_index": np.arange(n)}


def write_locked(path: Path, n: int, finished: list[str]) -> None:
    """What encode_split does: under the split's lock, the pending shards, then the final file, unless complete."""
    provenance = {"schema_version": SCHEMA_VERSION, "encoder": {"model": "m"}, "dataset": {"name": "d"},
                  "split": {"name": "test", "shots": None, "seed": None, "n_items": n}}
    writer = SplitWriter(path, provenance, {}, n, shard_items=2)
    data = rows(n)
    with writer.locked():
        if writer.up_to_date():
            finished.append("up to date")
        else:
            for shard in writer.pending():
                writer.write_shard(shard, {k: v[shard.start : shard.stop] for k, v in data.items()}, [])
                time.sleep(0.01)  # the other writer arrives while this one is half-way
            writer.finalize()
            finished.append("written")


def test_two_writers_of_one_split_end_with_one_whole_file(tmp_path: Path) -> None:
    finished: list[str] = []
    path = tmp_path / "test.h5"
    run_all(lambda: write_locked(path, 12, finished), lambda: write_locked(path, 12, finished))
    assert sorted(finished) == ["up to date", "written"]
    split = FeatureSplit(path)
    assert np.array_equal(split.read("global"), rows(12)["global"])
    assert split.labels.tolist() == rows(12)["labels"].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".test.h5.lock", "test.h5"], "no shards or temporaries left"


def test_complete_shards_are_not_written_again(tmp_path: Path) -> None:
    """A writer resumes: the shards a killed writer completed are pending no more (only the missing one is)."""
    path = tmp_path / "test.h5"
    provenance = {"schema_version": SCHEMA_VERSION, "dataset": {"name": "d"},
                  "split": {"name": "test", "shots": None, "seed": None, "n_items": 6}}
    first = SplitWriter(path, provenance, {}, 6, shard_items=2)
    data = rows(6)
    for shard in first.pending()[:2]:  # killed before the third
        first.write_shard(shard, {k: v[shard.start : shard.stop] for k, v in data.items()}, [])
    again = SplitWriter(path, provenance, {}, 6, shard_items=2)
    assert [(s.start, s.stop) for s in again.pending()] == [(4, 6)]
    other = SplitWriter(path, {**provenance, "dataset": {"name": "e"}}, {}, 6, shard_items=2)
    assert len(other.pending()) == 3  # another provenance: its shards are not these


def test_racing_publishers_leave_one_whole_run_folder(tmp_path: Path) -> None:
    """8 writers publish their own version of one run folder at once (two files each): the folder is always one
    writer's whole folder, and nothing is left beside it."""
    folder = tmp_path / "k1-s1"
    seen: list[set[str]] = []
    stop = threading.Event()

    def publisher(i: int) -> None:
        for _ in range(20):
            tmp = temp_folder(folder)
            tmp.mkdir()
            (tmp / "a.json").write_text(str(i))
            (tmp / "b.json").write_text(str(i))
            replace_folder(tmp, folder)

    def read_in(directory: int, name: str) -> str:
        handle = os.open(name, os.O_RDONLY, dir_fd=directory)
        try:
            return os.read(handle, 100).decode()
        finally:
            os.close(handle)

    def reader() -> None:  # both files read from one opened folder: one published instance, whatever is renamed
        while not stop.is_set():
            with contextlib.suppress(OSError):  # between the set-aside and the rename the folder is absent
                directory = os.open(folder, os.O_RDONLY)
                try:
                    seen.append({read_in(directory, "a.json"), read_in(directory, "b.json")})
                finally:
                    os.close(directory)

    watcher = threading.Thread(target=reader)
    watcher.start()
    run_all(*[lambda i=i: publisher(i) for i in range(8)])
    stop.set()
    watcher.join()
    assert seen and all(len(pair) == 1 for pair in seen), "a reader saw files of two writers in one folder"
    assert [p.name for p in tmp_path.iterdir()] == ["k1-s1"]
    assert (folder / "a.json").read_text() == (folder / "b.json").read_text()


def test_racing_json_writers_never_show_half_a_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"writer": -1, "payload": []})
    bad: list[str] = []
    stop = threading.Event()

    def writer(i: int) -> None:
        for j in range(30):
            write_json_atomic(path, {"writer": i, "payload": [j] * 2000})

    def reader() -> None:
        while not stop.is_set():
            record = json.loads(path.read_text())
            if len(set(record["payload"])) > 1:
                bad.append(str(record)[:80])

    watcher = threading.Thread(target=reader)
    watcher.start()
    run_all(*[lambda i=i: writer(i) for i in range(6)])
    stop.set()
    watcher.join()
    assert not bad and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]

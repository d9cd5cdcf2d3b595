"""Shards are written on a background thread while the next batches are encoded; a failed write stops the encode in
the encoding thread with its own error, and what was written stays whole."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.encode import run_encode
from pipeline.errors import NoSpace
from pipeline.params import encode_params, runtime_params
from pipeline.store.writer import SplitWriter
from tests.helpers import encode_section

RUNTIME = runtime_params({"workers": 0, "batch_size": 4, "shard_images": 4, "device": "cpu"})


def section(image_root: Path, cache: Path) -> dict:
    return encode_section(image_root, "vit", cache, views__count=1, protocol__shots=[1], protocol__seeds=[1])


def test_shards_are_written_behind_the_forward_on_their_own_thread(image_root: Path, tmp_path: Path,
                                                                   monkeypatch) -> None:
    threads: list[str] = []
    real = SplitWriter.write_shard

    def spy(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SplitWriter, "write_shard", spy)
    run_encode(encode_params(section(image_root, tmp_path)), RUNTIME)
    assert len(threads) >= 3 and set(threads) == {"shard-writer"}  # test.h5 holds 3 shards of 4 images


def test_a_failed_write_stops_the_encode_with_its_own_error(image_root: Path, tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = SplitWriter.write_shard

    def second_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise NoSpace("no space left on device writing shard 2")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SplitWriter, "write_shard", second_fails)
    with pytest.raises(NoSpace, match="writing shard 2"):
        run_encode(encode_params(section(image_root, tmp_path)), RUNTIME)
    parts = next(tmp_path.rglob("test.h5.parts"))
    assert len(list(parts.glob("shard-*.h5"))) == 1  # the first shard, whole; nothing after the failure

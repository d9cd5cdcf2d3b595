"""One DataLoader for every split of a pair: its decoding workers start once (persistent, prefetching) and serve the
test split and every few-shot file, and the files equal those of an encode without workers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.data.decode import ImageReader
from pipeline.encode import run_encode
from pipeline.params import encode_params, runtime_params
from tests.helpers import cache_tensors, encode_section


def test_one_set_of_workers_decodes_every_split_and_the_bytes_are_unchanged(image_root: Path, tmp_path: Path,
                                                                            monkeypatch) -> None:
    pids = tmp_path / "pids"
    real = ImageReader.__getitem__

    def logged(self, pos):  # runs in the decoding worker
        with pids.open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        return real(self, pos)

    monkeypatch.setattr(ImageReader, "__getitem__", logged)
    section = encode_section(image_root, "vit", tmp_path / "workers", protocol__shots=[1, 2], protocol__seeds=[1])
    report = run_encode(encode_params(section), runtime_params({"workers": 1, "batch_size": 8, "shard_images": 4}))
    assert sum(status == "written" for status in report.files.values()) == 6  # text, test, 2 x (train, val)
    seen = set(pids.read_text().split())
    assert len(seen) == 1 and str(os.getpid()) not in seen  # one worker process for the 5 split files
    monkeypatch.setattr(ImageReader, "__getitem__", real)
    serial = encode_section(image_root, "vit", tmp_path / "serial", protocol__shots=[1, 2], protocol__seeds=[1])
    run_encode(encode_params(serial), runtime_params({"workers": 0, "batch_size": 8, "shard_images": 4}))
    got, want = cache_tensors(tmp_path / "workers"), cache_tensors(tmp_path / "serial")
    assert sorted(got) == sorted(want)
    for key in want:
        assert np.array_equal(got[key], want[key]), key

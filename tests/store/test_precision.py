"""The image tower's compute precision is part of a split file's identity: 'auto' is fp32 on the CPU (the files and
fingerprints of every earlier CPU encode), bf16 (or fp16) is recorded, fingerprinted, shown by inspect, and a cache
encoded in one precision is rewritten, never mixed, when asked for another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.encode import run_encode
from pipeline.errors import ClipCacheError
from pipeline.params import encode_params, runtime_params
from pipeline.store import FeatureSplit
from pipeline.store.provenance import fingerprint
from tests.helpers import PAIR, encode_section

RUNTIME = runtime_params({"workers": 0, "batch_size": 8, "shard_images": 8, "device": "cpu"})


def encode(image_root: Path, cache: Path, precision: str) -> dict[str, str]:
    section = encode_section(image_root, "vit", cache, features__precision=precision, views__count=1,
                             protocol__shots=[1], protocol__seeds=[1])
    return run_encode(encode_params(section), RUNTIME).files


def test_auto_is_fp32_on_the_cpu_and_bf16_is_another_file(image_root: Path, tmp_path: Path) -> None:
    encode(image_root, tmp_path, "auto")
    test = tmp_path / "image_folder" / PAIR["vit"] / "test.h5"
    fp32 = FeatureSplit(test)
    assert "precision" not in fp32.provenance["features"]  # as every CPU file before the setting existed
    assert set(encode(image_root, tmp_path, "fp32").values()) == {"up to date"}
    reference, before = fp32.read("global"), fingerprint(fp32.provenance)
    again = encode(image_root, tmp_path, "bf16")
    assert {Path(k).name: v for k, v in again.items() if v != "written"} == {"text.h5": "up to date"}  # images only
    bf16 = FeatureSplit(test)
    assert bf16.provenance["features"]["precision"] == "bf16" and fingerprint(bf16.provenance) != before
    got = bf16.read("global")
    cosine = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    assert not np.array_equal(got, reference) and cosine.min() > 0.99
    from pipeline.store.inspect import describe_file

    assert describe_file(test)["features"]["precision"] == "bf16"


def test_an_unknown_precision_is_named() -> None:
    with pytest.raises(ClipCacheError, match=r"encode\.features\.precision must be one of auto, fp32, fp16, bf16, "
                                             r"got 'fp8'"):
        encode_params({"features": {"precision": "fp8"}})

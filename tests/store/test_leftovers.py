"""A `.parts` folder left beside a complete split (a kill just after the final rename, or a concurrent writer) is
named a leftover by `inspect` and removed by the next encode, which leaves the complete files untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.encode import run_encode
from pipeline.params import encode_params, runtime_params
from pipeline.store.inspect import describe
from tests.helpers import encode_section


def test_leftover_shards_of_a_complete_split_are_named_and_removed(image_root: Path, tmp_path: Path) -> None:
    section = encode_section(image_root, "vit", tmp_path / "cache", views__count=1, features__spatial=False,
                             features__spatial_raw=False, features__late_tokens=0)
    runtime = runtime_params({"workers": 0, "batch_size": 8, "shard_images": 4})
    folder = run_encode(encode_params(section), runtime).folder
    test = folder / "test.h5"
    stamp = test.stat().st_mtime_ns
    parts = folder / "test.h5.parts"
    parts.mkdir()
    shutil.copy(test, parts / "shard-0-4.h5")  # what a kill after the final rename leaves behind
    entry = next(e for e in describe(folder) if e["path"] == str(parts))
    assert entry["status"].startswith("leftover (1 shard(s) of a complete split")
    assert next(e for e in describe(folder) if e["path"] == str(test))["status"] == "complete"
    report = run_encode(encode_params(section), runtime)
    assert report.files[str(test)] == "up to date" and not parts.exists() and test.stat().st_mtime_ns == stamp
    train = folder / "k2-s1" / "train.h5"
    train.unlink()
    (folder / "k2-s1" / "train.h5.parts").mkdir()  # a split that was never finished is still "interrupted"
    assert next(e for e in describe(folder) if e["path"] == str(train))["status"].startswith("interrupted")

"""runtime.workers: auto: the cores this process may use (affinity, capped by a cgroup CPU quota) less one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.cores import auto_workers, quota_cores, usable_cores
from pipeline.errors import ClipCacheError
from pipeline.params import runtime_params


def cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[str, str] | None = None) -> Path:
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2)
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0])
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1])
    return tmp_path


@pytest.mark.parametrize(("v2", "v1", "expected"), [
    ("max 100000\n", None, None), ("150000 100000\n", None, 2), ("50000 100000", None, 1), ("400000 100000", None, 4),
    (None, ("-1", "100000"), None), (None, ("300000", "100000"), 3), (None, None, None), ("junk", None, None)])
def test_the_cgroup_quota_in_whole_cores(tmp_path: Path, v2: str | None, v1: tuple[str, str] | None,
                                         expected: int | None) -> None:
    assert quota_cores(cgroup(tmp_path, v2, v1)) == expected


def test_auto_is_the_affinity_capped_by_the_quota_less_one(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "a").mkdir()
    assert usable_cores(cgroup(tmp_path / "a", "max 100000")) == affinity
    (tmp_path / "b").mkdir()
    assert usable_cores(cgroup(tmp_path / "b", "100000 100000")) == 1 and auto_workers(tmp_path / "b") == 0
    assert runtime_params({"workers": "auto"}).workers == auto_workers()
    assert runtime_params({}).workers == auto_workers()  # the default
    assert runtime_params({"workers": 3}).workers == 3
    with pytest.raises(ClipCacheError, match=r"runtime\.workers must be a whole number or 'auto', got 'all'"):
        runtime_params({"workers": "all"})

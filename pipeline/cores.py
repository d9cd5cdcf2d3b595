"""How many CPU cores this process may really use: its affinity mask, capped by a cgroup CPU quota (containers,
SLURM and Kubernetes limits), so that `runtime.workers: auto` sizes image decoding to the machine."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def quota_cores(cgroup: Path = CGROUP) -> int | None:
    """The cgroup's CPU quota in whole cores (v2 cpu.max 'quota period', v1 cfs_quota_us / cfs_period_us, rounded
    up), or None where there is none or it cannot be read."""
    try:
        v2 = cgroup / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
        v1 = cgroup / "cpu" / "cpu.cfs_quota_us"
        if v1.is_file():
            quota_us = int(v1.read_text())
            period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        return None
    return None


def usable_cores(cgroup: Path = CGROUP) -> int:
    """The cores of the affinity mask, at most the cgroup quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = quota_cores(cgroup)
    return max(1, min(cores, quota) if quota is not None else cores)


def auto_workers(cgroup: Path = CGROUP) -> int:
    """Decoding processes for `runtime.workers: auto`: the usable cores less one for the driver (0: decode in it)."""
    return usable_cores(cgroup) - 1

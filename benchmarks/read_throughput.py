"""Cache read throughput: random minibatches and a sequential pass, from a clipcache split file vs a raw .npy.

Both hold the same [N, HW, D] float16 spatial map. The cache is read through `FeatureSplit` (provenance checks,
lazy memmap of the contiguous dataset); the raw file through `numpy.load(mmap_mode='r')`. Random batches use sorted
random indices (what a minibatch loader asks for); the sequential pass reads 1024 rows at a time. "warm" runs after
the file is in the page cache; "cold" drops the cache first when this process may (root, /proc/sys/vm/drop_caches).
Usage: python benchmarks/read_throughput.py --rows 20000 --hw 49 --dim 1024
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.store import FeatureSplit
from pipeline.store.writer import SplitWriter


def drop_caches() -> bool:
    """Drop the page cache; False where not permitted."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def write_files(folder: Path, rows: int, hw: int, dim: int) -> tuple[Path, Path]:
    """The same random fp16 tensor as a clipcache split file (through the real writer) and as a .npy."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((rows, hw, dim), dtype=np.float32).astype(np.float16)  # [N, HW, D]
    npy = folder / "raw.npy"
    np.save(npy, data)
    provenance = {"schema_version": 1, "benchmark": True}
    writer = SplitWriter(folder / "test.h5", provenance, {}, rows, shard_items=4096)
    for shard in writer.pending():
        writer.write_shard(shard, {"spatial": data[shard.start : shard.stop],
                                   "labels": np.zeros(shard.stop - shard.start, np.int64)}, [])
    writer.finalize()
    return folder / "test.h5", npy


def random_batches(read, rows: int, batch: int, count: int, seed: int) -> float:
    """MB/s of `count` random sorted batches of `batch` rows."""
    rng = np.random.default_rng(seed)
    start, nbytes = time.perf_counter(), 0
    for _ in range(count):
        nbytes += read(np.sort(rng.choice(rows, size=batch, replace=False))).nbytes
    return nbytes / (time.perf_counter() - start) / 1e6


def sequential(read_slice, rows: int, step: int = 1024) -> float:
    """MB/s of one pass over all rows, `step` at a time."""
    start, nbytes = time.perf_counter(), 0
    for i in range(0, rows, step):
        nbytes += read_slice(slice(i, min(i + step, rows))).nbytes
    return nbytes / (time.perf_counter() - start) / 1e6


def measure(h5: Path, npy: Path, rows: int, batch: int, count: int, cold: bool) -> dict[str, float]:
    """Median MB/s over 3 repeats for each (source, pattern)."""
    results: dict[str, list[float]] = {k: [] for k in ("cache_random", "raw_random", "cache_seq", "raw_seq")}
    for repeat in range(3):
        for name in ("cache", "raw"):
            if cold:
                drop_caches()
            if name == "cache":
                array = FeatureSplit(h5).array("spatial")
                results["cache_random"].append(random_batches(array.take, rows, batch, count, repeat))
                results["cache_seq"].append(sequential(array.__getitem__, rows))
            else:
                raw = np.load(npy, mmap_mode="r")
                results["raw_random"].append(random_batches(lambda r, raw=raw: np.asarray(raw[r]), rows, batch, count,
                                                            repeat))
                results["raw_seq"].append(sequential(lambda s, raw=raw: np.array(raw[s]), rows))
    return {k: round(statistics.median(v), 1) for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--hw", type=int, default=49)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        h5, npy = write_files(Path(tmp), args.rows, args.hw, args.dim)
        out = {"shape": [args.rows, args.hw, args.dim], "dtype": "float16", "batch": args.batch,
               "warm": measure(h5, npy, args.rows, args.batch, args.batches, cold=False)}
        if drop_caches():
            out["cold"] = measure(h5, npy, args.rows, args.batch, args.batches, cold=True)
        for key in ("warm", "cold"):
            if key in out:
                r = out[key]
                r["ratio_random"] = round(r["cache_random"] / r["raw_random"], 3)
                r["ratio_seq"] = round(r["cache_seq"] / r["raw_seq"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""What checksums cost: stamping a split file when it is finalised, verifying it on first open (warm and cold page
cache), and every later open, which the memo answers without reading the data.

The file is written through the real SplitWriter (shards, then consolidation, each stamped); `verify(force=True)` is
what `clipcache verify` runs; a FeatureSplit open after the first is answered by the memo of (path, size, mtime,
fingerprint). "cold" drops the page cache first where this process may (root).
Usage: python benchmarks/verify_throughput.py --rows 20000 --hw 49 --dim 1024
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from read_throughput import drop_caches  # benchmarks/ is on the path of a script run from it

from pipeline.store import FeatureSplit
from pipeline.store.integrity import verify
from pipeline.store.provenance import ATTR_FINGERPRINT
from pipeline.store.writer import SplitWriter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--hw", type=int, default=49)
    parser.add_argument("--dim", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        os.environ["CLIPCACHE_STATE"] = tmp
        folder = Path(tmp)
        data = np.random.default_rng(0).standard_normal((args.rows, args.hw, args.dim), np.float32).astype(np.float16)
        writer = SplitWriter(folder / "test.h5", {"benchmark": True}, {}, args.rows, shard_items=4096)
        started = time.perf_counter()
        for shard in writer.pending():
            writer.write_shard(shard, {"spatial": data[shard.start : shard.stop],  # [n, HW, D]
                                       "labels": np.zeros(shard.stop - shard.start, np.int64)}, [])
        writer.finalize()
        write_s = time.perf_counter() - started
        path, gb = folder / "test.h5", data.nbytes / 1e9
        with h5py.File(path, "r") as handle:
            fp = str(handle.attrs[ATTR_FINGERPRINT])
            started = time.perf_counter()
            verify(handle, path, fp, force=True)
            warm_s = time.perf_counter() - started
            cold = drop_caches()
            started = time.perf_counter()
            verify(handle, path, fp, force=True)
            cold_s = time.perf_counter() - started
        FeatureSplit(path)  # first open: verifies and remembers
        started = time.perf_counter()
        for _ in range(20):
            FeatureSplit(path)
        memo_ms = (time.perf_counter() - started) / 20 * 1e3
    print(json.dumps({"GB": round(gb, 3), "write_shards_and_consolidate_s": round(write_s, 2),
                      "verify_warm_GBps": round(gb / warm_s, 2),
                      "verify_cold_GBps": round(gb / cold_s, 2) if cold else None,
                      "open_when_remembered_ms": round(memo_ms, 2)}, indent=1))


if __name__ == "__main__":
    main()

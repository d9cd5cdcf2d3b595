"""Random minibatches from a split file many times larger than the memory the reader may use: bytes read from disk
(/proc/self/io read_bytes) against bytes delivered, and rows/s.

The reader runs in a child process inside a cgroup-v1 memory cgroup (page cache counted) capped at --cap-mb, after
the page cache is dropped. Three ways of reading the same rows: the store's reader (memory map opened MADV_RANDOM,
exact pages asked for with MADV_WILLNEED), a plain numpy memmap (what the store did before), and pread (the fallback
under an address-space cap). Needs root (cgroup, drop_caches).
Usage: python benchmarks/read_past_memory.py --rows 40000 --hw 49 --dim 512 --cap-mb 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from read_throughput import drop_caches  # benchmarks/ is on the path of a script run from it

CGROUP = Path("/sys/fs/cgroup/memory/clipcache-bench")


def write_file(folder: Path, rows: int, hw: int, dim: int) -> Path:
    from pipeline.store.writer import SplitWriter

    writer = SplitWriter(folder / "train.h5", {"benchmark": True}, {}, rows, shard_items=2048)
    rng = np.random.default_rng(0)
    for shard in writer.pending():
        n = shard.stop - shard.start
        writer.write_shard(shard, {"spatial": rng.standard_normal((n, hw, dim), np.float32).astype(np.float16),
                                   "labels": np.zeros(n, np.int64)}, [])  # [n, HW, D]
    writer.finalize()
    return folder / "train.h5"


def read_bytes() -> int:
    return int(next(line for line in Path("/proc/self/io").read_text().splitlines()
                    if line.startswith("read_bytes")).split()[1])


def child(path: str, how: str, batches: int, batch: int) -> None:
    """Runs inside the cgroup: read random sorted batches, print bytes read / delivered and rows/s."""
    from pipeline.store import FeatureSplit
    from pipeline.store.rows import PreadArray

    split = FeatureSplit(path)
    array = split.array("spatial")
    if how == "plain_memmap":
        source = np.memmap(path, dtype=array.dtype, mode="r", offset=array.offset, shape=array.shape)
        read = lambda rows: np.asarray(source[rows])  # noqa: E731
    elif how == "pread":
        source = PreadArray(Path(path), array.offset, array.shape, array.dtype)
        read = lambda rows: source[rows]  # noqa: E731
    else:
        read = array.take
    rng = np.random.default_rng(1)
    start_bytes, started, delivered = read_bytes(), time.perf_counter(), 0
    for _ in range(batches):
        delivered += read(np.sort(rng.choice(array.shape[0], size=batch, replace=False))).nbytes
    seconds = time.perf_counter() - started
    print(json.dumps({"read_GB": (read_bytes() - start_bytes) / 1e9, "delivered_GB": delivered / 1e9,
                      "rows_per_s": batches * batch / seconds}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--hw", type=int, default=49)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--cap-mb", type=int, default=512)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.batches, args.batch)
        return
    CGROUP.mkdir(exist_ok=True)
    (CGROUP / "memory.limit_in_bytes").write_text(str(args.cap_mb << 20))
    results = {}
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        os.environ["CLIPCACHE_STATE"] = tmp
        path = write_file(Path(tmp), args.rows, args.hw, args.dim)
        size_gb = path.stat().st_size / 1e9
        subprocess.run([sys.executable, "-c", f"from pipeline.store import FeatureSplit; FeatureSplit({str(path)!r})"],
                       check=True)  # verified once, outside the cap (its read is the checksum's, not the loader's)
        for how in ("store", "plain_memmap", "pread"):
            if not drop_caches():
                raise SystemExit("dropping the page cache needs root")
            command = [sys.executable, __file__, "--child", str(path), how, "--batches", str(args.batches),
                       "--batch", str(args.batch)]
            joined = " ".join(command)
            out = subprocess.run(["sh", "-c", f"echo $$ > {CGROUP}/cgroup.procs && exec {joined}"],
                                 capture_output=True, text=True, check=True).stdout
            record = json.loads(out.strip().splitlines()[-1])
            record["amplification"] = round(record["read_GB"] / record["delivered_GB"], 2)
            results[how] = {k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()}
    print(json.dumps({"file_GB": round(size_gb, 2), "cap_MB": args.cap_mb, **results}, indent=1))


if __name__ == "__main__":
    main()

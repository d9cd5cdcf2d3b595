"""What DVCLive's training curves cost a run: a tiny CLIP-Adapter fitted for 20 (and 200) epochs on the synthetic
task with and without its curves written (and checksummed, as a sweep run does), the import of dvclive in a fresh
interpreter that already has torch, and the size of the files.

Usage: python benchmarks/training_curves.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.heads import create_head  # noqa: E402  (after the repository joins the path)
from pipeline.heads.curves import write_curves  # noqa: E402
from pipeline.sweep.record import folder_checksums  # noqa: E402
from tests.heads.synthetic import World, make_task  # noqa: E402

IMPORT = "import time, torch; t = time.perf_counter(); import dvclive.live; print(time.perf_counter() - t)"


def fit_seconds(data, epochs: int, out: Path | None) -> tuple[float, float]:
    """(seconds of the fit, seconds of writing and checksumming its curves into `out`; 0 without)."""
    torch.manual_seed(1)
    head = create_head("clip_adapter", {"epochs": epochs, "keep": "best_val"})
    started = time.perf_counter()
    head.fit(data)
    fitted = time.perf_counter()
    if out is not None:
        write_curves(out / "dvclive", head.history, head.selected, {"top1": 0.5, "ece": 0.1})
        folder_checksums(out)
    return fitted - started, time.perf_counter() - fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data, _ = make_task(Path(tmp) / "task", World(), shots=16, views=4)
        fit_seconds(data, 2, Path(tmp) / "warm")  # first-call costs (kernels, dvclive's lazy imports) paid here
        for epochs in (20, 200):
            without = [fit_seconds(data, epochs, None)[0] for _ in range(args.repeats)]
            runs = [fit_seconds(data, epochs, Path(tmp) / f"e{epochs}-{i}") for i in range(args.repeats)]
            folder = Path(tmp) / f"e{epochs}-0" / "dvclive"
            rows.append({"epochs": epochs, "fit_s_without": round(statistics.median(without), 4),
                         "fit_s_with": round(statistics.median(f for f, _ in runs), 4),
                         "curves_ms": round(1000 * statistics.median(c for _, c in runs), 2),
                         "files": len([p for p in folder.rglob("*") if p.is_file()]),
                         "bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())})
    imports = [float(subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(3)]
    print(json.dumps({"per_run": rows, "import_dvclive_s_once_per_process": round(statistics.median(imports), 3),
                      "repeats": args.repeats, "torch_threads": 1}, indent=1))


if __name__ == "__main__":
    main()

"""The papers' protocol on the demo cache as one sweep: wall time per engine and the overhead per run.

Encodes textile (200 images per class) with ViT-B-32 (random weights) for shots 1/2/4/8/16 x seeds 1/2/3 once, then
sweeps every head of params.yaml (its `heads:` parameters, so the demo's epochs) over the 15 few-shot caches on each
engine given, each into fresh run folders. Overhead per run = (sweep wall time - the runs' own fit + evaluate +
publish time, measured inside each run) / runs: what planning, fingerprints, the engine and shipping results cost.
Usage:
    python benchmarks/sweep_overhead.py --engines none local:2 [--heads zero_shot gda] [--out /tmp/sweep-bench]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from pipeline.encode import run_encode
from pipeline.params import encode_params, runtime_params
from pipeline.sweep.entry import sweep_from_params

REPO = Path(__file__).resolve().parents[1]


def demo_params(work: Path, heads: list[str] | None) -> dict:
    """params.yaml of the repository with the papers' shots and seeds, the cache and results in `work`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["grid"]["datasets"][0]["root"] = None  # the packaged textile images
    params["encode"]["protocol"] = {"shots": [1, 2, 4, 8, 16], "seeds": [1, 2, 3]}
    params["encode"]["cache_dir"] = str(work / "cache")
    if heads:
        params["train"]["heads"] = heads
    return params


def encode(params: dict) -> float:
    """Encode the one pair of the grid; seconds."""
    section = {**params["encode"], "dataset": params["grid"]["datasets"][0], "model": params["grid"]["models"][0]}
    started = time.perf_counter()
    run_encode(encode_params(section), runtime_params({"batch_size": 64, "workers": 1}))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", nargs="+", default=["none", "local:2"])
    parser.add_argument("--heads", nargs="*", default=None)
    parser.add_argument("--out", default=None, help="keep the cache here (re-used when it exists)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="sweep-bench-"))
    params = demo_params(work, args.heads)
    rows = {"encode_s": round(encode(params), 1)}
    for engine in args.engines:
        folder = work / f"results-{engine.replace(':', '-')}"
        params["evaluate"] = {"results_dir": str(folder), "report_dir": str(folder / "report")}
        path = work / f"params-{engine.replace(':', '-')}.yaml"
        path.write_text(yaml.safe_dump(params))
        report = sweep_from_params(path, [], None, {"cluster": engine})
        by_head: dict[str, float] = {}
        for result in report.results:
            head = result.key.split("/")[2]
            by_head[head] = round(by_head.get(head, 0.0) + result.seconds.get("total", 0.0), 2)
        rows[engine] = {"runs": report.total, "done": report.count("done"), "wall_s": round(report.seconds, 1),
                        "runs_own_s": round(report.run_seconds, 1),
                        "overhead_per_run_s": report.overhead_per_run and round(report.overhead_per_run, 4),
                        "cost": report.cost(), "own_seconds_by_head": by_head}
        print(json.dumps({engine: rows[engine]}), flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

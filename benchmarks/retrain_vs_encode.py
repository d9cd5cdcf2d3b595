"""Retraining each head from the cache versus encoding the same images again: seconds each, and the ratio.

The encode side is stage 1 on the few-shot train (with its views) and val images of one (shots, seed): the work a
pipeline without a cache repeats for every head it trains. The train side is stage 2 for each registered head with
its default parameters, reading the same files. Same model, data and machine, in one run. Usage:
    python benchmarks/retrain_vs_encode.py --model ViT-B-32 --shots 16 --views 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from pipeline.encode import run_encode
from pipeline.heads import list_heads
from pipeline.heads.fitting import fit_head, save_fitted
from pipeline.params import encode_params, runtime_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        params = encode_params({
            "dataset": {"name": "textile", "options": {"max_per_class": args.per_class}},
            "model": {"name": args.model, "pretrained": "none"}, "protocol": {"shots": [args.shots], "seeds": [1]},
            "views": {"count": args.views}, "cache_dir": str(Path(tmp) / "cache"),
        })
        report = run_encode(params, runtime_params({"batch_size": 64, "workers": 1}))
        few_shot = {k: v for k, v in report.timings.items() if "/k" in k}
        encode_seconds = sum(seconds for _, seconds in few_shot.values())
        rows = []
        for name in list_heads():
            started = time.perf_counter()
            result = fit_head(params, args.shots, 1, name, {}, torch.device("cpu"))
            save_fitted(result, Path(tmp) / "runs" / name)
            seconds = time.perf_counter() - started
            rows.append({"head": name, "retrain_s": round(seconds, 2), "fit_s": result.metrics["fit_seconds"],
                         "encode_s": round(encode_seconds, 1), "ratio": round(encode_seconds / seconds, 1)})
    print(json.dumps({"model": args.model, "shots": args.shots, "views": args.views,
                      "images_encoded": sum(n for n, _ in few_shot.values()), "heads": rows}, indent=1))


if __name__ == "__main__":
    main()

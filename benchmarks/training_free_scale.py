"""Training-free heads at ImageNet scale on synthetic features: fit + predict seconds and peak memory.

1000 classes, 16 shots x 10 views, 4 validation images per class, 50,000 test queries, D = 1024, float32 features,
written through the real store. Each head runs in its own process (peak RSS is that process's own, data loading
included): fit on train/val, then logits for all 50,000 queries. Usage:
    python benchmarks/training_free_scale.py [--heads zero_shot,tip_adapter,gda,proker] [--proker-grid 1]
    python benchmarks/training_free_scale.py --heads ape,taskres,clap,zs_lp,ape_t
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from pipeline.store import write_whole
from pipeline.store.provenance import SCHEMA_VERSION
from pipeline.store.writer import SplitWriter

CLASSES, SHOTS, VIEWS, VAL, QUERIES, DIM = 1000, 16, 10, 4, 50000, 1024
TEXT_ONLY = ("zero_shot", "taskres", "clap", "zs_lp", "ape", "ape_t")  # heads that read a template set: given "tip7"


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def write_split(path: Path, labels: np.ndarray, views: int, means: np.ndarray, rng: np.random.Generator) -> None:
    """Features near their class mean, written in shards of 2000 images (never all in memory)."""
    n = len(labels)
    provenance = {"schema_version": SCHEMA_VERSION, "encoder": {"model": "synthetic"},
                  "split": {"n_items": n, "shots": SHOTS}}
    writer = SplitWriter(path, provenance, {}, n, shard_items=2000)
    for shard in writer.pending():
        y = labels[shard.start : shard.stop]
        base = means[y] + rng.standard_normal((len(y), DIM), dtype=np.float32) * 0.04  # [n, D]
        rows = {"global": base.astype(np.float32), "labels": y, "item_index": np.arange(shard.start, shard.stop),
                "image_id": np.array([str(i) for i in range(shard.start, shard.stop)], dtype=h5py.string_dtype())}
        if views:
            rows["views/global"] = (base[None] + rng.standard_normal((views, len(y), DIM), dtype=np.float32) * 0.02)
        writer.write_shard(shard, rows, [])
    writer.finalize()


def make_data(folder: Path) -> None:
    rng = np.random.default_rng(0)
    text = unit(rng.standard_normal((CLASSES, DIM))).astype(np.float32)
    common = unit(rng.standard_normal(DIM)).astype(np.float32)
    means = unit(text + 0.6 * np.roll(text, -1, 0) + 2.0 * common).astype(np.float32)
    write_split(folder / "train.h5", np.repeat(np.arange(CLASSES), SHOTS), VIEWS, means, rng)
    write_split(folder / "val.h5", np.repeat(np.arange(CLASSES), VAL), 0, means, rng)
    write_split(folder / "test.h5", rng.integers(0, CLASSES, QUERIES), 0, means, rng)
    provenance = {"schema_version": SCHEMA_VERSION, "encoder": {"model": "synthetic", "logit_scale": 100.0},
                  "dataset": {"name": "synthetic", "classnames": [str(c) for c in range(CLASSES)]},
                  "templates": {"tip7": ["{}"]}}
    write_whole(folder / "text.h5", provenance, {}, {"text/tip7/per_template": text[:, None], "text/tip7/mean": text})


def run_one(folder: Path, name: str, params: dict) -> dict:
    """In this process: fit + predict one head; seconds and peak RSS."""
    import torch

    from pipeline.heads import FitData, create_head
    from pipeline.store import FeatureSplit, TextFeatures

    torch.set_num_threads(2)
    started = time.perf_counter()
    data = FitData(FeatureSplit(folder / "train.h5"), FeatureSplit(folder / "val.h5"), TextFeatures(folder / "text.h5"),
                   1, torch.device("cpu"))
    head = create_head(name, params).fit(data)
    fitted = time.perf_counter()
    test = FeatureSplit(folder / "test.h5")
    logits = head.scores(test)
    done = time.perf_counter()
    acc = float((logits.argmax(-1).numpy() == test.labels).mean())
    return {"head": name, "fit_s": round(fitted - started, 1), "predict_s": round(done - fitted, 1),
            "total_s": round(done - started, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "test_acc": round(acc, 4), "selected": head.selected, "params": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--heads", default="zero_shot,tip_adapter,gda,proker")
    parser.add_argument("--proker-grid", type=int, default=0, help="beta and lambda steps for proker (0: its defaults)")
    parser.add_argument("--proker-dtype", default="float64", help="proker's solve_dtype")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "HEAD"), help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(Path(args.child[0]), args.child[1], json.loads(args.params)), default=str))
        return
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        make_data(Path(tmp))
        print(json.dumps({"data_written_s": round(time.perf_counter() - started, 1)}), flush=True)
        for name in args.heads.split(","):
            params = {"template_set": "tip7"} if name in TEXT_ONLY else {}  # the only template set written
            if name == "ape":  # the authors' ImageNet config; the synthetic text has no descriptions
                params |= {"descriptions": False, "search_scale": [7, 7, 0.5], "search_step": [200, 20, 5],
                           "feat_num": 500, "weights": [0.7, 0.3]}
            if name == "ape_t":  # per_dataset would apply nothing to the synthetic set: the ImageNet config, given
                params |= {"descriptions": False, "per_dataset": False, "feat_num": 500, "init_alpha": 2.0,
                           "lr": 1e-4, "epochs": 20}
            if name == "proker" and args.proker_grid:
                params = {"beta_grid": [5.0, 5.0, 1], "lambda_grid": [-1.0, -1.0, 1]} if args.proker_grid == 1 else {
                    "beta_grid": [1.0, 10.0, args.proker_grid], "lambda_grid": [-2.0, 1.0, args.proker_grid]}
            if name == "proker":
                params["solve_dtype"] = args.proker_dtype
            out = subprocess.run([sys.executable, __file__, "--child", tmp, name, "--params", json.dumps(params)],
                                 capture_output=True, text=True)
            failure = {"head": name, "error": out.stderr.strip().splitlines()[-1:]}
            print(out.stdout.strip() or json.dumps(failure), flush=True)


if __name__ == "__main__":
    main()

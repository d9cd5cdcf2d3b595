"""Stage 1 against the bare forward, on whatever device there is (one JSON file of results).

For each model: the bare forward in img/s (random weights, batch `--batch`, each precision); the input pipeline with
the model taken out (decode + preprocess, CPU workers, and the GPU decoder where asked); and `run_encode` end to end
on `--images` generated JPEGs of ImageNet-like size (500 x 375, quality 90), with CPU decoding (runtime.workers
auto) and with GPU decoding, each run's test split in img/s and over the bare forward, and the bottleneck it names
(the slowest of: the input pipeline, the forward; the writes run behind the forward). With `--sweep`, a short sweep
of two heads on the `cuda` engine (or in-process on a CPU). `benchmarks/gpu.sh` runs it on a lent GPU; `--smoke`
runs it here in seconds (the tiny test model, 200 images) so that the lease is not spent on a typo.

Usage: python benchmarks/gpu_encode.py --out results.json [--smoke] [--models ViT-B-32,ViT-B-16,RN50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TINY = str(REPO / "tests" / "configs" / "tiny-ViT.json")
SPLIT = {"test_fraction": 0.9, "val_fraction": 0.05, "split_seed": 0}  # the encode's test split: 90 % of the images


def make_jpegs(root: Path, count: int, classes: int = 10) -> Path:
    """`count` JPEGs of 500 x 375 px (quality 90) in `classes` class folders, textured so that they compress like
    photographs rather than flat colour."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (375 // 15 + 1, 500 // 15 + 1, 3), dtype=np.uint8)
    for i in range(count):
        folder = root / f"class{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        tile = np.roll(base, (i * 7) % base.shape[0], axis=0).repeat(15, 0).repeat(15, 1)[:375, :500]
        noise = rng.integers(-20, 21, tile.shape)
        Image.fromarray(np.clip(tile.astype(int) + noise, 0, 255).astype(np.uint8)).save(
            folder / f"{i:06d}.jpg", quality=90)
    return root


def bare_forward(model: str, device: Any, batch: int, precision: str, seconds: float) -> float:
    """img/s of the image tower alone on random pixels (after one warm-up batch)."""
    import torch

    from pipeline.backbone import encode_images, load_encoder
    from pipeline.encode.forward import AUTOCAST

    encoder = load_encoder(model, "none", device)
    pixels = torch.randn(batch, 3, encoder.image_size, encoder.image_size, device=device)
    dtype = AUTOCAST[precision]
    done, started = 0, None
    while started is None or time.perf_counter() - started < seconds:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            encode_images(encoder.model, pixels, spatial=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if started is None:
            started = time.perf_counter()  # the first batch warms up
            continue
        done += batch
    return done / (time.perf_counter() - started)


def input_pipeline(model: str, root: Path, workers: int, decode: str, device: Any, limit: int) -> float:
    """img/s of decode + preprocess (no model), as encode's loader runs it, over `limit` images."""
    from torch.utils.data import DataLoader

    from pipeline.backbone import load_encoder
    from pipeline.data import create_dataset
    from pipeline.data.decode import ImageReader, collate, one_thread_worker
    from pipeline.encode.jpeg import BytesReader, collate_bytes, decode_batch

    encoder = load_encoder(model, "none", device)
    items = create_dataset("image_folder", root, SPLIT).splits["test"][:limit]
    pre = encoder.provenance["preprocess"]
    reader = ImageReader(items, list(range(len(items))), encoder.preprocess, None, encoder.image_size, pre["mean"],
                         pre["std"])
    gpu = decode == "gpu"
    loader = DataLoader(BytesReader(reader) if gpu else reader, batch_size=64, num_workers=workers,
                        collate_fn=collate_bytes if gpu else collate,
                        worker_init_fn=one_thread_worker if workers else None)
    started = time.perf_counter()
    for loaded in loader:
        if gpu:
            decode_batch(loaded, reader, device)
    return len(items) / (time.perf_counter() - started)


def end_to_end(model: str, root: Path, cache: Path, decode: str, precision: str, batch: int,
               device: str) -> dict[str, Any]:
    """run_encode of the test split (every image), img/s."""
    from pipeline.encode import run_encode
    from pipeline.params import encode_params, runtime_params

    section = {"dataset": {"name": "image_folder", "root": str(root), "options": SPLIT},
               "model": {"name": model, "pretrained": "none"},
               "protocol": {"shots": [1], "seeds": [1]}, "views": {"count": 0},
               "features": {"spatial": False, "late_tokens": 0, "precision": precision, "decode": decode},
               "templates": ["coop"], "cache_dir": str(cache)}
    report = run_encode(encode_params(section), runtime_params({"device": device, "batch_size": batch,
                                                                "workers": "auto", "shard_images": 4096}))
    test = next((images, seconds) for path, (images, seconds) in report.timings.items() if path.endswith("test.h5"))
    return {"images": test[0], "seconds": round(test[1], 2), "img_per_s": round(test[0] / test[1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="gpu_encode.json")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 200 images: check the script in seconds")
    parser.add_argument("--models", default="ViT-B-32,ViT-B-16,RN50")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each bare-forward measurement")
    parser.add_argument("--sweep", action="store_true", help="also a short sweep (cuda engine on a GPU)")
    parser.add_argument("--pipeline-workers", default="", help="more worker counts for the input pipeline: 1,2")
    args = parser.parse_args()
    import torch

    from pipeline.cores import usable_cores

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    models = [TINY] if args.smoke else args.models.split(",")
    images = 200 if args.smoke else args.images
    batch = 32 if args.smoke else args.batch
    seconds = 1.0 if args.smoke else args.seconds
    precisions = ["fp16", "bf16"] if cuda else ["fp32", "bf16"]
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({platform.processor() or platform.machine()})",
        "cores": os.cpu_count(), "usable_cores": usable_cores(), "torch": torch.__version__, "images": images,
        "batch": batch, "smoke": args.smoke, "models": {}}
    work = Path(tempfile.mkdtemp(prefix="gpu-encode-"))
    try:
        root = make_jpegs(work / "jpegs", images)
        for model in models:
            label = Path(model).stem if model.endswith(".json") else model
            row: dict[str, Any] = {"bare_forward_img_per_s": {}, "input_pipeline_img_per_s": {}, "encode": {}}
            for precision in precisions:
                row["bare_forward_img_per_s"][precision] = round(bare_forward(model, device, batch, precision,
                                                                              seconds), 1)
            workers = max(0, usable_cores() - 1)  # runtime.workers auto
            counts = sorted({workers, *(int(w) for w in args.pipeline_workers.split(",") if w)})
            for decode in ("cpu", "gpu"):
                for count in counts:
                    row["input_pipeline_img_per_s"][f"{decode} decode, {count} workers"] = round(
                        input_pipeline(model, root, count, decode, device, min(images, 2000)), 1)
            precision = precisions[0]
            for decode in ("cpu", "gpu"):
                run = end_to_end(model, root, work / f"cache-{label}-{decode}", decode, precision, batch, device.type)
                bare = row["bare_forward_img_per_s"][precision]
                pipeline_rate = row["input_pipeline_img_per_s"][f"{decode} decode, {workers} workers"]
                run["over_bare_forward"] = round(run["img_per_s"] / bare, 3)
                run["bottleneck"] = "input pipeline" if pipeline_rate < bare else "forward"
                row["encode"][f"{decode} decode, {precision}"] = run
            results["models"][label] = row
            print(json.dumps({label: row}), flush=True)
        if args.sweep:
            results["sweep"] = sweep(work, models[0], cuda)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def sweep(work: Path, model: str, cuda: bool) -> dict[str, Any]:
    """Two heads over the first model's cache (GPU decode), on the cuda engine where there is a GPU."""
    import yaml

    from pipeline.sweep.entry import sweep_from_params

    label = Path(model).stem if model.endswith(".json") else model
    cache = work / f"cache-{label}-gpu"
    params = {"grid": {"datasets": [{"name": "image_folder", "root": str(work / "jpegs"), "options": SPLIT}],
                       "models": [{"name": model, "pretrained": "none"}]},
              "encode": {"protocol": {"shots": [1], "seeds": [1]}, "views": {"count": 0},
                         "features": {"spatial": False, "late_tokens": 0, "decode": "gpu",
                                      "precision": "fp16" if cuda else "fp32"},
                         "templates": ["coop"], "cache_dir": str(cache)},
              "train": {"heads": ["zero_shot", "linear_probe"]},
              "evaluate": {"results_dir": str(work / "results")}}
    path = work / "sweep.yaml"
    path.write_text(yaml.safe_dump(params))
    engine = "none"
    if cuda:
        try:
            import dask_cuda  # noqa: F401  (the cuda engine needs it; not carried: see gpu_wheels.sh)

            engine = "cuda"
        except ImportError:
            engine = "local:1"  # one worker process, which picks the GPU itself (runtime.device auto)
    report = sweep_from_params(path, [], None, {"cluster": engine})
    return {"engine": report.engine, "runs": report.total, "done": report.count("done"),
            "wall_s": round(report.seconds, 2), "cost": report.cost()}


if __name__ == "__main__":
    main()

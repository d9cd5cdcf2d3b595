"""Encode throughput against the limit: `clipcache encode` images/s over the bare model forward's images/s.

Same model, batch size and machine, in one run. The bare forward gets pre-decoded, pre-processed tensors already in
memory and calls `encode_image`; the encode run decodes the JPEGs in DataLoader workers, computes global features and
spatial maps, and writes the atomic, sharded HDF5 file. Usage:
    python benchmarks/encode_throughput.py --model ViT-B-32 --images 192 --batch-size 64 --workers 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from pipeline.backbone import load_encoder, pick_device
from pipeline.data import create_dataset
from pipeline.encode import run_encode
from pipeline.params import encode_params, runtime_params


def bare_forward(model_name: str, paths: list[Path], batch_size: int, device: torch.device) -> float:
    """images/s of encode_image on tensors decoded and preprocessed beforehand."""
    encoder = load_encoder(model_name, "none", device)
    pixels = torch.stack([encoder.preprocess(Image.open(p).convert("RGB")) for p in paths])  # [N, 3, S, S]
    autocast = (torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    with torch.inference_mode(), autocast:
        encoder.model.encode_image(pixels[:batch_size].to(device))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(pixels), batch_size):
            encoder.model.encode_image(pixels[i : i + batch_size].to(device)).float().cpu()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return len(pixels) / (time.perf_counter() - start)


def full_encode(model_name: str, root: Path, cache: Path, batch_size: int, workers: int, device: str) -> float:
    """images/s of the test split inside a real encode run (decode + forward + spatial + HDF5)."""
    shutil.rmtree(cache, ignore_errors=True)
    params = encode_params({
        "dataset": {"name": "image_folder", "root": str(root)}, "model": {"name": model_name, "pretrained": "none"},
        "protocol": {"shots": [1], "seeds": [1]}, "views": {"count": 0}, "templates": ["coop"], "cache_dir": str(cache),
    })
    report = run_encode(params, runtime_params({"batch_size": batch_size, "workers": workers, "device": device}))
    images, seconds = next(v for k, v in report.timings.items() if k.endswith("test.h5"))
    return images / seconds


def textile_folder(target: Path, n_test: int) -> Path:
    """An image folder with its own splits: n_test textile images in test/, one per class in train/ and val/."""
    source = create_dataset("textile", None, {})
    per_class = n_test // len(source.classnames)
    for label, name in enumerate(source.classnames):
        items = [i for i in source.splits["train"] + source.splits["test"] if i.label == label]
        for split, chosen in (("train", items[:1]), ("val", items[1:2]), ("test", items[2 : 2 + per_class])):
            (target / split / name).mkdir(parents=True, exist_ok=True)
            for item in chosen:
                shutil.copy(item.path, target / split / name / item.path.name)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = textile_folder(Path(tmp) / "images", args.images)
        paths = sorted((root / "test").rglob("*.jpg"))
        bare, full = [], []
        for _ in range(args.repeats):
            bare.append(bare_forward(args.model, paths, args.batch_size, device))
            full.append(full_encode(args.model, root, Path(tmp) / "cache", args.batch_size, args.workers, args.device))
    result = {"model": args.model, "device": str(device), "images": len(paths), "batch_size": args.batch_size,
              "workers": args.workers, "threads": torch.get_num_threads(),
              "bare_forward_img_s": round(statistics.median(bare), 2),
              "encode_img_s": round(statistics.median(full), 2)}
    result["ratio"] = round(result["encode_img_s"] / result["bare_forward_img_s"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

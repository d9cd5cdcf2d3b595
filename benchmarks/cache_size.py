"""Cache size per image for each layout and dtype, from the real open_clip architectures' feature shapes.

Builds each model with random weights (no download), probes one image through the encode path and prints bytes per
image of every dataset, for the plain image and per augmented view. Usage: python benchmarks/cache_size.py
"""

from __future__ import annotations

import json

import numpy as np
import torch

from pipeline.backbone import load_encoder
from pipeline.encode.forward import probe_shapes
from pipeline.params import FeatureParams

MODELS = ("RN50", "RN101", "ViT-B-32", "ViT-B-16")


def main() -> None:
    rows = []
    features = FeatureParams(spatial=True, spatial_raw=True, global_dtype="float32", spatial_dtype="float16")
    for name in MODELS:
        shapes = probe_shapes(load_encoder(name, "none", torch.device("cpu")), features, None)
        row = {"model": name}
        for key, (shape, _) in shapes.items():
            for dtype in ("float16", "float32"):
                kib = int(np.prod(shape)) * np.dtype(dtype).itemsize / 1024
                row[f"{key}[{','.join(map(str, shape))}] {dtype} KiB"] = round(kib, 2)
        rows.append(row)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

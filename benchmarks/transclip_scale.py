"""TransCLIP at ImageNet scale on synthetic features: solve seconds and peak memory of each mode.

50,000 test images, 1000 classes, D = 1024, the zero-shot predictions a soft softmax of a noisy text classifier;
few-shot mode adds 16 shots per class and 4 validation images per class. Each mode runs in its own process (peak RSS
is that process's own, the features included). Usage:
    python benchmarks/transclip_scale.py [--queries 50000 --classes 1000 --dim 1024] [--modes zero-shot,few-shot]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from pipeline.scoring.transclip import Settings, Support, transclip


def world(queries: int, classes: int, dim: int, shots: int) -> tuple[torch.Tensor, ...]:
    """Class clusters in D dimensions, a text classifier leaning toward a neighbour class, soft predictions."""
    g = torch.Generator().manual_seed(0)
    means = torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=1)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % classes
        return torch.nn.functional.normalize(means[labels] + 1.2 * torch.randn(n, dim, generator=g) / dim ** 0.5,
                                             dim=1), labels

    query, labels = draw(queries)
    text = torch.nn.functional.normalize(means + 0.9 * means.roll(1, dims=0), dim=1)
    y_hat = torch.softmax(10 * query @ text.T, dim=1)  # [Q, K]
    shot_x, shot_y = draw(classes * shots)
    val_x, val_y = draw(classes * 4)
    return query, labels, y_hat, shot_x, shot_y, val_x, val_y


def one(mode: str, queries: int, classes: int, dim: int) -> dict[str, float]:
    torch.set_num_threads(2)
    query, labels, y_hat, shot_x, shot_y, val_x, val_y = world(queries, classes, dim, 16)
    few = mode == "few-shot"
    settings = Settings(lam=0.5, gammas=(0.002, 0.01, 0.02, 0.2)) if few else Settings(lam=1.0, gammas=(0.0,))
    started = time.perf_counter()
    z, selected = transclip(query, y_hat, settings, Support(shot_x, shot_y, val_x, val_y) if few else None)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                                / 2 ** 20, 2),
            "top1_start": round(float((y_hat.argmax(1) == labels).float().mean()), 4),
            "top1_after": round(float((z.argmax(1) == labels).float().mean()), 4), **selected}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=50000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--modes", default="zero-shot,few-shot")
    parser.add_argument("--one", default="")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.queries, args.classes, args.dim)))
        return
    for mode in args.modes.split(","):
        out = subprocess.run([sys.executable, __file__, "--one", mode, "--queries", str(args.queries), "--classes",
                              str(args.classes), "--dim", str(args.dim)], capture_output=True, text=True, check=True)
        print(mode, out.stdout.strip())


if __name__ == "__main__":
    main()

"""One training step of the text-prompt learners (coop, kgcoop, prograd, cocoop) on cached image features versus the
same step with the image encoder in the loop, and CoCoOp's cost per scored image.

Each step is the head's own code (its loss or ProGrad's projected backward, then SGD) on a minibatch of the head's
default size with C classes; the text tower is in the loop either way. "In the loop" adds what the authors' trainers
pay per step on top: the frozen image encoder's forward of the minibatch (ProGrad twice: its zero-shot teacher
encodes the image again). Pixels are a ready tensor (no decoding or augmentation): the ratio is a lower bound.
ProGrad is timed with a random initial context (its template initialisation changes values, not cost).
Timings: median of --steps steps after one warm-up step. Usage:
    python benchmarks/prompt_step.py --model ViT-B-32 --classes 100 --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from pipeline.backbone.model import Encoder, load_encoder
from pipeline.heads import create_head
from pipeline.heads.base import Head
from pipeline.heads.maths import normalize
from pipeline.heads.prompted import context_shapes, init_context
from pipeline.prompts.text import TextTower

HEADS = ("coop", "kgcoop", "prograd", "cocoop")


def median_seconds(step: Callable[[], None], steps: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ready(name: str, encoder: Encoder, classnames: list[str], dim: int) -> Head:
    """A head of `name` with its defaults, its prompts laid out for `classnames` (random context for prograd)."""
    head = create_head(name, {"ctx_init": ""} if name == "prograd" else {})
    head.bind(encoder.provenance, encoder.sources, encoder)  # type: ignore[attr-defined]
    tower, tokenizer = TextTower(encoder.model), encoder.tokenizer
    p = head.params
    head.setup(dim=dim, classes=len(classnames), **context_shapes(tower, tokenizer, p.n_ctx, p.ctx_init))
    init_context(head.context, tower, tokenizer, classnames, "end", p.ctx_init, 0.02)  # type: ignore[arg-type]
    head.logit_scale.fill_(100.0)
    return head


def step_of(name: str, head: Head, batch: dict[str, torch.Tensor], anchor: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD([q for q in head.parameters() if q.requires_grad], lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad()
        if name == "prograd":
            head.projected_backward(batch, anchor)  # type: ignore[attr-defined]
        elif name == "kgcoop":
            head.loss(batch, anchor).backward()  # type: ignore[attr-defined]
        else:
            F.cross_entropy(head.batch_scores(batch), batch["labels"]).backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = load_encoder(args.model, "none", torch.device("cpu"))
    size = encoder.model.visual.image_size
    side = size[0] if isinstance(size, tuple) else size
    dim = int(encoder.model.text_projection.shape[1])
    classnames = [f"class number {i}" for i in range(args.classes)]
    anchor = normalize(torch.randn(args.classes, dim))  # [C, D]
    out: dict[str, dict[str, float]] = {}
    for name in HEADS:
        head = ready(name, encoder, classnames, dim)
        head.train()
        b = int(head.params.batch_size)
        batch = {"labels": torch.randint(0, args.classes, (b,)), "global": normalize(torch.randn(b, dim))}
        pixels = torch.randn(b, 3, side, side)
        step = step_of(name, head, batch, anchor)
        passes = 2 if name == "prograd" else 1

        def in_loop(step: Callable[[], None] = step, pixels: torch.Tensor = pixels, passes: int = passes) -> None:
            with torch.no_grad():
                for _ in range(passes):
                    encoder.model.encode_image(pixels)
            step()

        cached, looped = median_seconds(step, args.steps), median_seconds(in_loop, args.steps)
        out[name] = {"batch": b, "cached_s": round(cached, 3), "in_loop_s": round(looped, 3),
                     "ratio": round(looped / cached, 2)}
        print(name, json.dumps(out[name]), flush=True)
    head = ready("cocoop", encoder, classnames, dim)
    head.eval()
    images = normalize(torch.randn(16, dim))
    with torch.no_grad():
        seconds = median_seconds(lambda: head.batch_scores({"global": images}), max(1, args.steps // 2))
    out["cocoop_scoring"] = {"seconds_per_image": round(seconds / 16, 3)}
    print(json.dumps({"model": args.model, "classes": args.classes, "threads": torch.get_num_threads(), **out}))


if __name__ == "__main__":
    main()

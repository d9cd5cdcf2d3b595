"""One training step of the prompt and LoRA learners on cached features or tokens versus the same step with the image
encoder in the loop, and CoCoOp's cost per scored image.

Each step is the head's own code (its loss, ProGrad's projected backward or PromptSRC's terms, then SGD) on a
minibatch of the head's default size with C classes; the text tower is in the loop either way.
- Text-prompt learners (coop, kgcoop, prograd, cocoop) read cached global features; "in the loop" adds the frozen
  image encoder's forward of the minibatch (ProGrad twice: its zero-shot teacher encodes the image again).
- Token learners (clip_lora, ivlp, maple, promptsrc) read the cached tokens entering block 0 and run every block;
  "in the loop" adds the patch embedding, positions and ln_pre (under no_grad), and for PromptSRC the frozen
  encoder's forward of its teacher image features.
Pixels are a ready tensor (no decoding or augmentation): the ratio is a lower bound. ProGrad is timed with a random
initial context (its template initialisation changes values, not cost). Timings: median of --steps steps after one
warm-up step. Usage:
    python benchmarks/prompt_step.py --model ViT-B-32 --classes 100 --steps 3 [--heads clip_lora maple]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from pipeline.backbone.blocks import n_blocks
from pipeline.backbone.model import Encoder, load_encoder
from pipeline.heads import create_head
from pipeline.heads.base import Head
from pipeline.heads.maths import normalize
from pipeline.heads.prompted import context_shapes, init_context
from pipeline.prompts.text import TextTower

TEXT_HEADS = ("coop", "kgcoop", "prograd", "cocoop")
TOKEN_HEADS = ("clip_lora", "ivlp", "maple", "promptsrc")


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
    if name in TOKEN_HEADS:
        transformer = encoder.model.visual.transformer
        blocks = n_blocks(transformer)
        shapes = {"classes": len(classnames), "dim": dim, "length": int(tokenizer(["x"]).shape[1]), "blocks": blocks,
                  "stored": blocks, "width": int(transformer.width), "text_width": tower.width,
                  "text_blocks": n_blocks(tower.src.transformer), "n_ctx": getattr(p, "n_ctx", 0)}
        head.setup(**shapes)
        if name == "clip_lora":
            head.template = "a photo of a {}."  # type: ignore[attr-defined]
            head.ids = head.prompt_ids(classnames)  # type: ignore[operator]
        else:
            ids, slots = head.layout(classnames)  # type: ignore[operator]
            head.context.ids, head.context.slots = ids, slots
    else:
        head.setup(dim=dim, classes=len(classnames), **context_shapes(tower, tokenizer, p.n_ctx, p.ctx_init))
        init_context(head.context, tower, tokenizer, classnames, "end", p.ctx_init, 0.02)  # type: ignore[arg-type]
    head.logit_scale.fill_(100.0)
    return head


def patch_tokens(visual: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """What the cache replaces for the token learners: patch embedding, class token, positions, ln_pre."""
    x = visual.conv1(pixels)  # [B, W, g, g]
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, g*g, W]
    cls = visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    return visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)  # [B, 1+g*g, W]


def step_of(name: str, head: Head, batch: dict[str, torch.Tensor], anchor: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD([q for q in head.parameters() if q.requires_grad], lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad()
        if name == "prograd":
            head.projected_backward(batch, anchor)  # type: ignore[attr-defined]
        elif name in ("kgcoop", "promptsrc"):
            head.loss(batch, anchor).backward()  # type: ignore[attr-defined]
        else:
            F.cross_entropy(head.batch_scores(batch), batch["labels"]).backward()
        optimizer.step()

    return step


def time_head(name: str, encoder: Encoder, classnames: list[str], dim: int, anchor: torch.Tensor,
              steps: int) -> dict[str, float]:
    """Median seconds of one step on cached inputs and with the encoder in the loop, for one head."""
    visual = encoder.model.visual
    size = visual.image_size
    side = size[0] if isinstance(size, tuple) else size
    head = ready(name, encoder, classnames, dim)
    head.train()
    b = int(head.params.batch_size)
    pixels = torch.randn(b, 3, side, side)
    batch = {"labels": torch.randint(0, len(classnames), (b,)), "global": normalize(torch.randn(b, dim))}
    if name in TOKEN_HEADS:
        with torch.no_grad():
            batch["late_tokens"] = patch_tokens(visual, pixels)
    step = step_of(name, head, batch, anchor)

    def in_loop() -> None:
        with torch.no_grad():
            if name in TOKEN_HEADS:
                patch_tokens(visual, pixels)
            if name not in TOKEN_HEADS or name == "promptsrc":
                for _ in range(2 if name == "prograd" else 1):
                    encoder.model.encode_image(pixels)
        step()

    cached, looped = median_seconds(step, steps), median_seconds(in_loop, steps)
    return {"batch": b, "cached_s": round(cached, 3), "in_loop_s": round(looped, 3), "ratio": round(looped / cached, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--heads", nargs="+", default=[*TEXT_HEADS, *TOKEN_HEADS])
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = load_encoder(args.model, "none", torch.device("cpu"))
    dim = int(encoder.model.text_projection.shape[1])
    classnames = [f"class number {i}" for i in range(args.classes)]
    anchor = normalize(torch.randn(args.classes, dim))  # [C, D]: KgCoOp's hand-crafted, ProGrad's and PromptSRC's t0
    out: dict[str, dict[str, float]] = {}
    for name in args.heads:
        out[name] = time_head(name, encoder, classnames, dim, anchor, args.steps)
        print(name, json.dumps(out[name]), flush=True)
    if "cocoop" in args.heads:
        head = ready("cocoop", encoder, classnames, dim)
        head.eval()
        images = normalize(torch.randn(16, dim))
        with torch.no_grad():
            seconds = median_seconds(lambda: head.batch_scores({"global": images}), max(1, args.steps // 2))
        out["cocoop_scoring"] = {"seconds_per_image": round(seconds / 16, 3)}
    print(json.dumps({"model": args.model, "classes": args.classes, "threads": torch.get_num_threads(), **out}))


if __name__ == "__main__":
    main()

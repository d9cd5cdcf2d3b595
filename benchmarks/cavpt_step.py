"""One cavpt training step on cached late tokens versus the same step with the image encoder in the loop.

Both steps are the same code (`CAVPT.loss`, backward, SGD step) on the same batch and model; only where the inputs
come from differs:
- cached: the tokens entering block L-k and the zero-shot global feature are read as tensors (what stage 1 stored);
- in the loop (the paper's way): patch embedding and the first L-k blocks run on the pixels (under no_grad: no prompt
  lives there), and a second, frozen forward of the whole encoder gives the zero-shot global feature that picks the
  top-K_N classes (the authors' code does exactly this each step).
Pixels are a ready tensor, so JPEG decoding and augmentation, which the paper's loop also pays, are left out: the
ratio is a lower bound. Timings: median of --steps steps after 2 warm-up steps. Usage:
    python benchmarks/cavpt_step.py --model ViT-B-32 --batch 32 --classes 100 --ks 1 2 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pipeline.backbone.blocks import n_blocks, run_blocks
from pipeline.backbone.model import Encoder, load_encoder
from pipeline.heads import create_head
from pipeline.heads.maths import normalize


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step, steps: int, device: torch.device) -> float:
    """Median seconds of `step()` over `steps` runs after 2 warm-ups."""
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_steps(encoder: Encoder, k: int, pixels: torch.Tensor, labels: torch.Tensor, classes: int, steps: int,
                  device: torch.device) -> dict[str, float]:
    """Median seconds of one training step of a cavpt head prompting the last k blocks: on cached inputs, and with
    the encoder in the loop."""
    visual = encoder.model.visual
    layers, dim = n_blocks(visual.transformer), int(visual.proj.shape[1])
    head = create_head("cavpt", {"k": k})
    head.bind(encoder.provenance, encoder.sources, encoder)  # no cache here: the built encoder is the source
    head.setup(dim=dim, classes=classes, width=int(visual.transformer.width), stored=k)
    head.to(device)
    with torch.no_grad():
        head.class_weights.copy_(normalize(torch.randn(classes, dim)))
        head.logit_scale.fill_(100.0)
        torch.nn.init.normal_(head.prompts, std=0.02)
        tokens = run_blocks(visual.transformer, visual._embeds(pixels), 0, layers - k)  # [B, 1+HW, W]
        cached = {"late_tokens": tokens.half().float(), "global": normalize(encoder.model.encode_image(pixels))}
    optimizer = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def step(block_of) -> None:
        batch = {**block_of(), "labels": labels}
        loss = head.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def in_loop() -> dict:
        with torch.no_grad():
            late = run_blocks(visual.transformer, visual._embeds(pixels), 0, layers - k)  # [B, 1+HW, W]
            zero_shot = normalize(encoder.model.encode_image(pixels))  # [B, D]
        return {"late_tokens": late, "global": zero_shot}

    cached_s = timed(lambda: step(lambda: dict(cached)), steps, device)
    loop_s = timed(lambda: step(in_loop), steps, device)
    return {"k": k, "cached_s": round(cached_s, 4), "encoder_in_loop_s": round(loop_s, 4),
            "ratio": round(loop_s / cached_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder = load_encoder(args.model, "none", device)
    visual = encoder.model.visual
    size, layers = encoder.image_size, n_blocks(visual.transformer)
    pixels = torch.randn(args.batch, 3, size, size, device=device)
    labels = torch.randint(0, args.classes, (args.batch,), device=device)
    rows = []
    for k in args.ks:
        rows.append(compare_steps(encoder, k, pixels, labels, args.classes, args.steps, device))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"model": args.model, "pretrained": "none", "batch": args.batch, "classes": args.classes,
                      "device": str(device), "threads": torch.get_num_threads(), "blocks": layers, "rows": rows}))


if __name__ == "__main__":
    main()

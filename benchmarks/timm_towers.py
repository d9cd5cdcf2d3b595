"""Which of open_clip's image towers get every feature, checked on the real architectures (random weights: no
download), and what the features cost.

For every open_clip architecture the tower family is read from its config (no model is built); one architecture of
each family given in --build is then built with random weights and checked: the global feature equals
`encode_image`, pooled @ the composed projection equals it, the map of an attention pool is what the pool returns
with all its attention on one token, and the time of one forward of `encode_images` (every feature) against
`encode_image` (global only) is measured on this CPU.

    python benchmarks/timm_towers.py --build ViT-B-16-SigLIP2 PE-Core-B-16 EVA02-B-16 MobileCLIP-B convnext_base
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from typing import Any

import open_clip
import torch
from timm.models import _registry

from pipeline.backbone.image import encode_images, final_projection, lacks, tower_kind


def family(name: str) -> str:
    """The tower family of an architecture, from its config."""
    vision = open_clip.get_model_config(name).get("vision_cfg", {})
    if vision.get("timm_model_name"):
        module = _registry._model_to_module.get(vision["timm_model_name"], "?")
        return f"timm {module} (pool {vision.get('timm_pool')!r}, proj {vision.get('timm_proj')!r})"
    if isinstance(vision.get("layers"), list | tuple):
        return "open_clip ModifiedResNet"
    if vision.get("attentional_pool"):
        return "open_clip ViT with an attentional pool (CoCa)"
    return f"open_clip ViT (pool {vision.get('pool_type', 'tok')!r})"


def seconds(fn: Any, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def check(name: str) -> dict[str, Any]:
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None).eval()
    visual = model.visual
    size = open_clip.get_model_preprocess_cfg(model)["size"]
    side = int(size[0] if isinstance(size, list | tuple) else size)
    pixels = torch.randn(4, 3, side, side)
    pooled = lacks(visual, "pooled") is None
    with torch.inference_mode():
        out = encode_images(model, pixels, spatial=True, late=1, pooled=pooled)
        expected = model.encode_image(pixels)  # [4, D]
        row: dict[str, Any] = {"model": name, "kind": tower_kind(visual), "features": sorted(out),
                               "global_max_abs_diff": float((out["global"] - expected).abs().max())}
        if pooled:
            weight, bias = final_projection(visual)
            again = out["pooled"] @ weight + (bias if bias is not None else 0)  # [4, W'] @ [W', D]
            row["pooled_projection_max_abs_diff"] = float((again - expected).abs().max())
        pool = getattr(getattr(visual, "trunk", None), "attn_pool", None)
        if pool is not None and "spatial_raw" in out:
            trunk = visual.trunk
            token = out["spatial_raw"][:, :1].expand(-1, 3, -1)  # [4, 3, W]: token 0 everywhere
            one = visual.head(trunk.head(trunk.fc_norm(pool(token))))  # [4, D]
            row["one_token_max_abs_diff"] = float((one - out["spatial"][:, 0]).abs().max())
        row["seconds_every_feature"] = round(seconds(lambda: encode_images(model, pixels, True, 1, pooled)), 3)
        row["seconds_global_only"] = round(seconds(lambda: model.encode_image(pixels)), 3)
    row["skipped"] = {f: lacks(visual, f) for f in ("spatial", "pooled", "late_tokens") if lacks(visual, f)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", nargs="*", default=[])
    args = parser.parse_args()
    torch.set_num_threads(2)
    families = collections.defaultdict(list)
    for name in open_clip.list_models():
        families[family(name)].append(name)
    for key, names in sorted(families.items(), key=lambda kv: -len(kv[1])):
        print(f"{len(names):3d}  {key}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
    for name in args.build:
        print(json.dumps(check(name)))


if __name__ == "__main__":
    main()

"""Image features of a frozen open_clip tower: the global embedding and the spatial map before pooling.

- ViT (`VisionTransformer`): the patch tokens the model's own pool returns (after the final norm), times the
  final projection: [HW, D], in the joint space. `spatial_raw` keeps them before the projection: [HW, width].
- ResNet (`ModifiedResNet`): the layer-4 map [HW, C_s] (`spatial_raw`) and, the dense-CLIP way, each location
  passed through the attention pool's value and output projections: c_proj(v_proj(x + pos)) -> [HW, D]. We add
  the pool's positional embedding (as DenseCLIP does; MaskCLIP omits it) because that is exactly the value the pool
  averages for that location, so the map lives where the global embedding lives.
The global embedding is the model's `encode_image` output, before L2 normalisation.

open_clip's `forward_intermediates` returns block outputs before the final projection and, for ViTs, without the
pool's token handling, so it does not give the joint-space map; we call the tower's own stages instead (`_embeds`,
`transformer`, `_pool`, `proj` for ViTs; `stem`, `layer1-4`, `attnpool` for ResNets), which is exactly the path of
`encode_image`: with `late_tokens: k` the blocks run in two spans and the sequence between them is kept (the input of
block L-k, after ln_pre and the first L-k blocks). The tests check that the global features equal `encode_image`
and the maps equal what its final projection produces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet
from open_clip.transformer import VisionTransformer

from pipeline.backbone.blocks import n_blocks, run_blocks
from pipeline.backbone.model import ClipModel
from pipeline.errors import ClipCacheError


def tower_kind(visual: torch.nn.Module) -> str:
    """'vit', 'resnet', or 'other' (a tower whose spatial map we do not define, e.g. timm)."""
    if isinstance(visual, VisionTransformer) and visual.attn_pool is None:
        return "vit"
    if isinstance(visual, ModifiedResNet):
        return "resnet"
    return "other"


def require_spatial(visual: torch.nn.Module, model_name: str) -> None:
    """Fail early when spatial maps are asked of a tower that has none we can define."""
    if tower_kind(visual) == "other":
        raise ClipCacheError(
            f"model {model_name!r}: spatial maps are defined for CLIP ViTs and ModifiedResNets only "
            f"(its tower is {type(visual).__name__}); set encode.features.spatial: false"
        )


def require_late_tokens(visual: torch.nn.Module, model_name: str, k: int) -> None:
    """Late tokens exist for CLIP ViTs with at least k blocks."""
    if tower_kind(visual) != "vit":
        raise ClipCacheError(f"model {model_name!r}: encode.features.late_tokens needs a CLIP ViT image tower "
                             f"(its tower is {type(visual).__name__}); set encode.features.late_tokens: 0")
    if k > n_blocks(visual.transformer):
        raise ClipCacheError(f"encode.features.late_tokens={k} exceeds the {n_blocks(visual.transformer)} blocks of "
                             f"model {model_name!r}")


def vit_features(visual: VisionTransformer, pixels: torch.Tensor, late: int = 0) -> dict[str, torch.Tensor]:
    """Global [B, D], tokens [B, HW, D], pre-projection tokens [B, HW, width] and, when late = k > 0, the sequence
    entering block L-k [B, 1+HW, width], in one forward."""
    x = visual._embeds(pixels)  # [B, 1+HW, width]
    split = n_blocks(visual.transformer) - late
    x = run_blocks(visual.transformer, x, 0, split)  # [B, 1+HW, width]
    out = {"late_tokens": x} if late else {}
    x = run_blocks(visual.transformer, x, split)  # [B, 1+HW, width]
    pooled, tokens = visual._pool(x)  # [B, width], [B, HW, width]
    proj = visual.proj
    return {"global": pooled @ proj, "spatial": tokens @ proj, "spatial_raw": tokens, **out}  # [B,D], [B,HW,D]


def resnet_dense(pool: AttentionPool2d, layer4: torch.Tensor) -> torch.Tensor:
    """c_proj(v_proj(x + pos)) at every location of the layer-4 map [B, C_s, h, w] -> [B, hw, D]."""
    x = layer4.flatten(2).transpose(1, 2)  # [B, hw, C_s]
    x = x + pool.positional_embedding[1:].to(x.dtype)  # [B, hw, C_s] + [hw, C_s]
    values = F.linear(x, pool.v_proj.weight, pool.v_proj.bias)  # [B, hw, C_s]
    return F.linear(values, pool.c_proj.weight, pool.c_proj.bias)  # [B, hw, D]


def resnet_features(visual: ModifiedResNet, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Global [B, D], dense map [B, HW, D] and layer-4 map [B, HW, C_s] in one forward."""
    x = visual.stem(pixels)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = layer(x)  # after layer4: [B, C_s, h, w]
    return {
        "global": visual.attnpool(x),  # [B, D]
        "spatial": resnet_dense(visual.attnpool, x),  # [B, hw, D]
        "spatial_raw": x.flatten(2).transpose(1, 2),  # [B, hw, C_s]
    }


def encode_images(model: ClipModel, pixels: torch.Tensor, spatial: bool, late: int = 0) -> dict[str, torch.Tensor]:
    """Features of a batch [B, 3, S, S]: 'global' always; 'spatial' and 'spatial_raw' when asked and defined;
    'late_tokens' when late = k > 0 (ViTs)."""
    visual = model.visual
    kind = tower_kind(visual) if spatial or late else "other"
    if kind == "vit":
        return vit_features(visual, pixels, late)
    if kind == "resnet":
        return resnet_features(visual, pixels)
    return {"global": model.encode_image(pixels)}  # [B, D]

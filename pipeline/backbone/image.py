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

- timm towers (SigLIP / SigLIP2, PE-Core, EVA-CLIP: `TimmModel` around a timm ViT or Eva trunk): the same features,
  defined in pipeline/backbone/timm_tower.py. Other towers (timm ConvNeXt trunks, open_clip's CoCa attention pools,
  ...) have a global feature only: encode skips what they lack, logged and noted in the files (`skipped_features`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet
from open_clip.transformer import VisionTransformer

from pipeline.backbone.blocks import n_blocks, run_blocks
from pipeline.backbone.model import ClipModel
from pipeline.backbone.timm_tower import TimmTower, unsupported
from pipeline.errors import ClipCacheError


def tower_kind(visual: torch.nn.Module) -> str:
    """'vit' (open_clip's CLIP ViT), 'resnet' (ModifiedResNet), 'timm' (a timm ViT or Eva trunk: SigLIP, PE-Core,
    EVA-CLIP) or 'other' (a tower with a global feature only)."""
    if isinstance(visual, VisionTransformer) and visual.attn_pool is None:
        return "vit"
    if isinstance(visual, ModifiedResNet):
        return "resnet"
    if type(visual).__name__ == "TimmModel" and unsupported(visual) is None:
        return "timm"
    return "other"


def tower_name(visual: torch.nn.Module) -> str:
    """How messages and provenance name a tower: 'VisionTransformer', or 'TimmModel(Eva)' for a timm trunk."""
    trunk = getattr(visual, "trunk", None)
    if trunk is not None:
        return f"{type(visual).__name__}({type(trunk).__name__})"
    if getattr(visual, "attn_pool", None) is not None:
        return f"{type(visual).__name__}(attentional pool)"  # CoCa's
    return type(visual).__name__


def lacks(visual: torch.nn.Module, feature: str) -> str | None:
    """Why the tower has no `feature` ('spatial', 'pooled', 'late_tokens') we define; None when it has one."""
    kind = tower_kind(visual)
    if feature == "late_tokens" and kind == "resnet":
        return "a ResNet has no tokens"
    if kind == "other":
        return unsupported(visual) if type(visual).__name__ == "TimmModel" else f"its tower is {tower_name(visual)}"
    if feature == "pooled" and kind == "timm" and TimmTower(visual).projection() is None:
        return "the projection after its pool is not linear"
    return None


def require_late_tokens(visual: torch.nn.Module, model_name: str, k: int) -> None:
    """k within the blocks of a tower that has late tokens."""
    blocks = n_blocks(visual.transformer) if tower_kind(visual) == "vit" else TimmTower(visual).n_blocks()
    if k > blocks:
        raise ClipCacheError(f"encode.features.late_tokens={k} exceeds the {blocks} blocks of model {model_name!r}")


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
    return {"global": pooled @ proj, "spatial": tokens @ proj, "spatial_raw": tokens, "pooled": pooled,  # [B, D]
            **out}


def resnet_dense(pool: AttentionPool2d, layer4: torch.Tensor) -> torch.Tensor:
    """c_proj(v_proj(x + pos)) at every location of the layer-4 map [B, C_s, h, w] -> [B, hw, D]."""
    x = layer4.flatten(2).transpose(1, 2)  # [B, hw, C_s]
    x = x + pool.positional_embedding[1:].to(x.dtype)  # [B, hw, C_s] + [hw, C_s]
    values = F.linear(x, pool.v_proj.weight, pool.v_proj.bias)  # [B, hw, C_s]
    return F.linear(values, pool.c_proj.weight, pool.c_proj.bias)  # [B, hw, D]


def resnet_pooled(pool: AttentionPool2d, layer4: torch.Tensor) -> torch.Tensor:
    """The attention pool's output before its final projection c_proj, [B, C_s]: the pool run with an identity
    output projection, so that c_proj(pooled) is its output (open_clip's AttentionPool2d.forward)."""
    x = layer4.flatten(2).permute(2, 0, 1)  # [B, C_s, h, w] -> [hw, B, C_s]
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # [1+hw, B, C_s]
    x = x + pool.positional_embedding[:, None, :].to(x.dtype)  # [1+hw, B, C_s]
    width = x.shape[-1]
    out, _ = F.multi_head_attention_forward(
        query=x, key=x, value=x, embed_dim_to_check=width, num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None, in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=torch.eye(width, dtype=x.dtype, device=x.device),
        out_proj_bias=torch.zeros(width, dtype=x.dtype, device=x.device),
        use_separate_proj_weight=True, training=False, need_weights=False)
    return out[0]  # [B, C_s]: the query of the mean token


def resnet_features(visual: ModifiedResNet, pixels: torch.Tensor, pooled: bool = False) -> dict[str, torch.Tensor]:
    """Global [B, D], dense map [B, HW, D], layer-4 map [B, HW, C_s] and (asked) the pool's pre-projection output
    [B, C_s] in one forward."""
    x = visual.stem(pixels)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = layer(x)  # after layer4: [B, C_s, h, w]
    return {
        "global": visual.attnpool(x),  # [B, D]
        "spatial": resnet_dense(visual.attnpool, x),  # [B, hw, D]
        "spatial_raw": x.flatten(2).transpose(1, 2),  # [B, hw, C_s]
        **({"pooled": resnet_pooled(visual.attnpool, x)} if pooled else {}),
    }


def final_projection(visual: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight [width, D], bias [D] or None): global = pooled @ weight (+ bias), for the towers `pooled` is defined
    for (ViT: proj; ResNet: the attention pool's c_proj)."""
    if isinstance(visual, VisionTransformer) and tower_kind(visual) == "vit" and visual.proj is not None:
        return visual.proj, None
    if isinstance(visual, ModifiedResNet):
        c_proj = visual.attnpool.c_proj
        return c_proj.weight.T, c_proj.bias  # [C_s, D], [D]
    composed = TimmTower(visual).projection() if tower_kind(visual) == "timm" else None
    if composed is not None:
        return composed  # [W', D], [D] or None
    raise ClipCacheError(f"no final projection is defined for a {type(visual).__name__} image tower")


def encode_images(model: ClipModel, pixels: torch.Tensor, spatial: bool, late: int = 0,
                  pooled: bool = False) -> dict[str, torch.Tensor]:
    """Features of a batch [B, 3, S, S]: 'global' always; 'spatial' and 'spatial_raw' when asked and defined;
    'late_tokens' when late = k > 0 (ViTs, timm towers); 'pooled' (before the final projection) when asked."""
    visual = model.visual
    kind = tower_kind(visual) if spatial or late or pooled else "other"
    if kind == "vit":
        return vit_features(visual, pixels, late)
    if kind == "resnet":
        return resnet_features(visual, pixels, pooled)
    if kind == "timm":
        return TimmTower(visual).features(pixels, late, pooled)
    return {"global": model.encode_image(pixels)}  # [B, D]

"""Tiny timm image towers of the three kinds open_clip's current best models use, registered with timm so that a
model-config JSON can name them (`timm_model_name`), as open_clip's own SigLIP, PE-Core and EVA configs name theirs:

- clipcache_tiny_siglip: timm VisionTransformer, no class token, latent-query attention pool (SigLIP / SigLIP2);
- clipcache_tiny_pe: timm Eva, RoPE attention, pre-transformer norm, class token, attention pool (PE-Core);
- clipcache_tiny_eva: timm Eva, RoPE, SwiGLU, sub-LN ("scale") MLP and attention, class-token pool (EVA02-CLIP);
- clipcache_tiny_convnext: a timm ConvNeXt trunk (open_clip's convnext_* models), a tower with a global feature only.
Their arguments are those of timm's vit_base_patch16_siglip_224, vit_pe_core_base_patch16_224 and
eva02_base_patch16_clip_224 at a size a 2-core CPU runs in milliseconds (64-pixel images, 2 blocks, width 48).
"""

from __future__ import annotations

from typing import Any

import timm
from timm.models import register_model
from timm.models.convnext import ConvNeXt
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer

SMALL = {"img_size": 64, "patch_size": 16, "embed_dim": 48, "depth": 2, "num_heads": 3}


def _own(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The model arguments timm's factory passes on, without its bookkeeping (pretrained_cfg, cache_dir...)."""
    return {k: v for k, v in kwargs.items() if not k.startswith(("pretrained_cfg", "cache_dir"))}


def _with_cfg(model: Any) -> Any:
    """timm's own builder sets the model's (pretrained) default_cfg, which open_clip reads; these have none."""
    model.pretrained_cfg = model.default_cfg = {}
    return model


def _register() -> None:
    @register_model
    def clipcache_tiny_siglip(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
        return _with_cfg(VisionTransformer(**{**SMALL, "class_token": False, "global_pool": "map", **_own(kwargs)}))

    @register_model
    def clipcache_tiny_pe(pretrained: bool = False, **kwargs: Any) -> Eva:
        return _with_cfg(Eva(**{**SMALL, "global_pool": "map", "attn_type": "rope", "use_pre_transformer_norm": True,
                                "use_rot_pos_emb": True, "ref_feat_shape": (4, 4), "rope_grid_offset": 1.0,
                                "rope_grid_indexing": "xy", "attn_pool_num_heads": 2, "attn_pool_mlp_ratio": 4.0,
                                **_own(kwargs)}))

    @register_model
    def clipcache_tiny_eva(pretrained: bool = False, **kwargs: Any) -> Eva:
        return _with_cfg(Eva(**{**SMALL, "qkv_fused": False, "mlp_ratio": 4 * 2 / 3, "swiglu_mlp": True,
                                "scale_mlp": True, "scale_attn_inner": True, "use_rot_pos_emb": True,
                                "ref_feat_shape": (4, 4), "global_pool": "token", **_own(kwargs)}))

    @register_model
    def clipcache_tiny_convnext(pretrained: bool = False, **kwargs: Any) -> ConvNeXt:
        return _with_cfg(ConvNeXt(**{"depths": (1, 1, 1, 1), "dims": (8, 16, 24, 32), **_own(kwargs)}))


if "clipcache_tiny_siglip" not in timm.list_models("clipcache_*"):  # once per process
    _register()

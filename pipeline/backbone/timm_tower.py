"""Every feature of open_clip's timm image towers: SigLIP / SigLIP2 (timm `VisionTransformer`, attention-pooled by a
latent query), PE-Core (timm `Eva`, RoPE, attention-pooled) and EVA-CLIP (timm `Eva`, RoPE, class-token pooled).

open_clip wraps the timm trunk in `TimmModel`: image features = `visual.head(trunk.forward_head(trunk.norm(blocks(
embed(pixels)))))`, where `forward_head` is the trunk's pool, its `fc_norm`, and its own `head` (a linear map to the
joint space, or the identity for SigLIP whose pool already ends there), and `visual.head` open_clip's optional extra
projection. We run exactly those stages (`embed`, the blocks in spans, `norm`, `forward_head`, `visual.head`), so the
global feature is `encode_image`'s, and define the others the way the CLIP ViT's are defined:

- spatial_raw [HW, W]: the patch tokens the pool consumes, after the trunk's final norm (class and register tokens,
  the "prefix", are left out: they are not positions of the image).
- spatial [HW, D]: each patch token taken through the pool's path for one token, into the joint space:
  - class-token and average pools (EVA-CLIP, and `avg` towers): fc_norm, the trunk's head and open_clip's head per
    token, as the CLIP ViT's tokens go through ln_post and proj. For a class-token pool this is the path the class
    token takes; for an average pool, fc_norm (a LayerNorm) of each token is not the norm of the mean, so the mean of
    the map is close to, not equal to, the global feature.
  - latent-query attention pools (SigLIP, PE-Core; timm `AttentionPoolLatent`): the value projection, the output
    projection and the pool's residual MLP, then fc_norm and the heads: exactly what the pool returns when all its
    attention falls on that token (the dense-CLIP reading of an attention pool, as for the ResNet's). The MLP is not
    linear, so the attention-weighted mean of the map is not the global feature; a test checks the one-token identity.
- pooled [W']: the trunk's pre-logits (after pool and fc_norm), defined where the projections after it are linear
  (then `final_projection` composes them); not where open_clip's head is an MLP.
- late tokens [T, W]: the whole sequence (prefix and patches) entering block L-k, after the embedding and norm_pre;
  RoPE towers get their rotary embedding again from the trunk when their last blocks run.
Towers of other trunks (ConvNeXt, open_clip's custom attention pools) have none of these: encode skips them, logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from open_clip.timm_model import TimmModel

POOLS = ("token", "avg", "map")  # the timm pools whose per-token path is defined here


def trunk_classes() -> tuple[type, ...]:
    """timm's ViT and Eva classes (imported here: timm is open_clip's dependency, loaded only with a timm tower)."""
    from timm.models.eva import Eva
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer, Eva


def pool_of(trunk: Any) -> str:
    """'map' for a latent-query attention pool, else the trunk's global_pool name."""
    return "map" if getattr(trunk, "attn_pool", None) is not None else str(getattr(trunk, "global_pool", ""))


def unsupported(visual: torch.nn.Module) -> str | None:
    """Why a tower is not a timm ViT whose features are defined here; None when it is one."""
    if not isinstance(visual, TimmModel):
        return f"its tower is {type(visual).__name__}"
    trunk: Any = visual.trunk
    if not isinstance(trunk, trunk_classes()):
        return f"its timm trunk is {type(trunk).__name__} (features are defined for timm ViT and Eva trunks)"
    pool, kind = pool_of(trunk), type(getattr(trunk, "attn_pool", None)).__name__
    if pool not in POOLS or (pool == "map" and kind != "AttentionPoolLatent"):
        return f"its timm pool is {pool!r}" + (f" of type {kind}" if pool == "map" else "")
    if any(name == "pool" for name, _ in visual.head.named_children()):
        return "open_clip adds its own attention pool to the trunk"
    return None


@dataclass
class TimmTower:
    """The stages of a supported timm tower, run separately (not an nn.Module: the weights are the model's)."""

    visual: TimmModel

    @property
    def trunk(self) -> Any:  # timm's ViT or Eva: reached by attribute, as open_clip does
        return self.visual.trunk

    @property
    def prefix(self) -> int:
        """Class and register tokens before the patches."""
        return int(self.trunk.num_prefix_tokens)

    @property
    def width(self) -> int:
        return int(self.trunk.embed_dim)

    def n_blocks(self) -> int:
        return len(self.trunk.blocks)

    def embed(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """pixels [B, 3, S, S] -> (the sequence entering block 0 [B, T, W], RoPE or None), as forward_features."""
        trunk = self.trunk
        x = trunk.patch_embed(pixels)  # [B, HW, W] (or [B, h, w, W] with dynamic image sizes)
        if is_eva(trunk):
            x, rope = trunk._pos_embed(x)  # [B, T, W]
        else:
            x, rope = trunk.patch_drop(trunk._pos_embed(x)), None  # [B, T, W]
        return trunk.norm_pre(x), rope

    def rope(self) -> torch.Tensor | None:
        """The rotary embedding of the trunk's own image size (what _pos_embed returns beside the tokens)."""
        if not is_eva(self.trunk) or self.trunk.rope is None:
            return None
        rope = self.trunk.rope
        if hasattr(rope, "feat_shape"):
            return rope.get_embed()
        return rope.get_embed(shape=self.trunk.patch_embed.grid_size)

    def run(self, x: torch.Tensor, rope: torch.Tensor | None, start: int, stop: int | None = None) -> torch.Tensor:
        """x [B, T, W] through blocks[start:stop] -> [B, T, W] (Eva's blocks take the RoPE; per block when mixed)."""
        blocks = list(self.trunk.blocks)
        stop = len(blocks) if stop is None else stop
        for i in range(start, stop):
            if not is_eva(self.trunk):
                x = blocks[i](x)  # [B, T, W]
            else:  # mixed RoPE: one embedding per block
                x = blocks[i](x, rope=rope[i] if rope is not None and getattr(self.trunk, "rope_mixed", False)
                              else rope)  # [B, T, W]
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The normed sequence [B, T, W] -> the global feature [B, D]: the trunk's pool, fc_norm and head, then
        open_clip's head."""
        return self.visual.head(self.trunk.forward_head(x))

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The normed sequence [B, T, W] -> the pooled feature before the projections [B, W']."""
        return self.trunk.forward_head(x, pre_logits=True)

    def pool_reads_prefix(self) -> bool:
        """Whether the trunk's pool reads the class and register tokens too (Eva's attention pool and class-token
        pools do; timm's ViT attention and average pools read the patches unless pool_include_prefix)."""
        if pool_of(self.trunk) == "token":
            return True
        return is_eva(self.trunk) if pool_of(self.trunk) == "map" else bool(
            getattr(self.trunk, "pool_include_prefix", False))

    def dense(self, tokens: torch.Tensor) -> torch.Tensor:
        """Normed patch tokens [B, HW, W] -> each through the pool's one-token path and the heads [B, HW, D]."""
        trunk = self.trunk
        x = tokens
        if pool_of(trunk) == "map":
            pool = trunk.attn_pool
            if pool.pos_embed is not None:  # the pool's own position embedding, at the patches' positions
                offset = self.prefix if self.pool_reads_prefix() else 0
                x = x + pool.pos_embed[offset:offset + x.shape[1]].to(x.dtype)  # [B, HW, W] + [HW, W]
            width = pool.kv.out_features // 2  # kv's output is [keys | values], heads in order within each
            bias = pool.kv.bias[width:] if pool.kv.bias is not None else None
            values = torch.nn.functional.linear(x, pool.kv.weight[width:], bias)  # [B, HW, C]
            x = pool.proj(values)  # [B, HW, W']
            if pool.mlp is not None:
                x = x + pool.mlp(pool.norm(x))  # [B, HW, W']
        x = trunk.head(trunk.fc_norm(x))  # [B, HW, D] (fc_norm and head act per token)
        return self.visual.head(x)  # [B, HW, D]

    def features(self, pixels: torch.Tensor, late: int = 0, pooled: bool = False) -> dict[str, torch.Tensor]:
        """Global [B, D], spatial [B, HW, D], spatial_raw [B, HW, W], the late sequence [B, T, W] (late = k > 0)
        and the pre-logits [B, W'] (asked), in one forward."""
        x, rope = self.embed(pixels)  # [B, T, W]
        split = self.n_blocks() - late
        x = self.run(x, rope, 0, split)
        out = {"late_tokens": x} if late else {}
        x = self.trunk.norm(self.run(x, rope, split))  # [B, T, W]
        tokens = x[:, self.prefix:]  # [B, HW, W]
        out.update({"global": self.head(x), "spatial": self.dense(tokens), "spatial_raw": tokens})
        if pooled:
            out["pooled"] = self.pre_logits(x)  # [B, W']
        return out

    def projection(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """(weight [W', D], bias [D] or None) with global = pre_logits @ weight (+ bias), composed from the trunk's
        head and open_clip's; None where one of them is not linear."""
        maps = [m for m in (self.trunk.head, *self.visual.head.children())
                if not isinstance(m, torch.nn.Identity | torch.nn.Dropout)]
        if not all(isinstance(m, torch.nn.Linear) for m in maps):
            return None
        first = next(self.visual.parameters())
        size = maps[0].in_features if maps else int(self.trunk.num_features)
        weight = torch.eye(size, dtype=maps[0].weight.dtype if maps else first.dtype, device=first.device)
        bias: torch.Tensor | None = None
        for m in maps:
            weight = weight @ m.weight.T  # [W', in] @ [in, out] -> [W', out]
            if bias is not None:
                bias = bias @ m.weight.T  # [in] @ [in, out] -> [out]
            if m.bias is not None:
                bias = m.bias if bias is None else bias + m.bias
        return weight, bias


def is_eva(trunk: Any) -> bool:
    return isinstance(trunk, trunk_classes()[1])


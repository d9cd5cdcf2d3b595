"""The last k blocks of a frozen CLIP ViT run on cached late tokens, with prompt tokens inserted at each block.

Stage 1 stored x_{L-K}, the sequence [class, patches] entering block L-K (features.late_tokens = K). For a head with
k <= K, blocks L-K .. L-k-1 run unprompted, then each of the last k blocks l gets its prompts P_l inserted after the
class token (VPT-deep: [s, P_l, E] -> block -> drop the prompt outputs), or (VPT-shallow) the first of them gets P
and its outputs flow through the remaining blocks (eqs. 4-5); the tower's own pool (ln_post on the class token) and
projection give the image feature. With no prompts this is exactly the rest of `encode_image`, which the
equivalence test checks against the cached global feature.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from open_clip.transformer import VisionTransformer

from pipeline.backbone.blocks import n_blocks, run_blocks
from pipeline.backbone.image import tower_kind
from pipeline.errors import ClipCacheError

# per prompted block: (index among the k prompted blocks, the sequence entering it [B, 1+HW, W]) -> prompts [B, P, W]
PromptFn = Callable[[int, torch.Tensor], torch.Tensor | None]


class LateViT:
    """The frozen tail of a ViT (not an nn.Module: its weights are the model's, never saved with a head)."""

    def __init__(self, visual: VisionTransformer, stored: int, k: int, shallow: bool = False) -> None:
        if tower_kind(visual) != "vit":
            raise ClipCacheError(f"late visual prompts need a CLIP ViT image tower, not {type(visual).__name__}")
        if not 1 <= k <= stored:
            raise ClipCacheError(f"the head's k={k} must be between 1 and the cached "
                                 f"encode.features.late_tokens={stored} "
                                 f"(re-encode with encode.features.late_tokens >= {k})")
        self.visual: VisionTransformer = visual
        self.first = n_blocks(visual.transformer) - stored  # index of the block the cached tokens enter
        self.prompted = n_blocks(visual.transformer) - k  # index of the first prompted block
        self.width = int(visual.transformer.width)
        self.shallow = shallow  # VPT-shallow: prompts enter the first prompted block only and flow through the rest

    def __call__(self, tokens: torch.Tensor, prompts: PromptFn | None = None) -> torch.Tensor:
        """Cached tokens [B, 1+HW, W] -> image features [B, D] (not normalised)."""
        x = tokens
        if self.prompted > self.first:
            with torch.no_grad():
                x = run_blocks(self.visual.transformer, x, self.first, self.prompted)  # unprompted: [B, 1+HW, W]
        carried = 0  # prompt outputs still in the sequence (shallow)
        for i, index in enumerate(range(self.prompted, n_blocks(self.visual.transformer))):
            extra = prompts(i, x) if prompts is not None and not (self.shallow and i) else None
            if extra is None or extra.shape[1] == 0:
                x = run_blocks(self.visual.transformer, x, index, index + 1)
                continue
            p = extra.shape[1]
            x = torch.cat([x[:, :1], extra.to(x.dtype), x[:, 1:]], dim=1)  # [B, 1+P+HW, W]
            x = run_blocks(self.visual.transformer, x, index, index + 1)
            if self.shallow:
                carried = p
            else:
                x = torch.cat([x[:, :1], x[:, 1 + p :]], dim=1)  # prompt outputs dropped: [B, 1+HW, W]
        if carried:
            x = torch.cat([x[:, :1], x[:, 1 + carried :]], dim=1)  # shallow prompt outputs dropped at the end
        pooled, _ = self.visual._pool(x)  # [B, W]
        return pooled @ self.visual.proj  # [B, W] x [W, D] -> [B, D]

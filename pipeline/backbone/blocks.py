"""Running a span of a ViT's residual blocks: what stage 1 uses to keep the tokens entering block L-k, and what the
late-prompt heads use to run only the last k blocks on those cached tokens.

open_clip's `Transformer.forward` runs all blocks and transposes to [L, N, W] when the tower is not batch-first; this
does the same for blocks[start:stop], so the two paths are the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from open_clip.transformer import Transformer


def run_blocks(transformer: Transformer, x: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
    """x [B, T, W] through transformer.resblocks[start:stop] -> [B, T, W]."""
    if not transformer.batch_first:
        x = x.transpose(0, 1)  # [B, T, W] -> [T, B, W]
    for block in transformer.resblocks[start:stop]:
        x = block(x)
    return x if transformer.batch_first else x.transpose(0, 1)  # [T, B, W] -> [B, T, W]


def run_hooked(transformer: Transformer, x: torch.Tensor, before: Callable[[int, torch.Tensor], torch.Tensor],
               attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """x [B, T, W] through every block, `before(i, x)` (batch first) rewriting the sequence entering block i (deep
    prompts replacing the previous block's) -> [B, T', W]."""
    for i, block in enumerate(transformer.resblocks):
        x = before(i, x)
        if not transformer.batch_first:
            x = block(x.transpose(0, 1), attn_mask=attn_mask).transpose(0, 1)  # [T, B, W] inside the block
        else:
            x = block(x, attn_mask=attn_mask)
    return x


def n_blocks(transformer: Transformer) -> int:
    return len(transformer.resblocks)

"""Running a span of a ViT's residual blocks: what stage 1 uses to keep the tokens entering block L-k, and what the
late-prompt heads use to run only the last k blocks on those cached tokens.

open_clip's `Transformer.forward` runs all blocks and transposes to [L, N, W] when the tower is not batch-first; this
does the same for blocks[start:stop], so the two paths are the same arithmetic.
"""

from __future__ import annotations

import torch
from open_clip.transformer import Transformer


def run_blocks(transformer: Transformer, x: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
    """x [B, T, W] through transformer.resblocks[start:stop] -> [B, T, W]."""
    if not transformer.batch_first:
        x = x.transpose(0, 1)  # [B, T, W] -> [T, B, W]
    for block in transformer.resblocks[start:stop]:
        x = block(x)
    return x if transformer.batch_first else x.transpose(0, 1)  # [T, B, W] -> [B, T, W]


def n_blocks(transformer: Transformer) -> int:
    return len(transformer.resblocks)

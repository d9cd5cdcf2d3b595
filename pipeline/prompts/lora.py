"""Low-rank adapters on the attention projections of a frozen open_clip transformer, run without touching the model.

A block's forward is restated from open_clip's `ResidualAttentionBlock` (pre-norm attention and MLP, layer scales)
with the query, key, value and output projections taken from the block's own `nn.MultiheadAttention` weights, plus
for each adapted projection the low-rank term (dropout(h) A^T B^T) * alpha / sqrt(r), as CLIP-LoRA's `LinearLoRA`
(the dropout acts on the adapter's input only, in training). The frozen model is shared by every head of a process,
so it is never modified: the adapters live in the head and are passed to `run_adapted`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock, Transformer
from torch import nn

from pipeline.errors import ClipCacheError

MATRICES = ("q", "k", "v", "o")


class LowRank(nn.Module):
    """One projection's adapter: A [r, in] (nn.Linear's default init), B [out, r] zeros, scale alpha / sqrt(r)."""

    def __init__(self, features: int, r: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.zeros(r, features))
        self.B = nn.Parameter(torch.zeros(features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = alpha / math.sqrt(r)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.dropout is not None:
            h = self.dropout(h)
        return (h @ (self.B @ self.A).T) * self.scale  # [..., in] x [in, out] -> [..., out]


class BlockAdapters(nn.Module):
    """The adapters of one block, by projection name ('q', 'k', 'v', 'o')."""

    def __init__(self, width: int, matrices: tuple[str, ...], r: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.low_rank = nn.ModuleDict({m: LowRank(width, r, alpha, dropout) for m in matrices})

    def delta(self, name: str, h: torch.Tensor) -> torch.Tensor | float:
        return self.low_rank[name](h) if name in self.low_rank else 0.0


def check_blocks(transformer: Transformer, where: str) -> None:
    """Adapters need open_clip's plain blocks (one nn.MultiheadAttention with packed q/k/v weights)."""
    for block in transformer.resblocks:
        attn = getattr(block, "attn", None)
        if not isinstance(block, ResidualAttentionBlock) or not isinstance(attn, nn.MultiheadAttention) \
                or not attn._qkv_same_embed_dim or hasattr(block, "ln_1_kv"):
            raise ClipCacheError(f"low-rank adapters need open_clip's ResidualAttentionBlock with packed q/k/v "
                                 f"projections in the {where}; it has {type(block).__name__}")


def adapted_block(block: ResidualAttentionBlock, x: torch.Tensor, adapters: BlockAdapters,
                  attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One block on x [B, T, W] (batch first) with the adapters' terms added to its projections -> [B, T, W]."""
    attn = block.attn
    assert isinstance(attn, nn.MultiheadAttention)
    b, t, width = x.shape
    heads = attn.num_heads
    h = block.ln_1(x)
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    parts = []
    for i, name in enumerate(("q", "k", "v")):
        rows = slice(i * width, (i + 1) * width)
        projected = F.linear(h, weight[rows], None if bias is None else bias[rows]) + adapters.delta(name, h)
        parts.append(projected.view(b, t, heads, width // heads).transpose(1, 2))  # [B, T, W] -> [B, H, T, W/H]
    mask = None
    if attn_mask is not None:
        mask = attn_mask.to(x.dtype)
        if mask.dim() == 3:  # [B*H, T, T] (open_clip's pad masks) or [B, T, T]
            mask = mask.view(b, -1, t, t)
    out = F.scaled_dot_product_attention(parts[0], parts[1], parts[2], attn_mask=mask)  # [B, H, T, W/H]
    out = out.transpose(1, 2).reshape(b, t, width)  # [B, H, T, W/H] -> [B, T, W]
    out = F.linear(out, attn.out_proj.weight, attn.out_proj.bias) + adapters.delta("o", out)
    x = x + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def run_adapted(transformer: Transformer, x: torch.Tensor, adapters: nn.ModuleList,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """x [B, T, W] (batch first) through every block with its adapters -> [B, T, W]."""
    if len(adapters) != len(transformer.resblocks):
        raise ClipCacheError(f"{len(adapters)} adapter sets for {len(transformer.resblocks)} blocks")
    for block, adapter in zip(transformer.resblocks, adapters, strict=True):
        assert isinstance(block, ResidualAttentionBlock) and isinstance(adapter, BlockAdapters)
        x = adapted_block(block, x, adapter, attn_mask)
    return x

"""MaPLe: multi-modal prompt learning, the image prompts of every prompted block coupled to the text prompts.

Paper: Khattak, Rasheed, Maaz, Khan, Khan, "MaPLe: Multi-modal Prompt Learning", CVPR 2023, arXiv 2210.03117. Code:
github muzairkhattak/multimodal-prompt-learning at 69bce21ae8eda80ad6187534b2dce09cf6c59e17, trainers/maple.py
(MultiModalPromptLearner, CustomCLIP), clip/model.py (ResidualAttentionBlock_MaPLe, VisionTransformer_MaPLe),
configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml, scripts/maple/base2new_train_maple.sh.
The text context ctx [n_ctx, W_t] (the first 2 tokens of "a photo of a") and the deep text prompts P_i [n_ctx, W_t]
of blocks 1..depth-1 (N(0, 0.02)) are learned; the image prompts are their couplings: proj(ctx) enters the image
tower with its tokens, F_i(P_i) replaces them before block i (proj and F_i linear W_t -> W_v; the F_i start as copies
of one nn.Linear, as their _get_clones). Defaults: n_ctx 2, depth 9, SGD 0.0035, batch 4, 5 epochs (the rest is in
pipeline/heads/vl_prompts.py, with the departures).
"""

from __future__ import annotations

import copy
from typing import Unpack

import torch
from torch import nn

from pipeline.head_params.maple import MaPLeParams
from pipeline.heads.base import Shapes
from pipeline.heads.registry import register_head
from pipeline.heads.vl_prompts import VLPrompts, check_depth


@register_head("maple")
class MaPLe(VLPrompts):
    Params = MaPLeParams

    proj: nn.Linear  # ctx -> the image tower's shallow prompts
    deep_text: nn.ParameterList  # depth-1 x [n_ctx, W_t]
    couplings: nn.ModuleList  # depth-1 x Linear(W_t, W_v)

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        p = self.params
        check_depth(self.name, "depth", p.depth, min(shapes["blocks"], shapes["text_blocks"]))
        text_width, width = shapes["text_width"], shapes["width"]
        self.proj = nn.Linear(text_width, width)
        self.deep_text = nn.ParameterList(nn.Parameter(torch.empty(p.n_ctx, text_width)) for _ in range(p.depth - 1))
        for prompt in self.deep_text:
            nn.init.normal_(prompt, std=0.02)
        single = nn.Linear(text_width, width)
        self.couplings = nn.ModuleList(copy.deepcopy(single) for _ in range(p.depth - 1))

    def vision_tokens(self) -> int:
        return int(self.params.n_ctx)

    def text_deep(self, block: int) -> torch.Tensor | None:
        return self.deep_text[block - 1] if 1 <= block < self.params.depth else None

    def vision_shallow(self) -> torch.Tensor:
        return self.proj(self.context.ctx)  # [n_ctx, W_t] -> [n_ctx, W_v]

    def vision_deep(self, block: int) -> torch.Tensor | None:
        if not 1 <= block < self.params.depth:
            return None
        return self.couplings[block - 1](self.deep_text[block - 1])  # [n_ctx, W_t] -> [n_ctx, W_v]

"""IVLP: independent deep vision and language prompts (the baseline of MaPLe and PromptSRC).

Code: github muzairkhattak/multimodal-prompt-learning at 69bce21ae8eda80ad6187534b2dce09cf6c59e17,
trainers/independentVL.py (VLPromptLearner, CustomCLIP), clip/model.py (ResidualAttentionBlock_IVLP,
VisionTransformer with VPT), configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml, scripts/independent-vlp; the
"Independent V-L Prompting" row of MaPLe's paper (arXiv 2210.03117, Table 1 and its README).
The text context (the first 2 tokens of "a photo of a"), the image prompts entering with the tokens and each block's
deep text and image prompts (blocks 1..depth-1) are separate parameters, N(0, 0.02) except the text context.
Defaults: 2 text and 2 image tokens, depth 12 in both towers, SGD 0.0035, batch 4, 5 epochs (the rest is in
pipeline/heads/vl_prompts.py, with the departures). Their vision depth 0 (no image prompts) is not offered.
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import nn

from pipeline.head_params.ivlp import IVLPParams
from pipeline.heads.base import Shapes
from pipeline.heads.registry import register_head
from pipeline.heads.vl_prompts import VLPrompts, check_depth


@register_head("ivlp")
class IVLP(VLPrompts):
    Params = IVLPParams

    vision_prompt: torch.Tensor  # [n_ctx_vision, W_v] entering with the image tokens
    deep_text: nn.ParameterList  # depth_text-1 x [n_ctx, W_t]
    deep_vision: nn.ParameterList  # depth_vision-1 x [n_ctx_vision, W_v]

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        p = self.params
        check_depth(self.name, "depth_text", p.depth_text, shapes["text_blocks"])
        check_depth(self.name, "depth_vision", p.depth_vision, shapes["blocks"])
        text_width, width = shapes["text_width"], shapes["width"]
        self.vision_prompt = nn.Parameter(torch.empty(p.n_ctx_vision, width))
        self.deep_text = nn.ParameterList(nn.Parameter(torch.empty(p.n_ctx, text_width))
                                          for _ in range(p.depth_text - 1))
        self.deep_vision = nn.ParameterList(nn.Parameter(torch.empty(p.n_ctx_vision, width))
                                            for _ in range(p.depth_vision - 1))
        for prompt in (self.vision_prompt, *self.deep_text, *self.deep_vision):
            nn.init.normal_(prompt, std=0.02)

    def vision_tokens(self) -> int:
        return int(self.params.n_ctx_vision)

    def text_deep(self, block: int) -> torch.Tensor | None:
        return self.deep_text[block - 1] if 1 <= block < self.params.depth_text else None

    def vision_shallow(self) -> torch.Tensor:
        return self.vision_prompt

    def vision_deep(self, block: int) -> torch.Tensor | None:
        return self.deep_vision[block - 1] if 1 <= block < self.params.depth_vision else None

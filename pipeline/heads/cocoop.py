"""CoCoOp: CoOp's context shifted per image by a small meta-network of the image feature (conditional prompts).

Paper: Zhou, Yang, Loy, Liu, "Conditional Prompt Learning for Vision-Language Models", CVPR 2022, arXiv 2203.05557.
Code: github KaiyangZhou/CoOp at ff61507c790454bce7c5052c3ac39e60772f1f89, trainers/cocoop.py (PromptLearner,
CustomCLIP), configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml, scripts/cocoop/base2new_train.sh.
For image i with normalised feature f_i: pi_i = meta_net(f_i) (Linear(D, D/16), ReLU, Linear(D/16, W)), every
context vector becomes v_m + pi_i, the C class prompts "[SOS] v_1+pi_i .. v_M+pi_i name ." run through the frozen
text tower, and logits_i = logit_scale * f_i . normalise(t_i(c)). So every image needs its own C text forwards.
Defaults from their base-to-novel config: 4 context vectors initialised from "a photo of a", the class token at the
end, batch 1 (their recipe, kept: one image per step), SGD lr 0.002 (momentum 0.9, weight decay 5e-4), 10 epochs
with one constant warm-up epoch at 1e-5 inside them, Dassl's cosine, the last epoch kept; the meta-net in
PyTorch's default initialisation.
Departures: the image side is a cached augmented view per image (they augment every step); float32 (their default
precision is fp16); scoring runs the text tower for `score_images` images at once (the same values as one at a time).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Unpack

import torch
from torch import nn

from pipeline.errors import ClipCacheError
from pipeline.head_params.cocoop import CoCoOpParams
from pipeline.heads.base import Shapes
from pipeline.heads.coop import CoOp
from pipeline.heads.inputs import FitData
from pipeline.heads.loop import train
from pipeline.heads.maths import normalize
from pipeline.heads.registry import register_head
from pipeline.prompts.text import TextTower


@register_head("cocoop")
class CoCoOp(CoOp):
    Params = CoCoOpParams
    batch_rows = 256  # each scored image runs C text forwards

    meta_net: nn.Sequential

    def __init__(self, params: CoCoOpParams) -> None:
        super().__init__(params)
        if params.csc:
            raise ClipCacheError("heads.cocoop.csc must be false: CoCoOp shifts one shared context per image")
        if params.class_token_position != "end":
            raise ClipCacheError("heads.cocoop.class_token_position must be 'end' (their prompts end with the name), "
                                 f"got {params.class_token_position!r}")

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, width = shapes["dim"], shapes["width"]
        if dim < 16:
            raise ClipCacheError(f"CoCoOp's meta-net has D/16 hidden units: the feature size {dim} is under 16")
        self.meta_net = nn.Sequential(OrderedDict([("linear1", nn.Linear(dim, dim // 16)), ("relu", nn.ReLU()),
                                                   ("linear2", nn.Linear(dim // 16, width))]))

    def fit(self, data: FitData) -> CoCoOp:
        self.start(data, dim=int(data.train.array("global").shape[1]))
        train(self, data, self.schedule(data))
        return self

    def shifted_features(self, tower: TextTower, images: torch.Tensor) -> torch.Tensor:
        """Normalised class features [B, C, D] of each image's own prompts (context + meta_net(f_i))."""
        context = self.context
        classes = context.slots.shape[0]
        words = context.words(tower)  # [C, L, W]
        shift = self.meta_net(images)  # [B, W]
        ctx = context.ctx.unsqueeze(0) + shift.unsqueeze(1)  # [1, n_ctx, W] + [B, 1, W] -> [B, n_ctx, W]
        b = images.shape[0]
        filled = torch.stack([context.prompts(words, shifted) for shifted in ctx])  # [B, C, L, W]
        ids = context.ids.repeat(b, 1)  # [B*C, L]
        text = tower.encode(filled.reshape(b * classes, *filled.shape[2:]), ids)  # [B*C, L, W] -> [B*C, D]
        return normalize(text).reshape(b, classes, -1)  # [B*C, D] -> [B, C, D]

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tower, images = self.tower(), batch["global"]
        step = images.shape[0] if torch.is_grad_enabled() else self.params.score_images
        out = []
        for start in range(0, images.shape[0], step):
            chunk = images[start : start + step]  # [b, D]
            text = self.shifted_features(tower, chunk)  # [b, C, D]
            out.append(self.logit_scale * torch.einsum("bd,bcd->bc", chunk, text))  # [b, D] x [b, C, D] -> [b, C]
        return torch.cat(out)

"""CLIP-Adapter: a residual bottleneck MLP on the image features (optionally on the text features too).

Paper: Gao et al., "CLIP-Adapter: Better Vision-Language Models with Feature Adapters", arXiv 2110.04544.
A(x) = ReLU(W2 ReLU(W1 x)) with hidden size D / reduction (4); x' = ratio * A(x) + (1 - ratio) * x (ratio 0.2);
logits = scale * cos(x', t) with t the text classifier (or t' from the text adapter). Trained with cross-entropy on a
random augmented view per image per step, with CoOp's schedule that the paper builds on (SGD lr 2e-3, batch 32,
cosine, one warm-up epoch at 1e-5; 200 epochs); the last epoch is kept, as in the authors' code (`keep: best_val`
keeps the epoch best on validation instead).
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import nn

from pipeline.head_params.clip_adapter import REQUIRES, CLIPAdapterParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.inputs import FitData
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import clip_logits, normalize
from pipeline.heads.registry import register_head


def bottleneck(dim: int, reduction: int) -> nn.Sequential:
    hidden = max(1, dim // reduction)
    return nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.ReLU(inplace=True),
                         nn.Linear(hidden, dim, bias=False), nn.ReLU(inplace=True))


@register_head("clip_adapter")
class CLIPAdapter(Head):
    Params = CLIPAdapterParams
    validation_free = (("keep", "last"),)  # its authors' choice without val
    requires = REQUIRES
    novel_classes = True  # its classes enter only through the text features (base-to-novel)

    image_adapter: nn.Sequential
    text_adapter: nn.Sequential | None

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes = shapes["dim"], shapes["classes"]
        self.text_buffers(classes, dim)
        self.image_adapter = bottleneck(dim, self.params.reduction)
        self.text_adapter = bottleneck(dim, self.params.reduction) if self.params.text_adapter else None

    def fit(self, data: FitData) -> CLIPAdapter:
        p = self.params
        self.prepare(data, p.template_set, dim=data.train.array("global").shape[1], classes=data.n_classes)
        train(self, data, Schedule("sgd", p.lr, p.weight_decay, p.epochs, p.batch_size, warmup_epochs=1, keep=p.keep,
                                   lr_schedule="dassl",
                                   min_steps=p.min_steps))
        return self

    def residual(self, x: torch.Tensor, adapter: nn.Module) -> torch.Tensor:
        return normalize(self.params.ratio * adapter(x) + (1 - self.params.ratio) * x)

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self.residual(batch["global"], self.image_adapter)  # [B, D]
        text = self.residual(self.class_weights, self.text_adapter) if self.text_adapter else self.class_weights
        return clip_logits(image, text, self.logit_scale)

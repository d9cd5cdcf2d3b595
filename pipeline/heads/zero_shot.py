"""Zero-shot CLIP: the prompt-ensemble classifier of the cached text features.

Paper: Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", arXiv 2103.00020.
Logits = exp(logit_scale) * cos(image, class weights); the scale is the model's own (100 for trained CLIP).
The default classifier is CoOp's hand-crafted template per data set, the zero-shot baseline of CoOp, CLIP-Adapter,
VT-CLIP and CAVPT; Tip-Adapter, GDA and ProKeR report theirs with `reference` (the 7 templates on ImageNet).
"""

from __future__ import annotations

from typing import Unpack

import torch

from pipeline.head_params.zero_shot import REQUIRES, ZeroShotParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.inputs import FitData
from pipeline.heads.registry import register_head

    # 'tip7' or CLIP's 80-template 'imagenet80'


@register_head("zero_shot")
class ZeroShot(Head):
    Params = ZeroShotParams
    validation_free = ()  # validation-free as it is (reads no val)
    requires = REQUIRES
    novel_classes = True  # its classes enter only through the text features (base-to-novel)

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        self.text_buffers(shapes["classes"], shapes["dim"])

    def fit(self, data: FitData) -> ZeroShot:
        self.prepare(data, self.params.template_set, dim=data.train.array("global").shape[1], classes=data.n_classes)
        return self

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.zero_shot(batch["global"])

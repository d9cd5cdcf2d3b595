"""TaskRes: a learned residual added to the zero-shot text classifier.

Paper: Yu, Lu, Jin, Chen, Wang, "Task Residual for Tuning Vision-Language Models", CVPR 2023, arXiv 2211.10277.
Followed from the authors' code, github geekyutao/TaskRes at 5195359661d6bef661090c33b81aacfc7d7cc181:
trainers/taskres.py (TaskResLearner, CustomCLIP, _get_base_text_features), configs/trainers/TaskRes/
adam_lr2e-3_B256_ep100.yaml and _ep200.yaml, train_regular.sh (the "regular base" runs):
- the base t: per class, the mean of the raw text embeddings of its templates (pipeline/heads/text_base.py: CoOp's
  template; on ImageNet the 7-template ensemble and CoOp's, 8 in all); frozen;
- the residual x: a [C, D] parameter started at zero; the classifier is t' = t + alpha x, normalised per class;
  logits = exp(logit_scale) cos(f, t'); cross-entropy on a random augmented view per image per step;
- Adam (weight decay 5e-4, Dassl's default), lr 2e-3 (2e-4 on ImageNet), batch 256, Dassl's cosine stepped per
  epoch after one constant warm-up epoch at 1e-5; 100 epochs at 1-4 shots and 200 at 8-16 shots (`epochs: 0`);
  alpha 0.5 (1.0 on Oxford Flowers); the last epoch kept (Dassl's default; no validation is read to choose).
  With `per_dataset: true` the ImageNet learning rate and the Flowers alpha apply by the cache's layout
  (resources/per_dataset.json).
Departures: the image features are the cache's (fp32 on the CPU, fp16 where encoded with CUDA autocast) where the
authors run CLIP in fp16; every image is seen once per epoch (the authors' Dassl loader drops the last partial batch
once a split holds at least 256 images); the "enhanced base" (a text projection the authors fine-tuned and publish
as checkpoints) is not offered.
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import nn

from pipeline.head_params.taskres import REQUIRES, TaskResParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.inputs import FitData
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import clip_logits, normalize
from pipeline.heads.registry import register_head
from pipeline.heads.text_base import raw_base


def taskres_epochs(shots: int | None) -> int:
    """train_regular.sh: the ep100 configs at 1, 2 and 4 shots, the ep200 configs at 8 and 16."""
    return 100 if (shots or 16) <= 4 else 200


@register_head("taskres")
class TaskRes(Head):
    Params = TaskResParams
    validation_free = (("keep", "last"),)  # its authors' choice without val
    requires = REQUIRES

    base: torch.Tensor  # [C, D] raw template-mean text embeddings (frozen)
    residual: nn.Parameter  # [C, D] the task residual x

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        classes, dim = shapes["classes"], shapes["dim"]
        self.register_buffer("base", torch.zeros(classes, dim))
        self.register_buffer("logit_scale", torch.zeros(()))
        self.residual = nn.Parameter(torch.zeros(classes, dim))

    def fit(self, data: FitData) -> TaskRes:
        self.use_dataset_values(data)
        p = self.params
        base = raw_base(data.text, p.template_set, data.device)  # [C, D]
        self.prepare(data, None, dim=base.shape[1], classes=base.shape[0])
        self.base.copy_(base)
        self.logit_scale.fill_(data.text.logit_scale)
        epochs = p.epochs or taskres_epochs(data.train.provenance["split"].get("shots"))
        train(self, data, Schedule("adam", p.lr, p.weight_decay, epochs, p.batch_size, p.warmup_epochs, p.warmup_lr,
                                   keep=p.keep, lr_schedule="dassl"))
        return self

    def classifier(self) -> torch.Tensor:
        """[C, D] the normalised t + alpha x."""
        return normalize(self.base + self.params.residual_scale * self.residual)

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return clip_logits(batch["global"], self.classifier(), self.logit_scale)  # [B, C]

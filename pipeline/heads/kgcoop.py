"""KgCoOp: CoOp whose learned class embeddings are kept near the hand-crafted prompt's (knowledge-guided context).

Paper: Yao, Zhang, Xu, "Visual-Language Prompt Tuning with Knowledge-guided Context Optimization", CVPR 2023,
arXiv 2303.13283. Code: github htyao89/KgCoOp at c43ccc32c8739f64b165cfa205fcc6c0f5bb5b17, KgCoOp/trainers/kgcoop.py
(CustomCLIP.forward, KgCoOp.forward_backward), configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml, scripts/
base2new_train.sh. The loss of a minibatch is

    CE(logit_scale * f @ t^T, y) + w * (1 - mean_c cos(t_c, t0_c))

where t_c is class c's text feature from the learned prompt and t0_c CLIP's feature of the data set's hand-crafted
prompt (their CUSTOM_TEMPLATES, CoOp's per-data-set template: our cached 'coop' set). The paper writes the
distance as a squared Euclidean norm; the code's 1 - cosine is what we follow (for unit vectors it is half of it).
Defaults from their scripts: w = 8.0, the context initialised from "a photo of a" (4 tokens, their CTX_INIT; the
class token at the end, one shared context), SGD lr 0.002 (momentum 0.9, weight decay 5e-4), batch 128, 100 epochs
after one constant warm-up epoch at 1e-5 inside them, Dassl's cosine; the last epoch is kept.
Departures: the image side is a cached augmented view per image (CoOp's rule here); float32 everywhere (their
default precision is fp16); t0 is the cached text feature (the same frozen tower, run at encode time).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.head_params.kgcoop import KgCoOpParams
from pipeline.heads.coop import CoOp
from pipeline.heads.inputs import FitData
from pipeline.heads.loop import train
from pipeline.heads.registry import register_head


@register_head("kgcoop")
class KgCoOp(CoOp):
    Params = KgCoOpParams

    def fit(self, data: FitData) -> KgCoOp:
        self.start(data)
        anchor = data.class_weights(self.params.template_set)  # [C, D] normalised hand-crafted class features
        train(self, data, self.schedule(data), loss_fn=lambda batch: self.loss(batch, anchor))
        return self

    def loss(self, batch: dict[str, torch.Tensor], anchor: torch.Tensor) -> torch.Tensor:
        """Cross-entropy plus w times one minus the mean cosine of the learned and hand-crafted class features."""
        text = self.context.features(self.tower())  # [C, D] normalised
        logits = self.logit_scale * batch["global"] @ text.T  # [B, D] x [D, C] -> [B, C]
        distance = 1.0 - F.cosine_similarity(text, anchor, dim=1, eps=1e-7).mean()
        return F.cross_entropy(logits, batch["labels"]) + self.params.w * distance

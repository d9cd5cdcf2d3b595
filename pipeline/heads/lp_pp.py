"""LP++: a linear probe blended with the text classifier through class-wise weights.

Paper: Huang et al., "LP++: A Surprisingly Strong Linear Probe for Few-Shot CLIP", arXiv 2404.02285.
Logits = scale * (f W^T + alpha (.) f T^T): W [C, D] initialised at the class centroids of the normalised view
features, alpha [C] the class-wise blending weights of the text logits (initialised at 1). Where we depart: the
paper optimises W and alpha by block-coordinate majorise-minimise steps with data-driven step sizes; we use
full-batch Adam on a random augmented view per image per epoch, keeping the epoch best on validation (documented
parameters lr and epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.heads.base import Head
from pipeline.heads.data import FitData, view_blocks
from pipeline.heads.registry import register_head
from pipeline.train.loop import Schedule, train


@dataclass(frozen=True)
class LPPlusPlusParams:
    template_set: str = "tip7"  # text classifier blended in
    lr: float = 1e-3
    epochs: int = 300
    weight_decay: float = 0.0


@register_head("lp_pp")
class LPPlusPlus(Head):
    Params = LPPlusPlusParams
    requires = frozenset({"global", "views"})

    def setup(self, dim: int, classes: int) -> None:
        super().setup(dim=dim, classes=classes)
        self.text_buffers(classes, dim)
        self.weight = torch.nn.Parameter(torch.zeros(classes, dim))  # [C, D]
        self.alpha = torch.nn.Parameter(torch.ones(classes))  # [C]

    def fit(self, data: FitData) -> LPPlusPlus:
        labels, classes = data.labels(data.train), data.n_classes
        sums = torch.zeros(classes, data.train.array("global").shape[1], device=data.device)  # [C, D]
        for block in view_blocks(data.train, data.device):  # streamed: one view [N, D] at a time
            sums.index_add_(0, labels, block)
        self.prepare(data, self.params.template_set, dim=sums.shape[1], classes=classes)
        counts = torch.bincount(labels, minlength=classes).clamp(min=1) * data.train.n_views
        with torch.no_grad():
            self.weight.copy_(sums / counts[:, None])  # class centroids of the view features
        p = self.params
        train(self, data, Schedule("adamw", p.lr, p.weight_decay, p.epochs, batch_size=max(data.train.n, 1)))
        return self

    def block_logits(self, block: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = block["global"]
        text = feats @ self.class_weights.T  # [N, D] @ [D, C]
        return self.logit_scale * (feats @ self.weight.T + self.alpha * text)

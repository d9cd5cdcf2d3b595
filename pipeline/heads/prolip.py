"""ProLIP: the image tower's final projection fine-tuned on the cached pooled features, held near its pre-trained value
by a squared-distance penalty.

Paper: Fahes, Vu, Bursuc, Pérez, de Charette, "CLIP's Visual Embedding Projector is a Few-shot Cornucopia",
arXiv 2410.05270. Followed from the authors' code, github astra-vision/ProLIP at
b43e795cbf0b53a9b0aa83cf4f47d9755896ba6f: methods/ProLIP.py (VisProjViT, VisProjRN, forward, search_init_hp),
utils.py (clip_classifier), configs/base.yaml and configs/experiments/few_shot_few_val.yaml:
- W starts at the model's projection (ViT: `proj` [width, D]; ResNet: the attention pool's `c_proj`, its bias frozen),
  read from the frozen model the cache was encoded with (the one encoder part this head builds, at fit only);
- each epoch is one full-batch step on every training image through one cached augmented view, the views taken in
  the authors' cycle (1, 2, ..., V - 1, 0, 1, ...); logits = logit_scale cos(x W (+ b), t) with t the normalised
  template classifier (CoOp's template; ImageNet: the 7-template ensemble);
- loss = cross-entropy + lambda ||W - W0||^2 (summed), lambda = 1 / N for N shots (the authors' validation-free rule;
  `lambda_rule: 1/N2` or `fixed` with `lambda_v`); Adam (eps 1e-4), lr 1e-5 (their base config), cosine over 300
  epochs stepped per epoch; the last epoch kept;
- `search: true` is their few-shot-validation setting: every (lr, lambda) of lr in 1e-2 ... 1e-8 and lambda in 10 ...
  1e-4, 0 trained in full and scored on the validation split, lr outer, the first strictly best kept.
Departures: the pool holds the cache's views (`encode.views.count`, 10 by default) where the authors save 300; the
model's logit scale for their 100; float32 where they run the features in float16.
Needs `encode.features.pooled: true`.
"""

from __future__ import annotations

import math
from typing import Unpack

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.head_params.prolip import REQUIRES, ProLIPParams
from pipeline.heads.base import Shapes, recorded_val_accuracy
from pipeline.heads.inputs import FitData
from pipeline.heads.maths import clip_logits, normalize
from pipeline.heads.prompted import EncoderHead
from pipeline.heads.registry import register_head

LR_LIST = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)  # search_lr's lists (methods/ProLIP.py forward)
LAMBDA_LIST = (10.0, 1.0, 0.1, 0.01, 0.001, 0.0001, 0.0)


def view_cycle(epochs: int, views: int) -> list[int]:
    """The authors' view of each epoch: cnt goes 1, 2, ..., V - 1, 0, 1, ... (`(cnt + 1) % aug_views`)."""
    out, cnt = [], 0
    for _ in range(epochs):
        cnt = 0 if (cnt + 1) % views == 0 else cnt + 1
        out.append(cnt)
    return out


@register_head("prolip")
class ProLIP(EncoderHead):
    Params = ProLIPParams
    validation_free = (("search", False), ("lambda_rule", "1/N"))  # its authors' choice without val
    requires = REQUIRES
    runs = ("image projection (at fit)",)

    weight: nn.Parameter  # [width, D] the fine-tuned projection
    bias: torch.Tensor  # [D] the ResNet projection's frozen bias (zeros for a ViT)
    class_weights: torch.Tensor  # [C, D]
    logit_scale: torch.Tensor  # []

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        self.text_buffers(shapes["classes"], shapes["dim"])
        self.weight = nn.Parameter(torch.zeros(shapes["width"], shapes["dim"]))
        self.register_buffer("bias", torch.zeros(shapes["dim"]))

    def batch_inputs(self) -> tuple[str, ...]:
        return ("pooled",)

    def lambda_for(self, shots: int) -> float:
        rule = self.params.lambda_rule
        return 1 / shots if rule == "1/N" else 1 / shots**2 if rule == "1/N2" else self.params.lambda_v

    def fit(self, data: FitData) -> ProLIP:
        from pipeline.backbone.image import final_projection

        # read first: a cache without pooled views is named by the reader before any model is built
        views = torch.from_numpy(data.train.read("views/pooled")).float().to(data.device)  # [V, N, width]
        self.bind(data.train.provenance["encoder"], data.train.build.get("sources"))
        start, bias = final_projection(self.encoder(data.device).visual)
        start = start.detach().float().clone()  # [width, D]
        self.prepare(data, self.params.template_set, dim=start.shape[1], classes=data.n_classes, width=start.shape[0])
        self.bias.copy_(bias.detach().float() if bias is not None else torch.zeros(start.shape[1]))
        labels = data.labels(data.train)
        shots = int(data.train.provenance["split"]["shots"] or 1)
        self.history = []
        if self.params.search:
            lr, lam = self.search(start, views, labels, data)
        else:
            lr, lam = self.params.lr, self.lambda_for(shots)
        self.weight.data.copy_(self.trained(start, views, labels, lr, lam, record=True))
        self.selected.update({"lr": lr, "lambda": lam, "epoch": self.params.epochs, "keep": "last",
                              "val_acc": recorded_val_accuracy(self, data.val)})
        return self

    def trained(self, start: torch.Tensor, views: torch.Tensor, labels: torch.Tensor, lr: float, lam: float,
                record: bool = False) -> torch.Tensor:
        """The projection after the authors' epochs from `start` [width, D] (`record`: its losses in `history`)."""
        weight = nn.Parameter(start.clone())
        optimizer = torch.optim.Adam([weight], lr=lr, eps=1e-4)
        epochs = self.params.epochs
        with torch.enable_grad():
            for epoch, view in enumerate(view_cycle(epochs, views.shape[0])):
                for group in optimizer.param_groups:  # CosineAnnealingLR(T_max = epochs), stepped per epoch
                    group["lr"] = lr * (1 + math.cos(math.pi * epoch / epochs)) / 2
                features = normalize(views[view] @ weight + self.bias)  # [N, width] @ [width, D]
                logits = clip_logits(features, self.class_weights, self.logit_scale)
                loss = F.cross_entropy(logits, labels) + lam * (weight - start).pow(2).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if record:
                    self.history.append({"epoch": epoch + 1, "train_loss": float(loss.item()), "view": view,
                                         "lr": optimizer.param_groups[0]["lr"]})
        return weight.detach()

    def search(self, start: torch.Tensor, views: torch.Tensor, labels: torch.Tensor,
               data: FitData) -> tuple[float, float]:
        """search_lr: every (lr, lambda), lr outer; the first strictly best validation accuracy."""
        val = torch.from_numpy(data.val.read("pooled")).float().to(data.device)  # [N_val, width]
        val_labels = data.labels(data.val)
        best, chosen = -1, (LR_LIST[0], LAMBDA_LIST[0])
        for lr in LR_LIST:
            for lam in LAMBDA_LIST:
                weight = self.trained(start, views, labels, lr, lam)
                features = normalize(val @ weight + self.bias)
                correct = int((clip_logits(features, self.class_weights, self.logit_scale).argmax(-1)
                               == val_labels).sum())
                if correct > best:
                    best, chosen = correct, (lr, lam)
        self.selected["search_val_acc"] = best / max(len(val_labels), 1)
        return chosen

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        features = normalize(batch["pooled"] @ self.weight + self.bias)  # [B, width] @ [width, D]
        return clip_logits(features, self.class_weights, self.logit_scale)



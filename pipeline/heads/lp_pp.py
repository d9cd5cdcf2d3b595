"""LP++: a linear probe blended with the text classifier through class-wise weights.

Paper: Huang et al., "LP++: A Surprisingly Strong Linear Probe for Few-Shot CLIP", arXiv 2404.02285. As the authors'
code does (github FereshteShakeri/FewShot-CLIP-Strong-Baseline at f81054f, `methods/linear_probe_p2.py`):
- logits = f W^T + b + alpha (.) f T^T on normalised features, alpha [C] one weight per class, no logit scale;
- W starts at the per-class *sums* of the training features, b at nn.Linear's default U(+-1/sqrt(D)), alpha at
  250 * mean_i f_i . t_(y_i) for every class;
- step sizes from the data: lr_W = 4 N / lambda_max(F^T F), lr_alpha = N / (4 max_c sum_i (f_i . t_c)^2);
- 300 full-batch iterations: heavy-ball SGD (momentum 0.9) on W and b every iteration, a plain gradient step on alpha
  every 10th iteration with alpha's gradient accumulated since the start (the authors never zero it);
- the iteration kept is the last whose validation accuracy is >= the best so far ("last best").
Training features: one augmented view per image (the authors extract one random crop per image), here a seeded
random cached view per image. Where we depart: float32 instead of the authors' float16. `solver: adam` is our
earlier variant (centroid init, alpha 1, logits scaled by the model's logit scale, full-batch AdamW on a random view
per image per epoch with the shared training loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Unpack

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import ClipCacheError
from pipeline.head_params.lp_pp import REQUIRES, LPPlusPlusParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.inputs import FitData, each_view, global_feats
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import normalize
from pipeline.heads.registry import register_head

SOLVERS = ("authors", "adam")


@dataclass
class LPState:
    """W [C, D], b [C], alpha [C] of LP++ and the iteration they come from."""

    weight: torch.Tensor
    bias: torch.Tensor
    alpha: torch.Tensor
    iteration: int
    val_acc: float


def lp_logits(feats: torch.Tensor, text: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
              alpha: torch.Tensor) -> torch.Tensor:
    """f W^T + b + alpha (.) f T^T -> [N, C]."""
    return feats @ weight.T + bias + alpha * (feats @ text.T)  # [N, D] @ [D, C]


def step_sizes(feats: torch.Tensor, text: torch.Tensor) -> tuple[float, float]:
    """(lr_W, lr_alpha) of the authors: 4N / lambda_max(F^T F) and N / (4 max_c sum_i (f_i . t_c)^2)."""
    n = feats.shape[0]
    gram = (feats.T @ feats).double()  # [D, N] @ [N, D]
    lr_w = 4 * n / float(torch.linalg.eigvalsh(gram)[-1])
    lr_alpha = n / (4 * float(((feats @ text.T) ** 2).sum(0).max()))  # [N, C] -> [C] -> max
    return lr_w, lr_alpha


def fit_lp_pp(feats: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, val: torch.Tensor,
              val_labels: torch.Tensor, bias: torch.Tensor, iterations: int, alpha_every: int) -> LPState:
    """The authors' procedure from normalised features [N, D], text [C, D] and the initial bias [C]."""
    classes = text.shape[0]
    weight = torch.zeros(classes, feats.shape[1], device=feats.device).index_add_(0, labels, feats)  # class sums
    alpha = torch.full((classes,), 250 * float((feats * text[labels]).sum(-1).mean()), device=feats.device)
    lr_w, lr_alpha = step_sizes(feats, text)
    weight, bias, alpha = (t.clone().requires_grad_(True) for t in (weight, bias, alpha))
    optimizer = torch.optim.SGD([weight, bias], lr=lr_w, momentum=0.9)
    best: LPState | None = None
    for it in range(iterations):
        loss = F.cross_entropy(lp_logits(feats, text, weight, bias, alpha), labels)
        optimizer.zero_grad()  # W and b only: alpha's gradient accumulates, as in the authors' code
        loss.backward()
        optimizer.step()
        if (it + 1) % alpha_every == 0:
            with torch.no_grad():
                assert alpha.grad is not None  # alpha is in the loss: backward gave it a gradient
                alpha -= lr_alpha * alpha.grad
        with torch.no_grad():
            acc = float((lp_logits(val, text, weight, bias, alpha).argmax(-1) == val_labels).float().mean())
            if best is None or acc >= best.val_acc:
                best = LPState(weight.detach().clone(), bias.detach().clone(), alpha.detach().clone(), it + 1, acc)
    if best is None:
        raise ClipCacheError(f"heads.lp_pp.epochs must be at least 1, got {iterations}")
    return best


def one_view_per_image(data: FitData, seed: int) -> torch.Tensor:
    """Normalised features [N, D] of one seeded random cached view per image (the un-augmented ones without views)."""
    if not data.train.n_views:
        return global_feats(data.train, data.device)
    chosen = np.random.default_rng(seed).integers(0, data.train.n_views, size=data.train.n)
    rows = np.arange(data.train.n)
    return normalize(torch.from_numpy(data.train.read_views("views/global", rows, chosen))).to(data.device)  # [N, D]


@register_head("lp_pp")
class LPPlusPlus(Head):
    Params = LPPlusPlusParams
    requires = REQUIRES
    weight: torch.Tensor  # [C, D]
    bias: torch.Tensor  # [C]
    alpha: torch.Tensor  # [C] class-wise weight of the text classifier

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes = shapes["dim"], shapes["classes"]
        self.text_buffers(classes, dim)
        self.weight = torch.nn.Parameter(torch.zeros(classes, dim))  # [C, D]
        self.bias = torch.nn.Parameter(torch.zeros(classes))  # [C]
        self.alpha = torch.nn.Parameter(torch.ones(classes))  # [C]

    def fit(self, data: FitData) -> LPPlusPlus:
        p = self.params
        if p.solver not in SOLVERS:
            raise ClipCacheError(f"heads.lp_pp.solver must be one of {', '.join(SOLVERS)}, got {p.solver!r}")
        self.prepare(data, p.template_set, dim=data.train.array("global").shape[1], classes=data.n_classes)
        if p.solver == "adam":
            return self.fit_adam(data)
        feats, labels = one_view_per_image(data, data.seed), data.labels(data.train)
        bound = 1 / feats.shape[1] ** 0.5
        bias = torch.empty(data.n_classes, device=data.device).uniform_(-bound, bound)  # nn.Linear's default
        state = fit_lp_pp(feats, labels, self.class_weights, global_feats(data.val, data.device),
                          data.labels(data.val), bias, p.epochs, p.alpha_every)
        with torch.no_grad():
            self.weight.copy_(state.weight)
            self.bias.copy_(state.bias)
            self.alpha.copy_(state.alpha)
        self.logit_scale.fill_(1.0)  # the authors' logits carry no scale
        self.selected.update({"epoch": state.iteration, "val_acc": state.val_acc, "keep": "last_best"})
        return self

    def fit_adam(self, data: FitData) -> LPPlusPlus:
        """Our earlier variant: centroid init, alpha 1, AdamW through the shared loop (best epoch on validation)."""
        labels, classes = data.labels(data.train), data.n_classes
        sums = torch.zeros(classes, self.weight.shape[1], device=data.device)  # [C, D]
        for view in each_view(data.train, data.device):  # streamed: one view [N, D] at a time
            sums.index_add_(0, labels, view)
        counts = torch.bincount(labels, minlength=classes).clamp(min=1) * max(data.train.n_views, 1)
        with torch.no_grad():
            self.weight.copy_(sums / counts[:, None])  # class centroids of the view features
            self.bias.zero_()
        self.bias.requires_grad_(False)
        p = self.params
        train(self, data, Schedule("adamw", p.lr, p.weight_decay, p.epochs, batch_size=max(data.train.n, 1),
                                   keep="best_val"))
        return self

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = batch["global"]
        return self.logit_scale * lp_logits(feats, self.class_weights, self.weight, self.bias, self.alpha)

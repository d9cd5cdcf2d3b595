"""GDA: Gaussian discriminant analysis on all augmented views, ensembled with zero-shot CLIP.

Paper: Wang et al., "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation", arXiv 2402.04087.
Class means mu_k and one shared covariance from every normalised view feature of the training images, streamed view
by view (sums and scatter in float64, never all views in memory). The precision is the paper's shrinkage estimator
D * pinv((n - 1) S + tr(S) I), S the within-class covariance; W = mu P, b = log(1/C) - diag(mu P mu^T) / 2.
Logits = zero-shot (the model's scale: 100 f T^T for trained CLIP) + alpha * (f W^T + b), alpha searched on validation
over the authors' 7 values 10^-4, 10^-3, ..., 10^2 (github mrflogs/ICLR24 at 560fe21, `main_few_shots.py`; ties to the
smallest). As there: every augmented view is a sample, the classifier is CoOp's template (7 templates on ImageNet).
Where we depart: the authors tune alpha on ImageNet's test set (their val = test there); we never read test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Unpack

import torch

from pipeline.errors import ClipCacheError
from pipeline.heads.base import Head, Shapes
from pipeline.heads.grid import best_of, logspace_grid
from pipeline.heads.inputs import FitData, each_view, global_feats
from pipeline.heads.maths import accuracy
from pipeline.heads.registry import register_head


@dataclass(frozen=True)
class GDAParams:
    template_set: str = "reference"  # the authors' rule: CoOp's template, the 7-template ensemble on ImageNet
    alpha_grid: tuple[float, float, int] = (-4.0, 2.0, 7)  # log10 (start, stop, steps) of the ensemble weight


def class_statistics(data: FitData, n_classes: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Streaming class means [C, D] and within-class scatter [D, D] (float64) over all views; and the count."""
    labels = data.labels(data.train)
    counts, n = torch.zeros(n_classes, dtype=torch.float64, device=data.device), 0
    sums: torch.Tensor | None = None  # [C, D], allocated with the first view
    second: torch.Tensor | None = None  # [D, D]
    for view in each_view(data.train, data.device):
        x = view.double()  # [N, D]
        if sums is None or second is None:
            sums = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, device=data.device)
            second = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=data.device)
        sums.index_add_(0, labels, x)
        counts += torch.bincount(labels, minlength=n_classes).double()
        second += x.T @ x  # [D, N] @ [N, D]
        n += x.shape[0]
    if sums is None or second is None:
        raise ClipCacheError(f"{str(data.train.path)!r} holds no augmented views: GDA's statistics are over them")
    means = sums / counts[:, None]  # [C, D]
    scatter = second - (means * counts[:, None]).T @ means  # sum x x^T - sum_k n_k mu_k mu_k^T  [D, D]
    return means, scatter, n


def shrinkage_precision(scatter: torch.Tensor, n: int) -> torch.Tensor:
    """The paper's D * pinv((n-1) Sigma + tr(Sigma) I) with Sigma = scatter / (n - 1)."""
    dim = scatter.shape[0]
    sigma = scatter / (n - 1)
    identity = torch.eye(dim, dtype=sigma.dtype, device=sigma.device)
    return dim * torch.linalg.pinv((n - 1) * sigma + torch.trace(sigma) * identity)


@register_head("gda")
class GDA(Head):
    Params = GDAParams
    requires = frozenset({"global", "views"})
    weight: torch.Tensor  # [C, D] = mu P
    bias: torch.Tensor  # [C]
    alpha: torch.Tensor  # [] weight of the GDA logits in the ensemble

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes = shapes["dim"], shapes["classes"]
        self.text_buffers(classes, dim)
        self.register_buffer("weight", torch.zeros(classes, dim))  # [C, D]
        self.register_buffer("bias", torch.zeros(classes))  # [C]
        self.register_buffer("alpha", torch.ones(()))

    def fit(self, data: FitData) -> GDA:
        classes = data.n_classes
        means, scatter, n = class_statistics(data, classes)
        self.prepare(data, self.params.template_set, dim=means.shape[1], classes=classes)
        precision = shrinkage_precision(scatter, n)  # [D, D]
        weight = means @ precision  # [C, D] @ [D, D]
        bias = torch.log(torch.tensor(1.0 / classes, dtype=torch.float64)) - 0.5 * (weight * means).sum(-1)  # [C]
        self.weight.copy_(weight.float())
        self.bias.copy_(bias.float())
        self.search(data)
        return self

    def gda_logits(self, feats: torch.Tensor) -> torch.Tensor:
        return feats @ self.weight.T + self.bias  # [N, D] @ [D, C]

    @torch.no_grad()
    def search(self, data: FitData) -> None:
        feats, labels = global_feats(data.val, data.device), data.labels(data.val)
        zero_shot, gda = self.zero_shot(feats), self.gda_logits(feats)
        scores = {(alpha,): accuracy(torch.add(zero_shot, gda, alpha=alpha), labels)
                  for alpha in logspace_grid(self.params.alpha_grid)}
        (alpha,) = best_of(scores)
        self.alpha.fill_(alpha)
        self.selected.update({"alpha": alpha, "val_acc": scores[(alpha,)]})

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = batch["global"]
        return self.zero_shot(feats) + self.alpha * self.gda_logits(feats)

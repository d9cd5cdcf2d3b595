"""Linear probe: L2-regularised multinomial logistic regression on the global features.

Paper: Radford et al., "Learning Transferable Visual Models From Natural Language Supervision", arXiv 2103.00020
(the linear-probe protocol: logistic regression fit with L-BFGS, the L2 strength swept on validation over
10^-6 ... 10^6). We sweep a coarse log grid, then refine between the best value's neighbours (CLIP's code does a
similar parametric search instead of all 96 steps). Ties on validation go to the weaker regularisation. Loss: mean
cross-entropy + lambda/2 ||W||^2 on normalised features; the un-augmented image features are used by default, as in
CLIP (`use_views` adds every view).
"""

from __future__ import annotations

from typing import Unpack

import torch
import torch.nn.functional as F

from pipeline.head_params.linear_probe import REQUIRES, LinearProbeParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.grid import logspace_grid
from pipeline.heads.inputs import FitData, each_view, global_feats
from pipeline.heads.maths import accuracy
from pipeline.heads.registry import register_head


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, lam: float, max_iter: int,
                 init: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(W [C, D], b [C]) minimising mean CE + lam/2 ||W||^2, by full-batch L-BFGS (warm-started from init)."""
    weight = (init[0].clone() if init else torch.zeros(classes, x.shape[1], device=x.device)).requires_grad_(True)
    bias = (init[1].clone() if init else torch.zeros(classes, device=x.device)).requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-7)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * lam * (weight**2).sum()  # [N, D] @ [D, C]
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def weakest_best(scores: dict[tuple[float], float]) -> float:
    """The lambda of the best validation accuracy; ties go to the weakest regularisation (the smallest lambda), as
    the CLIP protocol's sweep does (at strong lambda the predictions hang on the solver's tolerance)."""
    top = max(scores.values())
    return min(lam for (lam,), score in scores.items() if score == top)


@register_head("linear_probe")
class LinearProbe(Head):
    Params = LinearProbeParams
    requires = REQUIRES
    weight: torch.Tensor  # [C, D]
    bias: torch.Tensor  # [C]

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes = shapes["dim"], shapes["classes"]
        self.register_buffer("weight", torch.zeros(classes, dim))
        self.register_buffer("bias", torch.zeros(classes))

    def training_set(self, data: FitData) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = global_feats(data.train, data.device), data.labels(data.train)
        if self.params.use_views and data.train.n_views:
            x = torch.cat([x, *each_view(data.train, data.device)])  # [(1+V) N, D]
            y = y.repeat(1 + data.train.n_views)
        return x, y

    def fit(self, data: FitData) -> LinearProbe:
        x, y = self.training_set(data)
        classes = data.n_classes
        self.prepare(data, None, dim=x.shape[1], classes=classes)
        val, val_y = global_feats(data.val, data.device), data.labels(data.val)
        scores, fits, init = {}, {}, None

        def trial(lam: float) -> None:
            nonlocal init
            init = fits[(lam,)] = fit_logistic(x, y, classes, lam, self.params.max_iter, init)
            scores[(lam,)] = accuracy(val @ init[0].T + init[1], val_y)

        coarse = logspace_grid(self.params.lambda_grid)
        for lam in reversed(coarse):  # strong to weak regularisation, each fit warm-starting the next
            trial(lam)
        best = weakest_best(scores)
        i = coarse.index(best)
        low, high = coarse[max(i - 1, 0)], coarse[min(i + 1, len(coarse) - 1)]
        for lam in torch.logspace(torch.log10(torch.tensor(low)), torch.log10(torch.tensor(high)),
                                  self.params.refine_steps).tolist():
            if (lam,) not in scores:
                trial(lam)
        lam = weakest_best(scores)
        self.weight.copy_(fits[(lam,)][0])
        self.bias.copy_(fits[(lam,)][1])
        self.selected.update({"lambda": lam, "val_acc": scores[(lam,)]})
        return self

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["global"] @ self.weight.T + self.bias

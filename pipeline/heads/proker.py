"""ProKeR: proximal kernel ridge regression around the zero-shot classifier.

Paper: Bendou et al., "ProKeR: A Kernel Perspective on Few-Shot Adaptation of Large Vision-Language Models",
arXiv 2501.11175. With the exponential cosine kernel k(x, y) = exp(-beta (1 - x.y)) on normalised features, the
minimiser of sum_i ||f(x_i) - y_i||^2 + lambda ||f - f_zs||_H^2 is, in closed form,
    f(x) = f_zs(x) + k(x, X) (K + lambda I)^-1 (Y - f_zs(X)).
X: the view-averaged training features (Tip-Adapter's keys); Y: one-hot labels. Our choice where the paper leaves it
open: f_zs is the zero-shot *probability* softmax(scale * cos), so that prior and targets live on the same scale; the
returned logits are f(x) (scores in probability units). beta and lambda are searched on validation; the system is
solved by Cholesky once per (beta, lambda).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.heads.base import Head
from pipeline.heads.data import FitData, global_feats, view_mean_keys
from pipeline.heads.grid import best_of, linspace_grid, logspace_grid
from pipeline.heads.maths import accuracy, cache_kernel, kernel_of, one_hot
from pipeline.heads.registry import register_head


@dataclass(frozen=True)
class ProKeRParams:
    template_set: str = "tip7"  # zero-shot prior's text classifier
    beta_grid: tuple[float, float, int] = (1.0, 10.0, 4)  # (start, stop, steps) of the kernel sharpness
    lambda_grid: tuple[float, float, int] = (-2.0, 1.0, 4)  # log10 (start, stop, steps) of the ridge strength


def solve_dual(kernel: torch.Tensor, residual: torch.Tensor, lam: float) -> torch.Tensor:
    """(K + lambda I)^-1 R by Cholesky -> [M, C]."""
    system = kernel + lam * torch.eye(kernel.shape[0], dtype=kernel.dtype, device=kernel.device)
    return torch.cholesky_solve(residual, torch.linalg.cholesky(system))


@register_head("proker")
class ProKeR(Head):
    Params = ProKeRParams
    requires = frozenset({"global", "views"})

    def setup(self, dim: int, classes: int, keys: int) -> None:
        super().setup(dim=dim, classes=classes, keys=keys)
        self.text_buffers(classes, dim)
        self.register_buffer("keys", torch.zeros(keys, dim))  # [M, D]
        self.register_buffer("dual", torch.zeros(keys, classes))  # [M, C] = (K + lambda I)^-1 (Y - f_zs(X))
        self.register_buffer("beta", torch.ones(()))

    def prior(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.zero_shot(feats), dim=-1)  # [N, C]

    def fit(self, data: FitData) -> ProKeR:
        keys = view_mean_keys(data.train, data.device).double()  # [M, D]
        self.prepare(data, self.params.template_set, dim=keys.shape[1], classes=data.n_classes, keys=keys.shape[0])
        self.keys.copy_(keys.float())
        residual = one_hot(data.labels(data.train), data.n_classes).double() - self.prior(keys.float()).double()  # [M, C]
        val, labels = global_feats(data.val, data.device), data.labels(data.val)
        val_prior = self.prior(val)
        scores, best = {}, None
        key_affinity, val_affinity = keys @ keys.T, val.double() @ keys.T  # [M, M], [N, M]: once for the grid
        with torch.no_grad():
            for beta in linspace_grid(self.params.beta_grid):
                kernel, cross = kernel_of(key_affinity, beta), kernel_of(val_affinity, beta)
                for lam in logspace_grid(self.params.lambda_grid):
                    dual = solve_dual(kernel, residual, lam)
                    scores[(beta, lam)] = accuracy(val_prior + (cross @ dual).float(), labels)  # [N, M] @ [M, C]
                    if best is None or scores[(beta, lam)] > scores[best[0]]:
                        best = ((beta, lam), dual)  # only the best dual is kept (each is [M, C])
        beta, lam = best_of(scores)
        self.dual.copy_(best[1].float())
        self.beta.fill_(beta)
        self.selected.update({"beta": beta, "lambda": lam, "val_acc": scores[(beta, lam)]})
        return self

    def block_logits(self, block: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = block["global"]
        return self.prior(feats) + cache_kernel(feats, self.keys, self.beta) @ self.dual  # [N, M] @ [M, C]

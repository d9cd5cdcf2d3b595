"""ProKeR: proximal kernel ridge regression around the zero-shot classifier.

Paper: Bendou et al., "ProKeR: A Kernel Perspective on Few-Shot Adaptation of Large Vision-Language Models",
arXiv 2501.11175. With the exponential cosine kernel k(x, y) = exp(-beta (1 - x.y)) on normalised features, the
minimiser of sum_i ||f(x_i) - y_i||^2 + lambda ||f - f_zs||_H^2 is, in closed form,
    f(x) = f_zs(x) + k(x, X) (K + lambda I)^-1 (Y - f_zs(X)).
X: the view-averaged training features (Tip-Adapter's keys); Y: one-hot labels. Our choice where the paper leaves it
open: f_zs is the zero-shot *probability* softmax(scale * cos), so that prior and targets live on the same scale; the
returned logits are f(x) (scores in probability units). beta and lambda are searched on validation; the system is
solved by Cholesky once per (beta, lambda), in float64 by default (`solve_dtype`). Cost: O(M^3) per grid point to
fit and 2 N M (D + C) flops to score N queries, because the dual [M, C] is dense; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.errors import ClipCacheError
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
    solve_dtype: str = "float64"  # dtype of the M x M solve; float32 halves memory for large caches (M > ~8000)


def solve_dual(keys: torch.Tensor, residual: torch.Tensor, beta: float, lam: float) -> torch.Tensor:
    """(K + lambda I)^-1 R -> [M, C], K = exp(beta (X X^T - 1)) built and Cholesky-factorised in one [M, M] buffer."""
    system = kernel_of(keys @ keys.T, beta, inplace=True)  # [M, D] @ [D, M]
    system.diagonal().add_(lam)
    factor = torch.linalg.cholesky(system, out=system)  # in place: no second M x M matrix
    return torch.cholesky_solve(residual, factor)


@register_head("proker")
class ProKeR(Head):
    Params = ProKeRParams
    requires = frozenset({"global", "views"})
    scores = "probabilities"

    def setup(self, dim: int, classes: int, keys: int) -> None:
        super().setup(dim=dim, classes=classes, keys=keys)
        self.text_buffers(classes, dim)
        self.register_buffer("keys", torch.zeros(keys, dim))  # [M, D]
        self.register_buffer("dual", torch.zeros(keys, classes))  # [M, C] = (K + lambda I)^-1 (Y - f_zs(X))
        self.register_buffer("beta", torch.ones(()))

    def prior(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.zero_shot(feats), dim=-1)  # [N, C]

    def fit(self, data: FitData) -> ProKeR:
        dtype = {"float64": torch.float64, "float32": torch.float32}.get(self.params.solve_dtype)
        if dtype is None:
            raise ClipCacheError(f"heads.proker.solve_dtype must be float64 or float32, got {self.params.solve_dtype!r}")
        keys = view_mean_keys(data.train, data.device).to(dtype)  # [M, D]
        self.prepare(data, self.params.template_set, dim=keys.shape[1], classes=data.n_classes, keys=keys.shape[0])
        self.keys.copy_(keys.float())
        residual = (one_hot(data.labels(data.train), data.n_classes) - self.prior(keys.float())).to(dtype)  # [M, C]
        val, labels = global_feats(data.val, data.device), data.labels(data.val)
        val_prior = self.prior(val)
        scores, best = {}, None
        val_affinity = val.to(dtype) @ keys.T  # [N, M], once for the grid
        with torch.no_grad():
            for beta in linspace_grid(self.params.beta_grid):
                cross = kernel_of(val_affinity, beta)  # [N, M]
                for lam in logspace_grid(self.params.lambda_grid):
                    dual = solve_dual(keys, residual, beta, lam)  # the kernel is rebuilt per point: memory over time
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

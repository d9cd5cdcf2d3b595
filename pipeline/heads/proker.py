"""ProKeR: proximal kernel ridge regression around the zero-shot classifier.

Paper: Bendou et al., "ProKeR: A Kernel Perspective on Few-Shot Adaptation of Large Vision-Language Models",
arXiv 2501.11175. As the authors' code does (Y. Bendou's ProKeR, github omarnust/BReg-Adapter at f2ecb3d,
`trainers/proker.py` and `main.py`):
- the prior is the raw cosine logits f_zs(x) = x . T^T (normalised image and class features; no logit scale, no
  softmax), and the returned scores are f(x) itself, unscaled;
- the support set is every augmented view of every training image, each normalised (not averaged), with one-hot
  targets (`support: views`; on ImageNet the authors' configs use one augmentation pass, `support: one_view`,
  which `per_dataset` applies there: 10 views of 16,000 images would make a 160,000^2 kernel);
- with k(x, y) = exp(-beta (1 - x . y)): A = (K / lambda + I)^-1 (Y - f_zs(X)) and f(x) = f_zs(x) + k(x, X) A,
  i.e. lambda k(x, X) (K + lambda I)^-1 (Y - f_zs(X)) (the authors' scaling, with the extra factor lambda);
- beta and lambda searched on validation over linear grids (torch.linspace(start, stop, steps)), beta outer,
  lambda inner, ties to the first; `per_dataset: true` uses the authors' per-data-set grids
  (resources/per_dataset.json) on the 11 benchmarks and `beta_grid`/`lambda_grid` elsewhere (their Caltech101 grid).
Where we depart: nothing in the maths. For long lambda grids (more than 27 values: an eigendecomposition costs about
27 Cholesky factorisations) the search diagonalises K once per beta (K = Q diag(s) Q^T) so that each lambda costs one
[N, S] x [S, C] product instead of a fresh solve; the chosen (beta, lambda) is then solved directly. Solves run in
float64 by default (`solve_dtype`; the authors use float32). Cost: O(S^3) per grid point for S support points.
"""

from __future__ import annotations

from typing import Unpack

import torch

from pipeline.errors import ClipCacheError
from pipeline.head_params.proker import REQUIRES, ProKeRParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.grid import best_of, linspace_grid
from pipeline.heads.inputs import FitData, each_view, global_feats, view_mean_keys
from pipeline.heads.maths import accuracy, cache_kernel, kernel_of, one_hot
from pipeline.heads.registry import register_head

SUPPORTS = ("views", "one_view", "mean")
EIGH_AFTER = 27  # lambda values per beta beyond which one eigendecomposition beats a Cholesky per value


def support_set(data: FitData, support: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised support points and their labels: every view [V N, D] ('views'), the first view [N, D]
    ('one_view': one augmentation pass) or the normalised view mean ('mean'); the un-augmented features when the
    cache holds no views."""
    labels = data.labels(data.train)
    if support not in SUPPORTS:
        raise ClipCacheError(f"heads.proker.support must be one of {', '.join(SUPPORTS)}, got {support!r}")
    if not data.train.n_views:
        return global_feats(data.train, data.device), labels
    if support == "mean":
        return view_mean_keys(data.train, data.device), labels
    views = list(each_view(data.train, data.device))  # V x [N, D]
    if support == "one_view":
        return views[0], labels
    return torch.cat(views), labels.repeat(len(views))


def solve_proker(kernel: torch.Tensor, residual: torch.Tensor, lam: float) -> torch.Tensor:
    """A = (K / lambda + I)^-1 R -> [S, C] by Cholesky (K is consumed: scaled and shifted in place)."""
    kernel.div_(lam).diagonal().add_(1.0)
    factor = torch.linalg.cholesky(kernel, out=kernel)
    return torch.cholesky_solve(residual, factor)


@register_head("proker")
class ProKeR(Head):
    Params = ProKeRParams
    requires = REQUIRES
    units = "probabilities"  # a regression onto one-hot targets: for calibration, scores are read in one-hot units
    keys: torch.Tensor  # [S, D] the normalised support points
    dual: torch.Tensor  # [S, C] (K / lambda + I)^-1 (Y - f_zs(X))
    beta: torch.Tensor  # [] kernel sharpness

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes, keys = shapes["dim"], shapes["classes"], shapes["keys"]
        self.text_buffers(classes, dim)
        self.register_buffer("keys", torch.zeros(keys, dim))  # [S, D] every normalised training view
        self.register_buffer("dual", torch.zeros(keys, classes))  # [S, C] = (K / lambda + I)^-1 (Y - f_zs(X))
        self.register_buffer("beta", torch.ones(()))

    def prior(self, feats: torch.Tensor) -> torch.Tensor:
        return feats @ self.class_weights.T  # [N, D] @ [D, C]: raw cosines

    def fit(self, data: FitData) -> ProKeR:
        dtype = {"float64": torch.float64, "float32": torch.float32}.get(self.params.solve_dtype)
        if dtype is None:
            raise ClipCacheError(f"heads.proker.solve_dtype must be float64 or float32, got "
                                 f"{self.params.solve_dtype!r}")
        self.use_dataset_values(data)
        keys, key_labels = support_set(data, self.params.support)  # [S, D], [S]
        self.prepare(data, self.params.template_set, dim=keys.shape[1], classes=data.n_classes, keys=keys.shape[0])
        self.keys.copy_(keys)
        keys = keys.to(dtype)
        residual = (one_hot(key_labels, data.n_classes) - self.prior(self.keys)).to(dtype)  # [S, C]
        scores, dual = self.search(data, keys, residual)
        beta, lam = best_of(scores)
        self.dual.copy_(dual.float())
        self.beta.fill_(beta)
        self.selected.update({"beta": beta, "lambda": lam, "val_acc": scores[(beta, lam)]})
        return self

    @torch.no_grad()
    def search(self, data: FitData, keys: torch.Tensor,
               residual: torch.Tensor) -> tuple[dict[tuple[float, float], float], torch.Tensor]:
        """Validation accuracy of every (beta, lambda), beta outer, lambda inner, and the dual [S, C] of the first
        best (the one `best_of` selects), kept as the search goes so that nothing is solved twice.

        Short lambda grids solve (K / lambda + I) A = R by Cholesky per value; long ones diagonalise K once per beta:
        with K = Q diag(s) Q^T, (K / lambda + I)^-1 R = Q diag(lambda / (s + lambda)) Q^T R.
        """
        val, labels = global_feats(data.val, data.device), data.labels(data.val)
        val_prior = self.prior(val)  # [N, C]
        val_affinity = val.to(keys.dtype) @ keys.T  # [N, D] @ [D, S], once for the grid
        lambdas = linspace_grid(self.params.lambda_grid)
        scores: dict[tuple[float, float], float] = {}
        best, best_acc = residual.new_zeros(residual.shape), -1.0  # [S, C]

        def record(key: tuple[float, float], logits: torch.Tensor) -> bool:
            """Score one (beta, lambda); whether it is the new best, whose dual the caller then keeps."""
            nonlocal best_acc
            scores[key] = accuracy(logits.float(), labels)
            if scores[key] > best_acc:  # strictly: the first best in grid order, as best_of picks
                best_acc = scores[key]
                return True
            return False

        for beta in linspace_grid(self.params.beta_grid):
            kernel = kernel_of(keys @ keys.T, beta, inplace=True)  # [S, S]
            cross = kernel_of(val_affinity, beta)  # [N, S]
            if len(lambdas) <= EIGH_AFTER:
                for lam in lambdas:
                    dual = solve_proker(kernel.clone(), residual, lam)  # [S, C]
                    if record((beta, lam), val_prior + cross @ dual):  # [N, S] @ [S, C]
                        best = dual
                continue
            eigvals, basis = torch.linalg.eigh(kernel)  # [S], [S, S]
            cross, projected = cross @ basis, basis.T @ residual  # [N, S] @ [S, S], [S, S] @ [S, C]
            for lam in lambdas:
                weights = lam / (eigvals.clamp(min=0) + lam)  # [S]
                if record((beta, lam), val_prior + (cross * weights) @ projected):  # [N, S] @ [S, C]
                    best = basis @ (weights[:, None] * projected)  # [S, S] @ [S, C]
        return scores, best

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = batch["global"]
        return self.prior(feats) + cache_kernel(feats, self.keys, self.beta) @ self.dual  # [N, S] @ [S, C]

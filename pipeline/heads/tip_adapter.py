"""Tip-Adapter: a training-free key-value cache over the few-shot views.

Paper: Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for Few-shot Classification", arXiv 2111.03930.
As the authors' code does (github gaopengcuhk/Tip-Adapter at d0e2d6f, `utils.py` build_cache_model and search_hp):
keys are, per training image, the mean of its raw augmented-view features, normalised once; values: one-hot labels.
Logits = zero-shot (100 f T^T for trained CLIP) + alpha * exp(-beta (1 - f.K)) @ L. beta and alpha are searched on
the validation split over the authors' grid, i * (scale - 0.1) / steps + 0.1 for i < steps (the scale itself
excluded), beta outer and alpha inner, ties to the first: scale (7, 3) and steps (200, 20) by default (their
ImageNet config), and with `per_dataset: true` their search_scale of each of the 11 benchmarks (e.g. Flowers
(50, 50), FGVC (30, 30), Cars (20, 10); resources/per_dataset.json). The classifier follows the authors: CoOp's
template, the 7-template ensemble on ImageNet. Where we depart: the authors search ImageNet's hyper-parameters on
its test set (their val there); we never read test. The cache term is computed as a per-class sum over keys,
which equals the product with the one-hot values; along the arithmetic beta grid each kernel is the previous one
times exp(step * (cos - 1)), one multiply instead of an exp per entry.
"""

from __future__ import annotations

from typing import Unpack

import torch

from pipeline.head_params.tip_adapter import REQUIRES, TipAdapterParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.grid import best_of, tip_grid
from pipeline.heads.inputs import FitData, global_feats, view_mean_keys
from pipeline.heads.maths import accuracy, cache_kernel, kernel_class_sums, sort_by_label
from pipeline.heads.registry import register_head


@register_head("tip_adapter")
class TipAdapter(Head):
    Params = TipAdapterParams
    requires = REQUIRES
    cache_keys: torch.Tensor  # [M, D] normalised view-mean features of the training images, sorted by label
    cache_labels: torch.Tensor  # [M] their labels
    alpha: torch.Tensor  # [] weight of the cache term
    beta: torch.Tensor  # [] sharpness of the cache kernel

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes, keys = shapes["dim"], shapes["classes"], shapes["keys"]
        self.text_buffers(classes, dim)
        self.register_buffer("cache_keys", torch.zeros(keys, dim))  # [M, D] normalised
        self.register_buffer("cache_labels", torch.zeros(keys, dtype=torch.long))  # [M]
        self.register_buffer("alpha", torch.ones(()))
        self.register_buffer("beta", torch.ones(()))

    def fit(self, data: FitData) -> TipAdapter:
        self.use_dataset_values(data)
        keys = view_mean_keys(data.train, data.device)  # [M, D]
        self.prepare(data, self.params.template_set, dim=keys.shape[1], classes=data.n_classes, keys=keys.shape[0])
        keys, labels = sort_by_label(keys, data.labels(data.train))
        self.cache_keys.copy_(keys)
        self.cache_labels.copy_(labels)
        self.search(data)
        return self

    def cache_logits(self, feats: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
        """alpha-free cache term [N, C]."""
        return kernel_class_sums(cache_kernel(feats, self.cache_keys, beta), self.cache_labels, self.shapes["classes"])

    @torch.no_grad()
    def search(self, data: FitData) -> None:
        """Grid-search beta and alpha on validation; sets the buffers and `selected`."""
        feats, labels = global_feats(data.val, data.device), data.labels(data.val)  # [N, D], [N]
        zero_shot = self.zero_shot(feats)  # [N, C]
        shifted = feats @ self.cache_keys.T - 1.0  # [N, D] @ [D, M]: cosines - 1, once for the whole grid
        betas, alphas = tip_grid(self.params.beta_grid), tip_grid(self.params.alpha_grid)
        kernel = torch.exp(shifted * betas[0])  # [N, M]
        step = torch.exp(shifted * (betas[1] - betas[0])) if len(betas) > 1 else None
        del shifted
        scores = {}
        for i, beta in enumerate(betas):
            if i and step is not None:
                kernel.mul_(step)  # arithmetic grid: exp(b_i x) = exp(b_(i-1) x) * exp((b_i - b_(i-1)) x)
            cached = kernel_class_sums(kernel, self.cache_labels, self.shapes["classes"])  # [N, C]
            for alpha in alphas:
                scores[(beta, alpha)] = accuracy(torch.add(zero_shot, cached, alpha=alpha), labels)
        beta, alpha = best_of(scores)
        self.beta.fill_(beta)
        self.alpha.fill_(alpha)
        self.selected.update({"beta": beta, "alpha": alpha, "val_acc": scores[(beta, alpha)]})

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = batch["global"]
        return self.zero_shot(feats) + self.alpha * self.cache_logits(feats, self.beta)

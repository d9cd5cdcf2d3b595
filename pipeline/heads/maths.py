"""Maths the heads share, written once: normalisation, CLIP logits, the cache kernel, one-hot labels, accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last axis (features are stored un-normalised)."""
    return F.normalize(x.float(), dim=-1)


def clip_logits(image_feats: torch.Tensor, class_weights: torch.Tensor,
                logit_scale: float | torch.Tensor) -> torch.Tensor:
    """CLIP's classifier: scale * cos(image, class) -> [N, C] from normalised [N, D] and [C, D]."""
    return logit_scale * image_feats @ class_weights.T  # [N, D] @ [D, C]


def cache_kernel(query: torch.Tensor, keys: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """Tip-Adapter's (and ProKeR's) exponential cosine kernel exp(-beta * (1 - q.k)) -> [N, M]."""
    return kernel_of(query @ keys.T, beta, inplace=True)  # [N, D] @ [D, M], a fresh temporary: no copy


def kernel_of(affinity: torch.Tensor, beta: float | torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """The exponential cosine kernel from cosines [N, M]; `inplace` overwrites them (large M x M kernels)."""
    out = affinity if inplace else affinity.clone()
    return out.sub_(1.0).mul_(beta).exp_()  # exp(beta * (a - 1)) = exp(-beta * (1 - a))


def one_hot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """[N] int -> [N, C] float."""
    return F.one_hot(labels.long(), n_classes).float()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of [N, C] logits."""
    return float((logits.argmax(dim=-1) == labels.to(logits.device)).float().mean())


def kernel_class_sums(kernel: torch.Tensor, key_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """kernel [N, M] @ one_hot(key_labels) [M, C] as a per-class sum over keys (no [M, C] matmul) -> [N, C].

    Keys sorted by label with K per class (the few-shot layout, see `sort_by_label`) sum as one contiguous
    [N, C, K] reduction; any other labelling falls back to a scatter-add over the key axis.
    """
    shots = len(key_labels) // max(n_classes, 1)
    if shots and shots * n_classes == len(key_labels) and bool(
            (key_labels.view(n_classes, shots) == torch.arange(n_classes, device=key_labels.device)[:, None]).all()):
        return kernel.view(kernel.shape[0], n_classes, shots).sum(-1)  # [N, M] -> [N, C, K] -> [N, C]
    out = torch.zeros(kernel.shape[0], n_classes, dtype=kernel.dtype, device=kernel.device)
    return out.index_add_(1, key_labels.to(kernel.device), kernel)


def sort_by_label(keys: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys [M, D] and labels [M] reordered by label (stable), so class sums are contiguous."""
    order = torch.argsort(labels, stable=True)
    return keys[order], labels[order]

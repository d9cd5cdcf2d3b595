"""Maths the heads share, written once: normalisation, CLIP logits, the cache kernel, one-hot labels, accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last axis (features are stored un-normalised)."""
    return F.normalize(x.float(), dim=-1)


def clip_logits(image_feats: torch.Tensor, class_weights: torch.Tensor, logit_scale: float | torch.Tensor) -> torch.Tensor:
    """CLIP's classifier: scale * cos(image, class) -> [N, C] from normalised [N, D] and [C, D]."""
    return logit_scale * image_feats @ class_weights.T  # [N, D] @ [D, C]


def cache_kernel(query: torch.Tensor, keys: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """Tip-Adapter's (and ProKeR's) exponential cosine kernel exp(-beta * (1 - q.k)) -> [N, M]."""
    return kernel_of(query @ keys.T, beta)  # [N, D] @ [D, M]


def kernel_of(affinity: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """The exponential cosine kernel from precomputed cosines [N, M] (grid searches reuse one affinity)."""
    return torch.exp(-beta * (1.0 - affinity))


def one_hot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """[N] int -> [N, C] float."""
    return F.one_hot(labels.long(), n_classes).float()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of [N, C] logits."""
    return float((logits.argmax(dim=-1) == labels.to(logits.device)).float().mean())


def kernel_class_sums(kernel: torch.Tensor, key_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """kernel [N, M] @ one_hot(key_labels) [M, C] as a per-class sum over keys (no [M, C] matmul) -> [N, C]."""
    out = torch.zeros(kernel.shape[0], n_classes, dtype=kernel.dtype, device=kernel.device)
    return out.index_add_(1, key_labels.to(kernel.device), kernel)

"""Classification metrics of one run: top-1, mean per-class accuracy, expected calibration error, confusion."""

from __future__ import annotations

import numpy as np

ECE_BINS = 15  # equal-width confidence bins (Guo et al., 2017)


def confusion(predictions: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """[C, C] counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def mean_per_class_accuracy(matrix: np.ndarray) -> float:
    """Mean over classes present in the test split of their recall."""
    support = matrix.sum(axis=1)
    present = support > 0
    return float((np.diag(matrix)[present] / support[present]).mean())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)| over equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def to_probabilities(scores: np.ndarray, kind: str) -> np.ndarray:
    """Logits -> softmax; scores already in probability units (ProKeR) -> clipped at 0 and renormalised."""
    if kind == "probabilities":
        clipped = np.clip(scores, 0.0, None) + 1e-12
        return clipped / clipped.sum(axis=1, keepdims=True)
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def classification_metrics(scores: np.ndarray, labels: np.ndarray, kind: str = "logits") -> dict:
    """All metrics of a run from its [N, C] scores and [N] labels."""
    n_classes = scores.shape[1]
    predictions = scores.argmax(axis=1)
    matrix = confusion(predictions, labels, n_classes)
    return {
        "top1": float((predictions == labels).mean()),
        "mean_per_class_accuracy": mean_per_class_accuracy(matrix),
        "ece": expected_calibration_error(to_probabilities(scores, kind), labels),
        "n_test": len(labels),
        "confusion": matrix.tolist(),
    }

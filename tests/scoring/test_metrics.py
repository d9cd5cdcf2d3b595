"""Metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.scoring.metrics import classification_metrics, confusion, expected_calibration_error, to_probabilities


def test_confusion_and_accuracies_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2])
    scores = np.eye(3)[[0, 0, 1, 1, 2, 0]] * 5.0  # predictions 0 0 1 1 2 0
    m = classification_metrics(scores, labels)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert m["top1"] == pytest.approx(4 / 6)
    assert m["mean_per_class_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert confusion(np.array([1]), np.array([0]), 2).tolist() == [[0, 1], [0, 0]]


def test_ece_by_hand() -> None:
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # bin of 0.9: accuracy 0.5, confidence 0.9 -> 0.4 * 2/4 ; bin of 0.6: accuracy 1.0, confidence 0.6 -> 0.4 * 2/4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.4)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, np.array([0, 1])) == pytest.approx(0.0)


def test_probability_scores_are_renormalised_not_softmaxed() -> None:
    scores = np.array([[0.7, 0.2, -0.1]])
    np.testing.assert_allclose(to_probabilities(scores, "probabilities"), [[0.7 / 0.9, 0.2 / 0.9, 0.0]], atol=1e-9)
    np.testing.assert_allclose(to_probabilities(np.array([[0.0, np.log(3.0)]]), "logits"), [[0.25, 0.75]])


def test_ece_uses_fifteen_equal_bins() -> None:
    """0.62 and 0.66 share the bin [0.6, 0.667) of 15 equal bins (one right, one wrong: |0.5 - 0.64|); with other
    edges they would fall apart (|1 - 0.62| + |0 - 0.66|) / 2 = 0.52."""
    probabilities = np.array([[0.62, 0.38], [0.66, 0.34]])
    assert expected_calibration_error(probabilities, np.array([0, 1])) == pytest.approx(0.14)

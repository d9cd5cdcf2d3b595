"""Metrics against hand-computed cases."""

from __future__ import annotations

import json

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
    clipped = to_probabilities(np.array([[0.5, 0.0, -0.2], [0.0, 0.0, 0.0]]), "probabilities")
    assert (clipped >= 0).all() and np.allclose(clipped.sum(axis=1), 1.0)  # a probability is never negative
    np.testing.assert_allclose(clipped, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-9)


def test_ece_uses_fifteen_equal_bins() -> None:
    """0.62 and 0.66 share the bin [0.6, 0.667) of 15 equal bins (one right, one wrong: |0.5 - 0.64|); with other
    edges they would fall apart (|1 - 0.62| + |0 - 0.66|) / 2 = 0.52."""
    probabilities = np.array([[0.62, 0.38], [0.66, 0.34]])
    assert expected_calibration_error(probabilities, np.array([0, 1])) == pytest.approx(0.14)
    # 0.55 and 0.62 lie on either side of the edge 9/15 = 0.6: two bins, (|1 - 0.55| + |0 - 0.62|) / 2
    apart = np.array([[0.55, 0.45], [0.62, 0.38]])
    assert expected_calibration_error(apart, np.array([0, 1])) == pytest.approx(0.535)


def test_the_evaluation_log_line_names_the_run(tmp_path, caplog) -> None:
    import logging

    from pipeline.scoring.evaluation import write_evaluation

    metrics = {"top1": 0.5, "mean_per_class_accuracy": 0.25, "ece": 0.125, "n_test": 4, "confusion": [[1]]}
    record = {"head": "gda", "dataset": "parts", "shots": 2, "seed": 3, "metrics": metrics,
              "base_to_novel": {"base": 0.5, "novel": 0.75, "hm": 0.6}}
    with caplog.at_level(logging.INFO, logger="pipeline"):
        write_evaluation(record, tmp_path)
    assert caplog.messages == ["gda parts k2 s3: top-1 0.5000, mean per-class 0.2500, ECE 0.1250",
                               "gda parts k2 s3 base-to-novel: base 0.5000, novel 0.7500, HM 0.6000"]
    assert json.loads((tmp_path / "metrics.json").read_text()) == {k: v for k, v in metrics.items()
                                                                    if k != "confusion"}

"""Base-to-novel (CoCoOp's protocol, MM-Adapter's headline): class subsets of a cache, heads fitted on the base
classes and retargeted to the novel ones, and the base / novel / HM record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ClipCacheError, NotApplicable
from pipeline.heads import FitData, create_head
from pipeline.heads.classes import SubsetSplit, SubsetText, base_and_novel
from pipeline.scoring.evaluation import harmonic_mean, score_base_to_novel
from tests.heads.synthetic import World, make_task


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory):
    return make_task(tmp_path_factory.mktemp("b2n"), World(), shots=4, views=3, test_per_class=10)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_cocoops_split_is_the_first_half_rounded_up() -> None:
    assert base_and_novel(5) == ([0, 1, 2], [3, 4]) and base_and_novel(4) == ([0, 1], [2, 3])
    assert base_and_novel(47)[0] == list(range(24))  # DTD: 24 base (MM-Adapter's own code takes 23)


def test_a_subset_reads_its_classes_rows_renumbered(task) -> None:
    data, _ = task
    sub = SubsetSplit(data.train, [3, 1])
    rows = np.flatnonzero(np.isin(data.train.labels, [3, 1]))
    assert sub.n == len(rows) == 8 and sorted(set(sub.labels)) == [0, 1]
    assert np.array_equal(sub.labels, np.where(data.train.labels[rows] == 3, 0, 1))
    np.testing.assert_array_equal(sub.read("global"), data.train.read("global")[rows])
    np.testing.assert_array_equal(sub.read("global", np.array([5, 0])), data.train.read("global")[rows[[5, 0]]])
    views = data.train.read("views/global")  # [V, N, D]
    np.testing.assert_array_equal(sub.array("views/global")[2], views[2][rows])
    np.testing.assert_array_equal(sub.read_views("views/global", np.array([1, 4]), np.array([0, 2])),
                                  np.stack([views[0, rows[1]], views[2, rows[4]]]))
    assert sub.array("views/global").shape == (views.shape[0], 8, views.shape[2])
    text = SubsetText(data.text, [3, 1])
    assert text.classnames == ["class 3", "class 1"]
    np.testing.assert_array_equal(text.mean("coop"), data.text.mean("coop")[[3, 1]])


def test_zero_shot_base_and_novel_are_clip_on_each_half(task) -> None:
    data, test = task
    base, novel = base_and_novel(data.n_classes)
    fit = FitData(SubsetSplit(data.train, base), SubsetSplit(data.val, base), SubsetText(data.text, base), 1,
                  torch.device("cpu"))
    head = create_head("zero_shot").fit(fit)
    meta = {"params": {}, "selected": {}, "provenance": {"shots": 4, "seed": 1, "classes": base, "files": {},
            "dataset": {"name": "synthetic", "classnames": SubsetText(data.text, base).classnames},
            "encoder": {"model": "synthetic", "pretrained": "none", "random_weights": True}}}
    record = score_base_to_novel(head, meta, test, data.text)
    x, labels, text = unit(test.read("global").astype(np.float64)), test.labels, data.text.mean("coop")
    expected = {}
    for name, classes in (("base", base), ("novel", novel)):
        rows = np.isin(labels, classes)
        predicted = np.array(classes)[(x[rows] @ text[classes].T).argmax(1)]
        expected[name] = float((predicted == labels[rows]).mean())
    b2n = record["base_to_novel"]
    assert (b2n["base"], b2n["novel"]) == pytest.approx((expected["base"], expected["novel"]))
    assert b2n["hm"] == pytest.approx(2 * b2n["base"] * b2n["novel"] / (b2n["base"] + b2n["novel"]))
    assert record["metrics"]["n_test"] == 10 * len(base) and b2n["novel_metrics"]["n_test"] == 10 * len(novel)
    assert record["protocol"] == "base_to_novel" and (b2n["base_classes"], b2n["novel_classes"]) == (base, novel)
    assert set(b2n["novel_metrics"]) == {"top1", "mean_per_class_accuracy", "ece", "n_test"}  # no confusion matrix
    assert b2n["novel_metrics"]["top1"] == b2n["novel"]


def test_the_harmonic_mean_by_hand() -> None:
    assert harmonic_mean(0.5, 1.0) == pytest.approx(2 / 3) and harmonic_mean(0.8, 0.8) == pytest.approx(0.8)
    assert harmonic_mean(0.0, 0.0) == 0.0 and harmonic_mean(0.0, 0.9) == 0.0


@pytest.mark.parametrize("name", ["mm_adapter", "clip_adapter"])
def test_text_conditioned_heads_score_novel_classes(task, name: str) -> None:
    data, test = task
    base, novel = base_and_novel(data.n_classes)
    fit = FitData(SubsetSplit(data.train, base), SubsetSplit(data.val, base), SubsetText(data.text, base), 1,
                  torch.device("cpu"))
    head = create_head(name, {"epochs": 2}).fit(fit)
    head.retarget(SubsetText(data.text, novel))
    logits = head.scores(SubsetSplit(test, novel))
    assert logits.shape == (10 * len(novel), len(novel)) and head.shapes["classes"] == len(novel)


@pytest.mark.parametrize("name", ["tip_adapter", "linear_probe", "lp_pp", "proker", "tip_adapter_f"])
def test_heads_with_per_class_parameters_refuse_novel_classes(task, name: str) -> None:
    data, _ = task
    head = create_head(name)
    assert not head.novel_classes
    with pytest.raises(NotApplicable, match="per-class parameters"):
        head.retarget(data.text)


def test_gda_base_to_novel_is_their_main_base2new(task) -> None:
    """mrflogs/ICLR24 at 560fe21, main_base2new.py `run`, restated on the same tensors: the base classifier from
    pinv(mean of the per-class covariances); the novel one from the 64 views nearest each novel text embedding and 16
    copies of it, KS precision D * pinv((k-1) S + tr(S) I) averaged over the novel classes; alpha from the base val."""
    data, test = task
    base, novel = base_and_novel(data.n_classes)
    fit = FitData(SubsetSplit(data.train, base), SubsetSplit(data.val, base), SubsetText(data.text, base), 1,
                  torch.device("cpu"))
    head = create_head("gda", {"covariance": "class_mean", "novel_neighbours": 8, "novel_text_copies": 16}).fit(fit)
    train = SubsetSplit(data.train, base)
    views = torch.from_numpy(np.asarray(train.array("views/global"))).double()  # [V, N, D]
    vecs = torch.nn.functional.normalize(views, dim=-1).reshape(-1, views.shape[-1])  # view-major, as their loader
    labels = torch.from_numpy(np.asarray(train.labels)).repeat(views.shape[0])
    mus = torch.cat([vecs[labels == i].mean(dim=0, keepdim=True) for i in range(len(base))])
    train_cov = torch.cat([vecs[labels == i].T.cov().unsqueeze(0) for i in range(len(base))])
    cov_inv = torch.linalg.pinv(train_cov.mean(dim=0))
    ps = torch.ones(len(base), dtype=torch.float64) * 1.0 / len(base)
    W = torch.einsum("nd, dc -> cn", mus, cov_inv)
    b = ps.log() - torch.einsum("nd, dc, nc -> n", mus, cov_inv, mus) / 2
    torch.testing.assert_close(head.weight.double(), W.T, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(head.bias.double(), b, rtol=1e-4, atol=1e-4)  # values near 1e7: pinv of 12 views
    alpha = float(head.alpha)
    head.retarget(SubsetText(data.text, novel))
    clip_weights_new = torch.from_numpy(SubsetText(data.text, novel).mean("coop")).double().T  # [D, C']
    k, dim = 8, vecs.shape[1]

    def covariance(x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        return (x - mu).T @ (x - mu) / (x.shape[0] - 1)

    mu = torch.cat([torch.cat([vecs[torch.topk(w @ vecs.T, k=k, largest=True)[1]], w.unsqueeze(0).repeat(16, 1)])
                    .mean(dim=0, keepdim=True) for w in clip_weights_new.T])
    cov_inv = torch.cat([dim * torch.linalg.pinv(
        (k - 1) * covariance(vecs[torch.topk(w @ vecs.T, k=k, largest=True)[1]], w.unsqueeze(0))
        + covariance(vecs[torch.topk(w @ vecs.T, k=k, largest=True)[1]], w.unsqueeze(0)).trace()
        * torch.eye(dim, dtype=torch.float64)).unsqueeze(0) for w in clip_weights_new.T]).mean(dim=0)
    ps = torch.ones(len(novel), dtype=torch.float64) * 1.0 / len(novel)
    W_new = torch.einsum("nd, dc -> cn", mu, cov_inv)
    b_new = ps.log() - torch.einsum("nd, dc, nc -> n", mu, cov_inv, mu) / 2
    novel_test = SubsetSplit(test, novel)
    feats = torch.nn.functional.normalize(torch.from_numpy(np.asarray(novel_test.read("global"))).double(), dim=-1)
    expected = data.text.logit_scale * feats @ clip_weights_new + alpha * (feats @ W_new + b_new)
    torch.testing.assert_close(head.scores(novel_test).double(), expected, rtol=1e-4, atol=1e-3)
    assert float(head.alpha) == alpha and head.weight.shape == (len(novel), dim)


def test_a_class_without_its_k_training_images_is_named(tmp_path: Path) -> None:
    """Issues 14 and 20: a class whose training images were skipped (all, or only some) must not be fitted and
    reported as a K-shot run."""

    from pipeline.heads.fitting import check_classes
    from tests.heads.synthetic import draw, write_split

    arrays = draw(World(), 2, 0, np.random.default_rng(0))
    keep = arrays["labels"] != 3  # class 3 lost every image
    split = write_split(tmp_path / "train.h5", {k: v[keep] for k, v in arrays.items()}, "train", 2, 1)
    names = [f"class {c}" for c in range(5)]
    with pytest.raises(ClipCacheError, match=r"train.h5' has 0 usable training image\(s\) of class 'class 3' where 2 "
                                             r"shots are asked for: were some skipped"):
        check_classes(split, names, 2)
    check_classes(SubsetSplit(split, [0, 1, 2]), names[:3], 2)  # a base subset without class 3 is fine
    one = np.flatnonzero(arrays["labels"] == 1)[:1]  # class 1 kept one of its two images
    keep = (arrays["labels"] != 1) | np.isin(np.arange(len(keep)), one)
    split = write_split(tmp_path / "one.h5", {k: v[keep] for k, v in arrays.items()}, "train", 2, 1)
    with pytest.raises(ClipCacheError, match=r"one.h5' has 1 usable training image\(s\) of class 'class 1' where 2"):
        check_classes(split, names, 2)
    check_classes(split, names, 1)


def test_subset_arrays_answer_every_read_a_head_makes(task) -> None:
    """(), a view, (view, rows), take(rows) and len on both image axes; anything else is refused by name."""
    data, _ = task
    sub = SubsetSplit(data.train, [4, 0])
    rows = np.flatnonzero(np.isin(data.train.labels, [4, 0]))
    np.testing.assert_array_equal(sub.labels, np.where(data.train.labels[rows] == 4, 0, 1))
    views, plain = data.train.read("views/global"), data.train.read("global")
    by_view, by_row = sub.array("views/global"), sub.array("global")
    assert (len(by_row), len(by_view), by_view.ndim, by_view.dtype) == (8, views.shape[0], 3, views.dtype)
    np.testing.assert_array_equal(by_view[()], views[:, rows])
    np.testing.assert_array_equal(by_view[1], views[1][rows])
    np.testing.assert_array_equal(by_view[np.int64(1)], views[1][rows])  # a numpy integer is a view too
    np.testing.assert_array_equal(by_view[2, [3, 0]], views[2, rows[[3, 0]]])
    np.testing.assert_array_equal(by_row[()], plain[rows])
    np.testing.assert_array_equal(by_row.take(np.array([7, 2])), plain[rows[[7, 2]]])
    np.testing.assert_array_equal(by_row.take([1.0, 3.0]), plain[rows[[1, 3]]])  # float positions read as ints
    with pytest.raises(TypeError) as error:
        by_row[0]
    assert str(error.value) == "subset arrays take (), a view or (view, rows); got 0"
    assert sub.has("views/global") and not sub.has("spatial_raw") and sub.n_views == views.shape[0]
    assert sub.image_ids == [data.train.image_ids[r] for r in rows]
    assert SubsetSplit(data.train, [9]).n == 0 and list(SubsetSplit(data.train, [9]).labels) == []


def test_a_split_without_images_scores_to_an_empty_matrix(task) -> None:
    """A class subset with no image (or any empty split) scores [0, C] and a validation accuracy of 0, not a crash."""
    from pipeline.heads.base import val_accuracy

    data, _ = task
    head = create_head("zero_shot").fit(data)
    empty = SubsetSplit(data.train, [9])
    assert tuple(head.scores(empty).shape) == (0, data.n_classes)
    assert val_accuracy(head, empty) == 0.0


def test_subset_text_is_the_classes_text_in_their_order(task) -> None:
    data, _ = task
    text = SubsetText(data.text, [3, 1])
    assert text.classnames == ["class 3", "class 1"] and text.provenance["dataset"]["n_classes"] == 2
    assert data.text.classnames[3] == "class 3" and data.text.provenance["dataset"].get("n_classes") != 2
    assert text.template_sets == data.text.template_sets and text.templates("coop") == data.text.templates("coop")
    np.testing.assert_array_equal(text.per_template("tip7"), data.text.per_template("tip7")[[3, 1]])
    np.testing.assert_array_equal(text.mean("coop"), data.text.mean("coop")[[3, 1]])
    assert text.logit_scale == data.text.logit_scale and text.path == data.text.path


def test_base_to_novel_needs_two_classes() -> None:
    with pytest.raises(ClipCacheError) as error:
        base_and_novel(1)
    assert str(error.value) == "base-to-novel needs at least 2 classes, the data set has 1"
    assert base_and_novel(2) == ([0], [1]) and base_and_novel(3) == ([0, 1], [2])

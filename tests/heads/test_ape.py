"""APE against its authors' code (github yangyangyang127/APE at 70460de74d1e967f8b4d270b3419373694758536: main.py APE,
utils.py cal_criterion, extract_features.py), restated here with their loops on the same cached tensors; and what
the paper says it does, on a known-answer world: the channels it keeps are those where the classes differ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ClipCacheError
from pipeline.heads import FitData, create_head
from pipeline.store import TextFeatures, write_whole
from pipeline.store.provenance import SCHEMA_VERSION
from tests.heads.synthetic import World, make_task, write_raw_text

COUNTS = [2, 4, 1, 3, 2]  # descriptions per class


def described_text(path: Path, world: World, dataset: str = "caltech101") -> TextFeatures:
    """Raw template embeddings and a different number of raw description embeddings per class."""
    return write_raw_text(path, world, dataset, counts=COUNTS, seed=11)


@pytest.fixture(scope="module")
def ape_task(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("ape")
    data, test = make_task(folder, World(), shots=4, views=3, val_per_class=6, test_per_class=10)
    return FitData(data.train, data.val, described_text(folder / "text.h5", World()), data.seed, data.device), test


def unit(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True)


def reference(data: FitData, test, feat_num: int, w: tuple[float, float], scale: tuple, step: tuple):
    """The authors' APE on our tensors: (kept channels, (beta, alpha, gamma), test logits, channel criterion)."""
    text = data.text
    embeddings, offsets = text.description_embeddings()
    weights = []  # extract_text_feature: templates + CuPL texts, each normalised, averaged, normalised
    for c in range(len(offsets) - 1):
        described = embeddings[offsets[c] : offsets[c + 1]]  # [n_c, D]
        rows = torch.cat([torch.from_numpy(text.per_template("coop")[c]), torch.from_numpy(described)])
        weights.append(unit(unit(rows.double()).mean(dim=0)))
    clip_weights = torch.stack(weights, dim=1)  # [D, C]
    views = torch.from_numpy(data.train.read("views/global")).double()  # [V, N, D]
    keys = unit(views.mean(dim=0))  # extract_few_shot_feature: mean of the augmented passes, normalised
    labels = torch.from_numpy(data.train.labels).long()
    order = torch.argsort(labels, stable=True)
    keys, labels = keys[order], labels[order]
    classes, dim = clip_weights.shape[1], clip_weights.shape[0]
    values = torch.nn.functional.one_hot(labels, classes).double()  # [M, C]
    shots = keys.shape[0] // classes
    feats = torch.cat([clip_weights.t().unsqueeze(1), keys.reshape(classes, shots, dim)], dim=1)  # [C, 1 + K, D]
    sim_sum, count = torch.zeros(dim, dtype=torch.float64), 0
    for i in range(classes):  # cal_criterion(only_use_txt=False)
        for j in range(classes):
            for m in range(feats.shape[1]):
                for n in range(feats.shape[1]):
                    if i != j:
                        sim_sum += feats[i, m, :] * feats[j, n, :]
                        count += 1
    criterion = (-1) * w[0] * (sim_sum / count) + w[1] * torch.var(clip_weights, dim=1)
    _, indices = torch.topk(criterion, k=feat_num)
    new_w = clip_weights[indices, :] / clip_weights[indices, :].norm(dim=0, keepdim=True)
    new_keys = unit(keys[:, indices])
    key_logits = (new_keys @ new_w).softmax(1)
    cache_div = torch.sum(values * torch.log2((values + 1e-6) / (key_logits + 1e-6)), dim=1)[:, None]
    val = unit(torch.from_numpy(data.val.read("global")).double())
    val_labels = torch.from_numpy(data.val.labels).long()
    r_ff, r_fw = unit(val[:, indices]) @ new_keys.t(), 100.0 * val @ clip_weights
    best, chosen = 0.0, (0.0, 0.0, 0.0)
    for beta in [i * (scale[0] - 0.1) / step[0] + 0.1 for i in range(step[0])]:
        for alpha in [i * (scale[1] - 0.1) / step[1] + 0.1 for i in range(step[1])]:
            for gamma in [i * scale[2] / step[2] for i in range(step[2])]:
                soft = values * (cache_div * gamma).exp()
                logits = r_fw + ((-1) * (beta - beta * r_ff)).exp() @ soft * alpha
                acc = 100 * float((logits.argmax(1) == val_labels).sum()) / len(val_labels)
                if acc > best:
                    best, chosen = acc, (beta, alpha, gamma)
    beta, alpha, gamma = chosen
    images = unit(torch.from_numpy(test.read("global")).double())
    soft = values * (cache_div * gamma).exp()
    logits = 100.0 * images @ clip_weights + ((-1) * (beta - beta * (unit(images[:, indices]) @ new_keys.t()))).exp() \
        @ soft * alpha
    return set(indices.tolist()), chosen, logits, criterion


@pytest.mark.parametrize(("feat_num", "w"), [(16, (0.5, 0.5)), (24, (0.1, 0.9)), (12, (1.0, 0.0))])
def test_ape_is_the_authors_training_free_method(ape_task, feat_num: int, w: tuple[float, float]) -> None:
    data, test = ape_task
    scale, step = (7.0, 7.0, 1.0), (12, 6, 5)
    head = create_head("ape", {"per_dataset": False, "feat_num": feat_num, "weights": list(w),
                               "search_scale": list(scale), "search_step": list(step)}).fit(data)
    channels, chosen, logits, criterion = reference(data, test, feat_num, w, scale, step)
    assert set(head.channels.tolist()) == channels
    from pipeline.heads.ape import ape_classifier, channel_criterion
    from pipeline.heads.inputs import view_mean_keys

    ours = channel_criterion(ape_classifier(data.text, "reference", True, data.device),
                             view_mean_keys(data.train, data.device), data.labels(data.train), w)  # [D]
    torch.testing.assert_close(ours.double(), criterion, rtol=1e-4, atol=1e-6)  # every channel, not only the top
    assert (head.selected["beta"], head.selected["alpha"], head.selected["gamma"]) == pytest.approx(chosen)
    assert chosen[2] > 0 or chosen[1] > 0.1  # the search moved off its first point: the comparison means something
    torch.testing.assert_close(head.scores(test).double(), logits, rtol=1e-4, atol=1e-4)


def test_the_kept_channels_are_where_the_classes_differ(tmp_path: Path) -> None:
    """A world whose class signal lives in 8 of 32 channels (the others are shared by every class): with the
    variance term alone (w = (0, 1)) APE keeps exactly those 8."""
    data, _ = make_task(tmp_path, World(), shots=4, views=2)
    rng = np.random.default_rng(3)
    informative = rng.choice(32, 8, replace=False)
    text = np.tile(rng.standard_normal(32) * 0.1, (5, 1))  # [C, D] shared everywhere
    text[:, informative] += rng.standard_normal((5, 8)) * 3.0
    t = text / np.linalg.norm(text, axis=-1, keepdims=True)
    groups = {"text/coop/per_template": t[:, None].astype(np.float32), "text/coop/mean": t.astype(np.float32)}
    provenance = {"schema_version": SCHEMA_VERSION,
                  "encoder": {"model": "synthetic", "random_weights": True, "logit_scale": 100.0},
                  "dataset": {"name": "synthetic", "classnames": [f"class {c}" for c in range(5)]},
                  "templates": {"coop": ["{}"]}}
    write_whole(tmp_path / "planted.h5", provenance, {}, groups)
    planted = FitData(data.train, data.val, TextFeatures(tmp_path / "planted.h5"), data.seed, data.device)
    head = create_head("ape", {"per_dataset": False, "descriptions": False, "feat_num": 8, "weights": [0.0, 1.0],
                               "search_step": [4, 4, 2]}).fit(planted)
    assert set(head.channels.tolist()) == set(informative.tolist())


def test_ape_needs_descriptions_unless_told_otherwise_and_bounded_searches(tmp_path: Path) -> None:
    data, _ = make_task(tmp_path, World(), shots=2, views=2)
    with pytest.raises(ClipCacheError, match="holds no class descriptions"):
        create_head("ape", {"search_step": [2, 2, 2]}).fit(data)
    head = create_head("ape", {"descriptions": False, "search_step": [2, 2, 2], "feat_num": 8}).fit(data)
    assert head.selected["channels"] == 8
    with pytest.raises(ClipCacheError, match=r"heads\.ape\.search_step must be 3 counts >= 1"):
        create_head("ape", {"search_step": [200, 0, 20]})


def test_the_searchs_shortcuts_equal_brute_force() -> None:
    """correct_at scores only the rows the two ends of the alpha range leave open; gamma_class_sums contracts every
    gamma in one pass: both equal the plain computation, ties included (integer-valued logits)."""
    from pipeline.heads.ape import correct_at, gamma_class_sums

    rng = torch.Generator().manual_seed(0)
    zero_shot = torch.randint(0, 4, (300, 6), generator=rng).float()  # many ties
    cache = torch.randint(0, 3, (300, 6), generator=rng).float()
    labels = torch.randint(0, 6, (300,), generator=rng)
    alphas = torch.tensor([0.1, 0.5, 1.0, 2.0, 3.5])
    brute = torch.stack([((zero_shot + a * cache).argmax(-1) == labels).sum() for a in alphas])
    assert torch.equal(correct_at(zero_shot, cache, labels, alphas), brute)
    kernel = torch.rand(7, 12, generator=rng)
    weights = torch.rand(3, 12, generator=rng)
    sorted_labels = torch.arange(4).repeat_interleave(3)  # 4 classes x 3 keys, sorted
    for key_labels in (sorted_labels, sorted_labels[torch.randperm(12, generator=rng)]):
        want = torch.stack([(kernel * w) @ torch.nn.functional.one_hot(key_labels, 4).float() for w in weights])
        torch.testing.assert_close(gamma_class_sums(kernel, weights, key_labels, 4), want)

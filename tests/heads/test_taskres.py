"""TaskRes against its authors' code (github geekyutao/TaskRes at 5195359661d6bef661090c33b81aacfc7d7cc181,
trainers/taskres.py and train_regular.sh), restated here on the same cached tensors; and its base on raw text
embeddings of several templates, whose norms differ as CLIP's do."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.heads import FitData, create_head
from pipeline.store import TextFeatures
from tests.heads.synthetic import World, write_raw_text
from tests.heads.test_parity import batches


def raw_text(path: Path, world: World, dataset: str) -> TextFeatures:
    return write_raw_text(path, world, dataset)


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def test_taskres_trains_as_the_authors(raw_task) -> None:
    """TaskResLearner: x = zeros_like(base); forward t + alpha x; CustomCLIP: logits = exp(logit_scale) f^ t'^T with
    both normalised; F.cross_entropy; Adam (Dassl's build_optimizer: weight decay 5e-4); Dassl's constant warm-up
    epoch at 1e-5, then CosineAnnealingLR(max_epoch) stepped once per epoch; the last epoch tested."""
    data, test = raw_task
    epochs, batch_size = 4, 8
    head = create_head("taskres", {"epochs": epochs, "batch_size": batch_size}).fit(data)
    base = torch.from_numpy(data.text.per_template("coop").astype(np.float32).mean(axis=1))  # [C, D], raw
    residual = torch.nn.Parameter(torch.zeros_like(base))
    optimizer = torch.optim.Adam([residual], lr=2e-3, weight_decay=5e-4)
    for epoch, epoch_batches in enumerate(batches(data, batch_size, epochs)):
        lr = 1e-5 if epoch < 1 else 0.5 * 2e-3 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
        for group in optimizer.param_groups:
            group["lr"] = lr
        for batch in epoch_batches:
            logits = 100.0 * batch["global"] @ unit(base + 0.5 * residual).T  # [B, D] @ [D, C]
            loss = F.cross_entropy(logits, batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.testing.assert_close(head.residual.detach(), residual.detach(), rtol=1e-4, atol=1e-7)
    assert residual.detach().abs().max() > 1e-3  # it moved: the comparison is not of two zeros
    images = unit(torch.from_numpy(test.read("global")).float())
    expected = 100.0 * images @ unit(base + 0.5 * residual.detach()).T  # [N, D] @ [D, C]
    torch.testing.assert_close(head.scores(test), expected, rtol=1e-4, atol=1e-4)
    assert head.selected["epoch"] == epochs and head.selected["keep"] == "last"


def test_the_base_is_the_mean_of_raw_embeddings_and_imagenets_adds_the_ensemble(raw_task, tmp_path: Path) -> None:
    """_get_base_text_features: ImageNet's templates are IMAGENET_TEMPLATES_SELECT + CoOp's 'a photo of a {}.', the
    raw embeddings averaged (never normalised one by one); elsewhere CoOp's template alone. An untrained TaskRes
    (0 steps of change: lr 0) is then zero-shot CLIP with that base."""
    data, test = raw_task
    imagenet = raw_text(tmp_path / "imagenet-text.h5", World(), "imagenet")
    fit = FitData(data.train, data.val, imagenet, data.seed, data.device)
    head = create_head("taskres", {"epochs": 1, "lr": 0.0, "warmup_lr": 0.0}).fit(fit)
    raw = np.concatenate([imagenet.per_template("tip7"), imagenet.per_template("coop")], axis=1)  # [C, 3 + 1, D]
    np.testing.assert_allclose(head.base.numpy(), raw.mean(axis=1), rtol=1e-6)
    normalised_first = unit(torch.from_numpy(raw)).mean(dim=1)
    assert not torch.allclose(unit(head.base), unit(normalised_first), atol=1e-3)  # the rule is visible here
    images = unit(torch.from_numpy(test.read("global")).float())
    torch.testing.assert_close(head.scores(test), 100.0 * images @ unit(torch.from_numpy(raw.mean(axis=1))).T,
                               rtol=1e-4, atol=1e-4)
    assert head.selected["per_dataset"] == {"lr": 0.0002} and head.params.lr == 0.0002
    named = create_head("taskres", {"epochs": 1, "template_set": "tip7"}).fit(fit)
    np.testing.assert_allclose(named.base.numpy(), imagenet.per_template("tip7").mean(axis=1), rtol=1e-6)


def test_the_authors_flowers_scale_and_epochs_by_shots(raw_task, tmp_path: Path) -> None:
    data, _ = raw_task
    flowers = raw_text(tmp_path / "flowers-text.h5", World(), "oxford_flowers")
    head = create_head("taskres", {"epochs": 1}).fit(FitData(data.train, data.val, flowers, data.seed, data.device))
    assert head.params.residual_scale == 1.0 and head.selected["per_dataset"] == {"residual_scale": 1.0}
    mine = create_head("taskres", {"epochs": 1, "per_dataset": False}).fit(
        FitData(data.train, data.val, flowers, data.seed, data.device))
    assert mine.params.residual_scale == 0.5 and "per_dataset" not in mine.selected
    from pipeline.heads.taskres import taskres_epochs

    assert [taskres_epochs(k) for k in (1, 2, 4, 8, 16)] == [100, 100, 100, 200, 200]
    default = create_head("taskres", {"batch_size": 256}).fit(data)  # 4 shots: the ep100 config
    assert default.selected["epoch"] == 100 and len(default.history) == 100

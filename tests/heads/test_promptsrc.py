"""PromptSRC against its authors' maths (muzairkhattak/PromptSRC at bb95c77, trainers/promptsrc.py): the frozen
text features of their 60 templates, each term of the loss, the Gaussian prompt aggregation over epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pipeline.heads.promptsrc as promptsrc
from pipeline.backbone import load_encoder
from pipeline.heads import create_head
from pipeline.heads.maths import normalize
from pipeline.heads.promptsrc import PromptSRC, gaussian_weights
from pipeline.store import FeatureSplit
from tests.heads.test_vl_prompts import DEEP, data_of, deep_cache, frozen  # noqa: F401  (the 3-block cache)


def test_gaussian_weights_are_their_get_gauss() -> None:
    mu, sigma, n = 15, 1, 20
    gauss = lambda x: (1 / (sigma * np.sqrt(2 * np.pi))) * np.exp(-0.5 * ((x - mu) / sigma) ** 2)  # noqa: E731
    theirs = np.array([gauss(a) for a in range(1, n + 1)])
    theirs = theirs / sum(theirs)
    np.testing.assert_allclose(gaussian_weights(n, mu, sigma), theirs, rtol=1e-12)
    assert int(np.argmax(gaussian_weights(50, 45, 5))) == 44


def test_frozen_text_is_the_mean_of_their_60_templates(deep_cache: Path) -> None:  # noqa: F811
    """Their fixed_embeddings: encode_text of each of IMAGENET_TEMPLATES (the first 60 of CLIP's 80), stacked,
    averaged raw, then normalised in the forward."""
    data, head = frozen("promptsrc", deep_cache, n_ctx=2, n_ctx_vision=2, depth_text=2, depth_vision=2)
    assert isinstance(head, PromptSRC)
    model = load_encoder(DEEP, "none", torch.device("cpu"))
    templates = data.text.provenance["templates"]["imagenet80"][:60]
    names = [n.replace("_", " ") for n in data.text.classnames]
    with torch.no_grad():
        features = [model.model.encode_text(model.tokenizer([t.replace("{}", n) for n in names])).unsqueeze(1)
                    for t in templates]
        fixed = torch.cat(features, dim=1).mean(dim=1)
    torch.testing.assert_close(head.frozen_text(data), fixed / fixed.norm(dim=-1, keepdim=True), rtol=1e-5,
                               atol=1e-6)


def test_loss_is_their_ce_plus_scl_terms(deep_cache: Path) -> None:  # noqa: F811
    data, head = frozen("promptsrc", deep_cache, n_ctx=2, n_ctx_vision=2, depth_text=2, depth_vision=2,
                        text_loss_weight=3.0, image_loss_weight=2.0)
    assert isinstance(head, PromptSRC)
    train = FeatureSplit(deep_cache / "k2-s1" / "train.h5")
    batch = {"labels": torch.from_numpy(train.labels[:4]).long(),
             "late_tokens": torch.from_numpy(train.read("late_tokens")[:4]).float(),
             "global": normalize(torch.from_numpy(train.read("global")[:4]).float())}
    teacher = head.frozen_text(data)
    head.train()
    text = head.text_features()
    image = head.image_features(batch["late_tokens"])
    logits = head.logit_scale * image @ text.t()
    zero_shot_logits = head.logit_scale * batch["global"] @ teacher.t()
    loss_scl_text = (text - teacher).abs().mean() * 3.0
    loss_scl_image = (image - batch["global"]).abs().mean() * 2.0
    p_zs = F.softmax(zero_shot_logits, dim=1)
    kl = (p_zs * (F.log_softmax(zero_shot_logits, dim=1) - F.log_softmax(logits, dim=1))).sum() / logits.numel()
    expected = F.cross_entropy(logits, batch["labels"]) + kl + loss_scl_text + loss_scl_image
    ours = head.loss(batch, teacher)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    assert min(float(kl.detach()), float(loss_scl_text.detach()), float(loss_scl_image.detach())) > 1e-4


def test_the_shipped_prompts_are_the_gaussian_aggregate_of_the_epochs(deep_cache: Path,  # noqa: F811
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """After epoch e their model state is added with weight gauss(e) / sum; the aggregate is what is evaluated."""
    states: list[dict[str, torch.Tensor]] = []
    real_train = promptsrc.train

    def spying(head, data, schedule, names, loss_fn, epoch_end) -> None:  # the real loop, each epoch's state kept
        def record(epoch: int) -> None:
            states.append({k: v.clone() for k, v in head.state_dict().items()})
            epoch_end(epoch)

        real_train(head, data, schedule, names, loss_fn, epoch_end=record)

    monkeypatch.setattr(promptsrc, "train", spying)
    head = create_head("promptsrc", {"n_ctx": 2, "n_ctx_vision": 2, "depth_text": 2, "depth_vision": 2,
                                     "epochs": 3, "warmup_epochs": 0, "lr": 0.5, "gpa_mean": 2.0, "gpa_std": 1.0})
    head.fit(data_of(deep_cache))
    assert len(states) == 3
    weights = gaussian_weights(3, 2.0, 1.0)
    for key, value in head.state_dict().items():
        if value.is_floating_point():
            expected = sum(float(w) * s[key] for w, s in zip(weights, states, strict=True))
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-7)
    ctx = [s["context.ctx"] for s in states]
    assert not torch.allclose(ctx[0], ctx[2]) and not torch.allclose(head.state_dict()["context.ctx"], ctx[2])
    assert head.selected["keep"] == "gpa"

"""CoCoOp against its authors' maths (KaiyangZhou/CoOp at ff61507, trainers/cocoop.py), restated on the tiny open_clip
model's own modules and the same tensors: the meta-net's shift of the context, each image's own prompts, the logits,
the loss and its gradients; base-to-novel."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.backbone import load_encoder
from pipeline.errors import ClipCacheError
from pipeline.heads import FitData, create_head
from pipeline.heads.classes import SubsetSplit, SubsetText
from pipeline.heads.cocoop import CoCoOp
from pipeline.heads.io import load_head, save_head
from pipeline.heads.maths import normalize
from pipeline.store import FeatureSplit
from tests.heads.test_kgcoop_prograd import clip_text, first_batch
from tests.heads.test_prompt_learners import cache, fit_data  # noqa: F401  (the tiny-ViT cache fixture)
from tests.helpers import TINY


def their_logits(head: CoCoOp, classnames: list[str], images: torch.Tensor) -> torch.Tensor:
    """PromptLearner.forward and CustomCLIP.forward: bias = meta_net(f) [B, W]; ctx_shifted = ctx + bias[:, None];
    for each image: cat(prefix, ctx_i expanded to C, suffix) -> TextEncoder -> normalise -> scale * f_i @ t^T."""
    clip = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    n_ctx = head.context.ctx.shape[0]
    names = [n.replace("_", " ") for n in classnames]
    tokenized = clip.tokenizer(["a photo of a " + name + "." for name in names])  # [C, L]
    with torch.no_grad():
        embedding = clip.model.token_embedding(tokenized)  # [C, L, W]
    prefix, suffix = embedding[:, :1], embedding[:, 1 + n_ctx :]
    bias = head.meta_net(images).unsqueeze(1)  # [B, 1, W]
    ctx_shifted = head.context.ctx.unsqueeze(0) + bias  # [B, n_ctx, W]
    logits = []
    for ctx_shifted_i, imf_i in zip(ctx_shifted, images, strict=True):
        ctx_i = ctx_shifted_i.unsqueeze(0).expand(len(names), -1, -1)
        text = clip_text(clip.model, torch.cat([prefix, ctx_i, suffix], dim=1), tokenized)
        text = text / text.norm(dim=-1, keepdim=True)
        logits.append(head.logit_scale * imf_i @ text.t())
    return torch.stack(logits)  # [B, C]


def test_cocoop_logits_loss_and_gradients_are_theirs(cache: Path) -> None:  # noqa: F811
    data = fit_data(cache)
    head = create_head("cocoop", {"epochs": 1, "batch_size": 2})
    assert isinstance(head, CoCoOp)
    head.fit(data)
    assert head.meta_net.linear1.weight.shape == (2, 32) and head.meta_net.linear2.weight.shape == (32, 2)
    with torch.no_grad():  # a meta-net that shifts the context visibly
        head.meta_net.linear2.weight.mul_(20.0)
    batch = first_batch(cache)
    head.train()
    expected = their_logits(head, list(data.text.classnames), batch["global"])
    ours = head.batch_scores(batch)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    params = [head.context.ctx, head.meta_net.linear1.weight, head.meta_net.linear2.bias]
    theirs = torch.autograd.grad(F.cross_entropy(expected, batch["labels"]), params)
    mine = torch.autograd.grad(F.cross_entropy(head.batch_scores(batch), batch["labels"]), params)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    with torch.no_grad():  # scoring in chunks of score_images: the same logits
        torch.testing.assert_close(head.batch_scores(batch), expected.detach(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # each image its own prompts: the class features differ between two images
        text = head.shifted_features(head.tower(), batch["global"][:2])  # [2, C, D]
    assert float((text[0] - text[1]).abs().max()) > 1e-3


def test_cocoop_defaults_are_their_base_to_novel_config() -> None:
    """configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml."""
    p = create_head("cocoop", {}).params
    assert (p.ctx_init, p.batch_size, p.epochs, p.lr, p.warmup_epochs, p.warmup_lr, p.keep) == (
        "a photo of a", 1, 10, 0.002, 1, 1e-5, "last")
    with pytest.raises(ClipCacheError, match=r"heads\.cocoop\.csc must be false"):
        create_head("cocoop", {"csc": True})


def test_cocoop_scores_novel_classes_after_a_reload(cache: Path, tmp_path: Path) -> None:  # noqa: F811
    data = fit_data(cache)
    base = FitData(SubsetSplit(data.train, [0, 1]), SubsetSplit(data.val, [0, 1]), SubsetText(data.text, [0, 1]),
                   1, torch.device("cpu"))
    head = create_head("cocoop", {"epochs": 1, "batch_size": 2}).fit(base)
    save_head(head, tmp_path / "cocoop", {})
    loaded, _ = load_head(tmp_path / "cocoop")
    assert isinstance(loaded, CoCoOp)
    test = FeatureSplit(cache / "test.h5")
    before = loaded.scores(test)  # [N, 2]
    loaded.retarget(SubsetText(data.text, [2, 0, 1]))
    after = loaded.scores(test)  # [N, 3]
    torch.testing.assert_close(after[:, 1:], before, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        expected = their_logits(loaded, [data.text.classnames[i] for i in (2, 0, 1)],
                                normalize(torch.from_numpy(test.read("global")[:2])))
    torch.testing.assert_close(after[:2], expected, rtol=1e-5, atol=1e-5)

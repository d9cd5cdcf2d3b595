"""KgCoOp and ProGrad against their authors' maths, restated on the tiny open_clip model's own modules and the same
tensors: prompt construction and initial context, each loss term, the projected gradient, base-to-novel."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.backbone import load_encoder
from pipeline.errors import ClipCacheError
from pipeline.heads import FitData, create_head
from pipeline.heads.classes import SubsetSplit, SubsetText
from pipeline.heads.io import load_head, save_head
from pipeline.heads.kgcoop import KgCoOp
from pipeline.heads.maths import normalize
from pipeline.heads.prograd import ProGrad, project
from pipeline.prompts.text import phrase_layout
from pipeline.store import FeatureSplit
from tests.heads.test_prompt_learners import cache, fit_data  # noqa: F401  (the tiny-ViT cache fixture)
from tests.helpers import TINY

PETS = "a type of pet, a photo of a"  # ProGrad's OxfordPets phrase: 8 words, 9 tokens ("pet" ",")


def clip_text(clip: torch.nn.Module, embeddings: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Their TextEncoder: + positional embedding, transformer (causal mask), ln_final, EOT row @ projection."""
    x = embeddings + clip.positional_embedding
    x = clip.transformer(x, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ clip.text_projection  # [C, D]


def first_batch(cache: Path) -> dict[str, torch.Tensor]:  # noqa: F811
    train = FeatureSplit(cache / "k2-s1" / "train.h5")
    return {"labels": torch.from_numpy(train.labels).long(),
            "global": normalize(torch.from_numpy(train.read("global")))}


def frozen_start(name: str, cache: Path, **params: object) -> tuple[FitData, torch.nn.Module]:  # noqa: F811
    """A head at its initial state (lr 0 for one epoch) and the data it was fitted on."""
    data = fit_data(cache)
    head = create_head(name, {"epochs": 1, "lr": 0.0, "warmup_lr": 0.0, **params})
    head.fit(data)
    return data, head


def test_kgcoop_loss_is_cross_entropy_plus_w_times_one_minus_mean_cosine(cache: Path) -> None:  # noqa: F811
    """htyao89/KgCoOp at c43ccc3, KgCoOp/trainers/kgcoop.py: PromptLearner with CTX_INIT ('a photo of a', 4
    vectors), CustomCLIP.forward's score = 1 - mean(cos(text, text_old)), loss = CE + W * score."""
    data, head = frozen_start("kgcoop", cache, w=3.0)
    assert isinstance(head, KgCoOp)
    clip = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    names = [n.replace("_", " ") for n in data.text.classnames]
    tokenized = clip.tokenizer(["a photo of a " + name + "." for name in names])  # [C, L]
    with torch.no_grad():
        embedding = clip.model.token_embedding(tokenized)  # [C, L, W]
        ctx_vectors = clip.model.token_embedding(clip.tokenizer(["a photo of a"]))[0, 1:5]  # [4, W]
    torch.testing.assert_close(head.context.ctx.detach(), ctx_vectors)
    with torch.no_grad():  # away from the hand-crafted prompt ('a photo of a {}.' here), so that the term acts
        head.context.ctx.add_(0.5 * torch.randn(head.context.ctx.shape, generator=torch.Generator().manual_seed(0)))
    ctx = head.context.ctx.unsqueeze(0).expand(len(names), -1, -1)  # [C, 4, W]
    prompts = torch.cat([embedding[:, :1], ctx, embedding[:, 5:]], dim=1)  # [C, L, W]
    text = normalize(clip_text(clip.model, prompts, tokenized))
    old = data.class_weights("coop")  # their CUSTOM_TEMPLATES[dataset] features, normalised
    batch = first_batch(cache)
    logits = data.text.logit_scale * batch["global"] @ text.T  # [B, D] x [D, C] -> [B, C]
    score = 1.0 - torch.mean(torch.nn.CosineSimilarity(dim=1, eps=1e-07)(text, old / old.norm(dim=-1, keepdim=True)))
    expected = F.cross_entropy(logits, batch["labels"]) + 3.0 * score
    head.train()
    ours = head.loss(batch, old)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    (grad_expected,) = torch.autograd.grad(expected, head.context.ctx)
    (grad_ours,) = torch.autograd.grad(head.loss(batch, old), head.context.ctx)
    torch.testing.assert_close(grad_ours, grad_expected, rtol=1e-4, atol=1e-7)
    assert float(score.detach()) > 1e-4
    assert head.params.batch_size == 128 and head.params.w == 3.0 and create_head("kgcoop", {}).params.w == 8.0


def test_kgcoop_pulls_the_learned_features_to_the_hand_crafted_ones(cache: Path) -> None:  # noqa: F811
    """With a large w the distance to the anchor falls during training; with w = 0 it is CoOp's loss alone."""
    data = fit_data(cache)
    anchor = data.class_weights("coop")
    distances = {}
    for w in (0.0, 50.0):
        head = create_head("kgcoop", {"epochs": 8, "lr": 0.05, "warmup_epochs": 0, "batch_size": 8, "w": w})
        head.fit(data)
        with torch.no_grad():
            text = head.context.features(head.tower())
        distances[w] = float(1 - F.cosine_similarity(text, anchor, dim=1).mean())
    assert distances[50.0] < distances[0.0]


def test_prograd_prompts_and_initial_context_are_theirs(cache: Path) -> None:  # noqa: F811
    """BeierZhu/Prompt-align at 1b76203, trainers/prograd.py PromptLearner with CTX_INIT: ctx [n_ctx, W] zeros, its
    last (word count) rows = token_embedding(tokenize(phrase))[0, 1:1 + word count]; prompts "X.. phrase name."
    -> cat(SOS, ctx, embeddings after n_ctx tokens). A phrase with more tokens than words keeps its last tokens
    fixed."""
    n_ctx = 10
    data, head = frozen_start("prograd", cache, ctx_init=PETS, n_ctx=n_ctx)
    assert isinstance(head, ProGrad)
    clip = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    words = len(PETS.split(" "))
    with torch.no_grad():
        ctx_vectors = torch.zeros(n_ctx, clip.model.token_embedding.weight.shape[1])
        ctx_vectors[n_ctx - words :] = clip.model.token_embedding(clip.tokenizer([PETS]))[0, 1 : 1 + words]
    torch.testing.assert_close(head.context.ctx.detach(), ctx_vectors)
    prefix = " ".join(["X"] * (n_ctx - words)) + " " + PETS
    names = [n.replace("_", " ") for n in data.text.classnames]
    tokenized = clip.tokenizer([prefix + " " + name + "." for name in names])  # [C, L]
    assert torch.equal(head.context.ids, tokenized)
    with torch.no_grad():
        embedding = clip.model.token_embedding(tokenized)  # [C, L, W]
        prompts = torch.cat([embedding[:, :1], ctx_vectors.expand(len(names), -1, -1), embedding[:, 1 + n_ctx :]], 1)
        expected = normalize(clip_text(clip.model, prompts, tokenized))
        torch.testing.assert_close(head.context.features(head.tower()), expected, rtol=1e-4, atol=1e-5)
    # the phrase's 9th token ('a') is after the slots: a fixed word of every prompt
    assert int(tokenized[0, 1 + n_ctx]) == int(clip.tokenizer(["a"])[0, 1])
    with pytest.raises(ClipCacheError, match="fewer than the 8 words"):
        phrase_layout(clip.tokenizer, ["cat"], 7, PETS)


def test_prograd_teacher_is_zero_shot_clip_with_their_template(cache: Path) -> None:  # noqa: F811
    """Their CLIP module: encode_text(tokenize(template.format(name))), normalised; a folder data set gets their
    generic 'a photo of a {}.'; the default context starts from that phrase (16 slots, 12 zeros)."""
    data, head = frozen_start("prograd", cache)
    assert isinstance(head, ProGrad) and head.phrase == "a photo of a"
    clip = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    names = [n.replace("_", " ") for n in data.text.classnames]
    with torch.no_grad():
        expected = normalize(clip.model.encode_text(clip.tokenizer([f"a photo of a {n}." for n in names])))
    torch.testing.assert_close(head.zero_shot_text(data, "a photo of a {}."), expected)
    assert head.context.ctx.shape[0] == 16 and bool((head.context.ctx[:12] == 0).all())
    assert bool((head.context.ctx[12:] != 0).any())


def their_step(head: ProGrad, batch: dict[str, torch.Tensor], teacher: torch.Tensor, lambda_: float,
               t: float) -> torch.Tensor:
    """ProGradLoss and prograd_backward_and_update restated: backward loss_b (retain), clone, zero, backward
    loss_a, and where cos(a, b) < 0: a - lambda (a . b_hat) b_hat."""
    head.zero_grad()
    text = head.context.features(head.tower())
    output = head.logit_scale * batch["global"] @ text.T  # [B, D] x [D, C] -> [B, C]
    zs = head.logit_scale * batch["global"] @ teacher.T
    xe_loss = F.cross_entropy(output, batch["labels"])
    tea_prob = F.softmax(zs / t, dim=-1)
    kl_loss = (-tea_prob * F.log_softmax(output / t, -1) * t * t).sum(1).mean()
    kl_loss.backward(retain_graph=True)
    b_grad = head.context.ctx.grad.clone()
    head.zero_grad()
    xe_loss.backward()
    a_grad = head.context.ctx.grad.clone()
    b_grad_norm = b_grad / torch.linalg.norm(b_grad)
    a_grad_norm = a_grad / torch.linalg.norm(a_grad)
    if torch.dot(a_grad_norm.flatten(), b_grad_norm.flatten()) < 0:
        return a_grad - lambda_ * torch.dot(a_grad.flatten(), b_grad_norm.flatten()) * b_grad_norm
    return a_grad


@pytest.mark.parametrize("lambda_", [1.0, 0.5])
def test_prograd_gradient_is_their_projected_gradient(cache: Path, lambda_: float) -> None:  # noqa: F811
    _, head = frozen_start("prograd", cache, projection=lambda_, temperature=2.0, n_ctx=6)
    assert isinstance(head, ProGrad)
    batch = first_batch(cache)
    # the random tower ranks class 1 first for every image: labels all 2 and a teacher more sure of class 1 make the
    # two gradients conflict (cosine about -0.5), so the projection acts
    batch["labels"] = torch.full_like(batch["labels"], 2)
    with torch.no_grad():
        teacher = 5 * head.context.features(head.tower())  # [C, D]
    head.train()
    expected = their_step(head, batch, teacher, lambda_, 2.0)
    head.zero_grad()
    loss = head.projected_backward(batch, teacher)
    assert head.context.ctx.grad is not None
    torch.testing.assert_close(head.context.ctx.grad, expected, rtol=1e-4, atol=1e-8)
    text = head.context.features(head.tower())
    plain = torch.autograd.grad(F.cross_entropy(head.logit_scale * batch["global"] @ text.T, batch["labels"]),
                                head.context.ctx)[0]
    assert not torch.allclose(plain, expected)  # the projection acted on this batch
    assert float(loss) == pytest.approx(float(F.cross_entropy(head.logit_scale * batch["global"] @ text.T.detach(),
                                                              batch["labels"])), rel=1e-5)


def test_projection_removes_only_a_conflicting_component() -> None:
    g, h = torch.tensor([1.0, -1.0]), torch.tensor([0.0, 2.0])
    torch.testing.assert_close(project(g, h, 1.0), torch.tensor([1.0, 0.0]))  # orthogonal to h after
    torch.testing.assert_close(project(g, h, 0.5), torch.tensor([1.0, -0.5]))
    torch.testing.assert_close(project(g, -h, 1.0), g)  # no conflict: unchanged
    torch.testing.assert_close(project(g, torch.zeros(2), 1.0), g)  # their NaN cosine fails the test: unchanged
    torch.testing.assert_close(project(torch.tensor([1.0, 0.0]), h, 1.0), torch.tensor([1.0, 0.0]))  # cos 0


def test_prograd_base_to_novel_keeps_its_layout_and_context(cache: Path, tmp_path: Path) -> None:  # noqa: F811
    data = fit_data(cache)
    base = FitData(SubsetSplit(data.train, [0, 1]), SubsetSplit(data.val, [0, 1]), SubsetText(data.text, [0, 1]),
                   1, torch.device("cpu"))
    head = create_head("prograd", {"epochs": 1, "n_ctx": 6, "ctx_init": PETS[-12:]})  # "a photo of a"
    head.fit(base)
    save_head(head, tmp_path / "prograd", {})
    loaded, _ = load_head(tmp_path / "prograd")
    assert isinstance(loaded, ProGrad) and loaded.phrase == "a photo of a"
    with torch.no_grad():
        fitted = loaded.context.features(loaded.tower()).clone()  # [2, D]
    loaded.retarget(SubsetText(data.text, [2, 0, 1]))
    clip = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    names = [data.text.classnames[i].replace("_", " ") for i in (2, 0, 1)]
    assert torch.equal(loaded.context.ids, clip.tokenizer([f"X X a photo of a {n}." for n in names]))
    with torch.no_grad():
        moved = loaded.context.features(loaded.tower())  # [3, D]
    torch.testing.assert_close(moved[1:], fitted)
    assert loaded.shapes["classes"] == 3


def test_kgcoop_fits_base_classes_against_their_own_anchors_and_scores_novel_ones(cache: Path) -> None:  # noqa: F811
    data = fit_data(cache)
    base = FitData(SubsetSplit(data.train, [0, 1]), SubsetSplit(data.val, [0, 1]), SubsetText(data.text, [0, 1]),
                   1, torch.device("cpu"))
    head = create_head("kgcoop", {"epochs": 1, "batch_size": 4})
    assert isinstance(head, KgCoOp)
    head.fit(base)
    with torch.no_grad():
        fitted = head.context.features(head.tower()).clone()  # [2, D]
    head.retarget(SubsetText(data.text, [2, 0, 1]))
    with torch.no_grad():
        moved = head.context.features(head.tower())  # [3, D]
    torch.testing.assert_close(moved[1:], fitted)
    assert head.scores(FeatureSplit(cache / "test.h5")).shape[1] == 3

"""VPT and CAVPT on a real tiny ViT cache, restated: the prompts each block gets (CAVPT's two `keys` modes, which
layers are class-aware, the top classes), the seeded initial prompts, and the errors that name the value at fault."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.errors import ClipCacheError
from pipeline.heads import create_head
from pipeline.heads.maths import normalize
from pipeline.heads.vpt_late import prompted_blocks
from pipeline.store import FeatureSplit
from tests.heads.test_prompt_learners import cache, fit_data  # noqa: F401  (the module's tiny late-token cache)

FROZEN = {"epochs": 1, "lr": 0.0, "warmup_lr": 0.0, "warmup_epochs": 0}  # a fit that leaves the initial state


def train_batch(folder: Path) -> dict[str, torch.Tensor]:
    train = FeatureSplit(folder / "k2-s1" / "train.h5")
    return {"labels": torch.from_numpy(train.labels).long(),
            "global": normalize(torch.from_numpy(train.read("global"))),
            "late_tokens": torch.from_numpy(train.read("late_tokens")).float()}


def class_aware(module, text: torch.Tensor, keys: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """p_j = LP(LN(Attn(q_j, keys) + s)), q_j = MLP(g_j); single-head scaled dot product; aux = classifier(LN(...))."""
    queries = module.mlp[2](F.gelu(module.mlp[0](text)))  # [B, K, W]
    weights = torch.softmax(queries @ keys.transpose(1, 2) / math.sqrt(keys.shape[-1]), dim=-1)  # [B, K, M]
    out = F.layer_norm(weights @ keys + cls[:, None], (keys.shape[-1],), module.norm.weight, module.norm.bias)
    return out @ module.proj.weight.T + module.proj.bias, out @ module.classifier.weight.T


@pytest.mark.parametrize("keys", ["class_token", "all_tokens"])
def test_cavpt_prompts_attend_over_the_keys_its_mode_names(cache: Path, keys: str) -> None:  # noqa: F811
    """k = 2 prompted blocks, the last class-aware: block 0 gets the P visual prompts only; block 1 gets them and K_N
    class-aware prompts from the top-K_N zero-shot classes, attending over [s, P] (class_token) or [s, P, E]
    (all_tokens)."""
    head = create_head("cavpt", {"k": 2, "n_prompts": 2, "top_k": 2, "keys": keys, **FROZEN}).fit(fit_data(cache))
    batch = train_batch(cache)
    fn, outputs = head.class_aware_prompts(batch)
    x = torch.randn(len(batch["labels"]), 17, 48, generator=torch.Generator().manual_seed(3))  # [B, 1+HW, W]
    with torch.no_grad():
        visual = head.prompts.detach()  # [2, P, W]
        torch.testing.assert_close(fn(0, x), visual[0].expand(len(x), -1, -1))
        assert outputs.aux == []
        ours = fn(1, x)
        zero_shot = batch["global"] @ head.class_weights.T  # [B, C]
        top = zero_shot.argsort(dim=-1, descending=True)[:, :2]  # [B, 2]
        keys_of = [x[:, :1], visual[1].expand(len(x), -1, -1)] if keys == "class_token" else \
            [x, visual[1].expand(len(x), -1, -1)]
        prompts, aux = class_aware(head.class_aware[0], head.class_weights[top], torch.cat(keys_of, dim=1), x[:, 0])
    assert torch.equal(outputs.top, top)
    torch.testing.assert_close(ours, torch.cat([visual[1].expand(len(x), -1, -1), prompts], dim=1))
    assert len(outputs.aux) == 1
    torch.testing.assert_close(outputs.aux[0], aux)
    assert ours.shape == (len(x), 2 + 2, 48)


def test_cavpt_top_k_zero_is_every_class_and_large_top_k_is_capped(cache: Path) -> None:  # noqa: F811
    batch = train_batch(cache)
    for top_k, expected in ((0, 3), (5, 3), (1, 1)):
        head = create_head("cavpt", {"k": 1, "n_prompts": 1, "top_k": top_k, **FROZEN}).fit(fit_data(cache))
        top = head.top_classes(batch)
        assert top.shape == (len(batch["labels"]), expected)
        order = (batch["global"] @ head.class_weights.T).argsort(dim=-1, descending=True)[:, :expected]
        assert torch.equal(top, order)


def refusal(cavpt_layers: int = 1, k: int = 1, top_k: int = 5, depth: str = "deep", keys: str = "class_token") -> str:
    return (f"heads.cavpt: need 1 <= cavpt_layers <= k ({cavpt_layers}, {k}), top_k >= 0 ({top_k}; 0: every class), "
            f"depth 'deep' ({depth!r}) and keys 'class_token' or 'all_tokens' ({keys!r})")


@pytest.mark.parametrize("params", [{"cavpt_layers": 2}, {"cavpt_layers": 0}, {"top_k": -1}, {"depth": "shallow"},
                                    {"keys": "patches"}])
def test_cavpt_refuses_what_it_cannot_build(cache: Path, params: dict) -> None:  # noqa: F811
    with pytest.raises(ClipCacheError) as error:
        create_head("cavpt", {"k": 1, **params, **FROZEN}).fit(fit_data(cache))
    assert str(error.value) == refusal(**params)


def test_cavpt_k0_allows_class_aware_prompts_in_every_block(cache: Path) -> None:  # noqa: F811
    head = create_head("cavpt", {"k": 0, "cavpt_layers": 2, "n_prompts": 1, "top_k": 1, **FROZEN}).fit(fit_data(cache))
    assert len(head.class_aware) == 2 and head.shapes["blocks"] == 2


def test_cavpt_layers_two_makes_both_blocks_class_aware(cache: Path) -> None:  # noqa: F811
    head = create_head("cavpt", {"k": 2, "cavpt_layers": 2, "n_prompts": 1, "top_k": 2, **FROZEN}).fit(fit_data(cache))
    assert len(head.class_aware) == 2
    batch = train_batch(cache)
    fn, outputs = head.class_aware_prompts(batch)
    x = torch.randn(len(batch["labels"]), 17, 48, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        first, second = fn(0, x), fn(1, x)
        keys = torch.cat([x[:, :1], head.prompts[0].expand(len(x), -1, -1)], dim=1)
        expected, _ = class_aware(head.class_aware[0], head.class_weights[outputs.top], keys, x[:, 0])
    assert first.shape == second.shape == (len(x), 3, 48) and len(outputs.aux) == 2
    torch.testing.assert_close(first[:, 1:], expected)


@pytest.mark.parametrize("depth", ["deep", "shallow"])
def test_vpt_prompts_start_seeded_from_the_data_seed(cache: Path, depth: str) -> None:  # noqa: F811
    """The initial prompts are N(0, init_std) drawn right after torch.manual_seed(data.seed), whatever the global
    seed was; a fit at lr 0 keeps them."""
    torch.manual_seed(12345)
    head = create_head("vpt_late", {"k": 2, "n_prompts": 3, "init_std": 0.5, "depth": depth, **FROZEN})
    head.fit(fit_data(cache))
    torch.manual_seed(1)  # fit_data's seed
    expected = torch.zeros(2 if depth == "deep" else 1, 3, 48).normal_(0, 0.5)
    torch.testing.assert_close(head.prompts.detach(), expected)
    assert head.shapes == {"dim": 32, "classes": 3, "width": 48, "stored": 2, "n_ctx": 0, "text_width": 0, "length": 0,
                           "blocks": 2}


def test_vpt_batch_prompts_and_scores(cache: Path) -> None:  # noqa: F811
    """Each prompted block i gets prompts[i] for every image; scores are logit_scale cos(prompted feature, class)."""
    head = create_head("vpt_late", {"k": 2, "n_prompts": 2, "init_std": 0.3, **FROZEN}).fit(fit_data(cache))
    batch = train_batch(cache)
    fn = head.batch_prompts(batch)
    for i in (0, 1):
        torch.testing.assert_close(fn(i, batch["late_tokens"]), head.prompts[i].expand(len(batch["labels"]), -1, -1))
    with torch.no_grad():
        features = normalize(head.late()(batch["late_tokens"], lambda i, _x: head.prompts[i].expand(
            len(batch["labels"]), -1, -1)))
        expected = head.logit_scale * features @ head.class_weights.T
        torch.testing.assert_close(head.batch_scores(dict(batch)), expected)
        assert float(head.logit_scale) == fit_data(cache).text.logit_scale
        torch.testing.assert_close(head.loss(dict(batch)), F.cross_entropy(expected, batch["labels"]))


def test_vpt_refuses_a_depth_and_a_negative_k(cache: Path) -> None:  # noqa: F811
    with pytest.raises(ClipCacheError) as error:
        create_head("vpt_late", {"k": 1, "depth": "middle", **FROZEN}).fit(fit_data(cache))
    assert str(error.value) == "heads.vpt_late.depth must be one of deep, shallow, got 'middle'"
    with pytest.raises(ClipCacheError, match=r"k must be >= 0 \(0: every block\), got -1"):
        prompted_blocks(torch.nn.Module(), -1)
    assert prompted_blocks(torch.nn.Module(), 0) == 1 and prompted_blocks(torch.nn.Module(), 3) == 3


@pytest.mark.parametrize("text_prompts", [False, True])
def test_vpt_retarget_scores_other_classes(cache: Path, text_prompts: bool) -> None:  # noqa: F811
    """Base-to-novel: the frozen classifier of the new classes' text, or the learned context in their prompts."""
    from pipeline.heads.classes import SubsetText
    from pipeline.heads.inputs import text_classifier
    from pipeline.prompts.text import prompt_layout

    data = fit_data(cache)
    head = create_head("vpt_late", {"k": 1, "n_prompts": 1, "text_prompts": text_prompts, "n_ctx": 2,
                                    "class_token_position": "middle", **FROZEN}).fit(data)
    novel = SubsetText(data.text, [2, 0])
    head.retarget(novel)
    assert head.shapes["classes"] == 2
    torch.testing.assert_close(head.class_weights, text_classifier(novel, "coop", torch.device("cpu")))
    if text_prompts:
        layout = prompt_layout(head.tokenizer(torch.device("cpu")), novel.classnames, 2, "middle")
        assert torch.equal(head.context.ids, layout.ids) and torch.equal(head.context.slots, layout.slots)
    assert head.scores(FeatureSplit(cache / "test.h5")).shape[1] == 2


@pytest.mark.parametrize("csc", [False, True])
def test_coop_context_starts_seeded_from_the_data_seed(cache: Path, csc: bool) -> None:  # noqa: F811
    """CoOp's random init: N(0, init_std) drawn right after torch.manual_seed(data.seed), one set or one per class."""
    torch.manual_seed(777)
    head = create_head("coop", {"n_ctx": 3, "csc": csc, "init_std": 0.4, "epochs": 1, "lr": 0.0, "warmup_lr": 0.0})
    head.fit(fit_data(cache))
    torch.manual_seed(1)
    expected = torch.zeros((3, 3, 32) if csc else (3, 32)).normal_(0, 0.4)
    torch.testing.assert_close(head.context.ctx.detach(), expected)
    assert head.shapes == {"classes": 3, "n_ctx": 3, "width": 32, "length": 77}


def test_vpt_warm_up_runs_at_warmup_lr(cache: Path) -> None:  # noqa: F811
    """One warm-up epoch at warmup_lr 0 leaves the prompts where they started, whatever lr says."""
    start = create_head("vpt_late", {"k": 1, "n_prompts": 2, **FROZEN}).fit(fit_data(cache))
    warm = create_head("vpt_late", {"k": 1, "n_prompts": 2, "epochs": 1, "lr": 5.0, "warmup_epochs": 1,
                                    "warmup_lr": 0.0}).fit(fit_data(cache))
    torch.testing.assert_close(warm.prompts.detach(), start.prompts.detach())
    moved = create_head("vpt_late", {"k": 1, "n_prompts": 2, "epochs": 1, "lr": 5.0, "warmup_epochs": 0,
                                     "warmup_lr": 0.0}).fit(fit_data(cache))
    assert not torch.allclose(moved.prompts, start.prompts)


def test_vpt_without_prompts_records_its_validation_accuracy(cache: Path) -> None:  # noqa: F811
    from pipeline.heads.base import val_accuracy

    data = fit_data(cache)
    head = create_head("vpt_late", {"n_prompts": 0, "k": 1, **FROZEN}).fit(data)
    assert head.selected == {"epoch": 0, "val_acc": val_accuracy(head, data.val)} and head.history == []


def test_coop_warm_up_runs_at_warmup_lr(cache: Path) -> None:  # noqa: F811
    """CoOp's constant warm-up epoch: at warmup_lr 0 the context stays where it started, whatever lr says."""
    start = create_head("coop", {"n_ctx": 2, "epochs": 1, "lr": 0.0, "warmup_lr": 0.0}).fit(fit_data(cache))
    warm = create_head("coop", {"n_ctx": 2, "epochs": 1, "lr": 5.0, "warmup_epochs": 1, "warmup_lr": 0.0})
    warm.fit(fit_data(cache))
    torch.testing.assert_close(warm.context.ctx.detach(), start.context.ctx.detach())
    moved = create_head("coop", {"n_ctx": 2, "epochs": 1, "lr": 5.0, "warmup_epochs": 0}).fit(fit_data(cache))
    assert not torch.allclose(moved.context.ctx, start.context.ctx)

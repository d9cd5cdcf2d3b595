"""Prompt learners (coop, vpt_late, cavpt), and prolip which also builds a frozen encoder part, on a real tiny cache:
the contract, the prompt layout, the equivalence of the cached-token path with the full encoder, and that what they
learn is wired to the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pipeline.backbone import load_encoder
from pipeline.backbone.naming import model_label
from pipeline.encode import run_encode
from pipeline.errors import ClipCacheError
from pipeline.heads import FitData, create_head
from pipeline.heads.cavpt import CAVPT
from pipeline.heads.io import load_head, save_head
from pipeline.heads.maths import normalize
from pipeline.params import encode_params, runtime_params
from pipeline.prompts.text import TextTower, prompt_layout
from pipeline.prompts.vision import LateViT
from pipeline.store import FeatureSplit, TextFeatures
from tests.heads.conftest import PROMPT_LEARNERS, QUICK
from tests.helpers import LABEL, TINY, encode_section


@pytest.fixture(scope="module")
def cache(image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-ViT cache (2 blocks) keeping the tokens entering both blocks (late_tokens: 2), stored in float16."""
    section = encode_section(image_root, "vit", tmp_path_factory.mktemp("late"), features__late_tokens=2,
                             features__spatial_dtype="float16", features__pooled=True)  # pooled: prolip's input
    return run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder


def fit_data(cache: Path) -> FitData:
    return FitData(FeatureSplit(cache / "k2-s1" / "train.h5"), FeatureSplit(cache / "k2-s1" / "val.h5"),
                   TextFeatures(cache / "text.h5"), seed=1, device=torch.device("cpu"))


@pytest.mark.parametrize("k", [1, 2])
def test_last_k_blocks_on_cached_tokens_reproduce_the_cached_global(cache: Path, k: int) -> None:
    """The equivalence: no prompts, blocks L-k.., ln_post and proj on the float16 tokens == the stored global."""
    visual = load_encoder(TINY["vit"], "none", torch.device("cpu")).model.visual
    late = LateViT(visual, stored=2, k=k)
    for split, tokens, expected in ((FeatureSplit(cache / "test.h5"), "late_tokens", "global"),
                                    (FeatureSplit(cache / "k2-s1" / "train.h5"), "views/late_tokens", "views/global")):
        stored = torch.from_numpy(split.read(tokens)).float()
        target = torch.from_numpy(split.read(expected)).float()
        if tokens.startswith("views/"):
            stored, target = stored.flatten(0, 1), target.flatten(0, 1)  # [V, N, ...] -> [V*N, ...]
        with torch.no_grad():
            out = late(stored)  # [N, D]
        assert split.read(tokens).dtype == np.float16
        torch.testing.assert_close(out, target, rtol=2e-2, atol=2e-2 * float(target.abs().mean()))
        assert float(torch.nn.functional.cosine_similarity(out, target).min()) > 0.9995


def test_prompts_change_the_feature_and_depth_is_checked(cache: Path) -> None:
    visual = load_encoder(TINY["vit"], "none", torch.device("cpu")).model.visual
    tokens = torch.from_numpy(FeatureSplit(cache / "test.h5").read("late_tokens")).float()
    late = LateViT(visual, stored=2, k=1)
    with torch.no_grad():
        plain, prompted = late(tokens), late(tokens, lambda _i, x: torch.randn(x.shape[0], 3, x.shape[2]))
    assert not torch.allclose(plain, prompted, atol=1e-3)
    with pytest.raises(ClipCacheError, match=r"k=3 must be between 1 and the cached encode\.features\.late_tokens=2"):
        LateViT(visual, stored=2, k=3)


def test_vpt_shallow_is_the_tower_run_on_the_sequence_with_its_prompts(cache: Path) -> None:
    """VPT-shallow (eqs. 4-5): P enters the first block and flows through; the same as the unprompted tower run on
    the sequence [class, P, patches] itself."""
    visual = load_encoder(TINY["vit"], "none", torch.device("cpu")).model.visual
    tokens = torch.from_numpy(FeatureSplit(cache / "test.h5").read("late_tokens")).float()  # [N, 1+HW, W]
    prompts = torch.randn(tokens.shape[0], 3, tokens.shape[2])  # [N, P, W]
    calls: list[int] = []

    def fn(i: int, _x: torch.Tensor) -> torch.Tensor:
        calls.append(i)
        return prompts

    with torch.no_grad():
        shallow = LateViT(visual, stored=2, k=2, shallow=True)(tokens, fn)
        expected = LateViT(visual, stored=2, k=2)(torch.cat([tokens[:, :1], prompts, tokens[:, 1:]], dim=1))
        deep = LateViT(visual, stored=2, k=2)(tokens, fn)
    assert calls == [0, 0, 1]  # shallow asks for prompts once; deep at both blocks
    torch.testing.assert_close(shallow, expected)
    assert not torch.allclose(shallow, deep, atol=1e-4)


@pytest.mark.parametrize("depth", ["deep", "shallow"])
def test_vpt_k0_prompts_every_block(cache: Path, depth: str) -> None:
    head = create_head("vpt_late", {**QUICK["vpt_late"], "k": 0, "depth": depth}).fit(fit_data(cache))
    assert head.shapes["blocks"] == 2 and head.late().prompted == 0  # the tiny ViT's 2 blocks, from the first
    assert tuple(head.prompts.shape[:2]) == ((2 if depth == "deep" else 1), QUICK["vpt_late"]["n_prompts"])


@pytest.mark.parametrize("position", ["end", "middle"])
def test_prompt_layout_is_the_hand_written_prompt_and_the_tower_takes_embeddings(position: str) -> None:
    encoder = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    names = ["red_thing", "a dog", "cat"]
    layout = prompt_layout(encoder.tokenizer, names, 4, position)
    written = [f"X X X X {n.replace('_', ' ')}." if position == "end" else f"X X {n.replace('_', ' ')} X X."
               for n in names]
    ids = encoder.tokenizer(written)
    assert torch.equal(layout.ids, ids)
    filler = ids[0, 1]
    assert all(bool((layout.ids[c, layout.slots[c]] == filler).all()) for c in range(len(names)))
    tower = TextTower(encoder.model)
    with torch.no_grad():
        torch.testing.assert_close(tower.encode(tower.embed(ids), ids), encoder.model.encode_text(ids))
    with pytest.raises(ClipCacheError, match="does not fit the text context"):
        prompt_layout(encoder.tokenizer, ["cat"], 80, position)


def test_coop_prompts_are_built_and_encoded_as_the_authors(cache: Path) -> None:
    """github KaiyangZhou/CoOp at ff61507c790454bce7c5052c3ac39e60772f1f89, trainers/coop.py PromptLearner and
    TextEncoder: prompts "X X .. X name." tokenized; embedding = cat([SOS embedding, ctx, embeddings after the n_ctx
    X's]); x + positional_embedding -> transformer (causal mask) -> ln_final -> x[arange, ids.argmax(-1)] @
    text_projection; normalised. Restated with the tiny open_clip model's own modules (OpenAI tokenizer)."""
    data = fit_data(cache)
    head = create_head("coop", {"epochs": 1, "n_ctx": 4}).fit(data)
    model = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    clip = model.model
    names = [n.replace("_", " ") for n in data.text.classnames]
    tokenized = model.tokenizer([" ".join(["X"] * 4) + " " + name + "." for name in names])  # [C, L]
    with torch.no_grad():
        embedding = clip.token_embedding(tokenized)  # [C, L, W]
        ctx = head.context.ctx.unsqueeze(0).expand(len(names), -1, -1)  # [C, 4, W]
        prompts = torch.cat([embedding[:, :1], ctx, embedding[:, 1 + 4 :]], dim=1)  # [C, L, W]
        x = prompts + clip.positional_embedding
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0]), tokenized.argmax(dim=-1)] @ clip.text_projection  # [C, D]
        expected = x / x.norm(dim=-1, keepdim=True)
        ours = head.context.features(head.tower())
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    assert head.selected["epoch"] == 1 and head.selected["keep"] == "last"


@pytest.mark.parametrize("name", PROMPT_LEARNERS)
def test_contract(name: str, cache: Path, tmp_path: Path) -> None:
    data, test = fit_data(cache), FeatureSplit(cache / "test.h5")
    head = create_head(name, QUICK[name])
    torch.manual_seed(0)
    assert head.fit(data) is head
    logits = head.scores(test)
    assert logits.shape == (test.n, data.n_classes) and torch.isfinite(logits).all()
    again = create_head(name, QUICK[name])
    torch.manual_seed(0)
    torch.testing.assert_close(again.fit(data).scores(test), logits, msg=f"{name} is not deterministic under a seed")
    save_head(head, tmp_path / name, {"test": True})
    weights = load_file(str(tmp_path / name / "head.safetensors"))
    assert not [k for k in weights if "resblocks" in k or "token_embedding" in k], "frozen weights were saved"
    loaded, meta = load_head(tmp_path / name)
    assert meta["encoder"]["model"] == LABEL["vit"] and meta["encoder"]["random_weights"] is True
    assert torch.equal(loaded.scores(test), logits), f"{name}: logits differ after save/load"


def test_coop_from_words_starts_at_the_hand_written_prompt(cache: Path) -> None:
    """ctx_init 'a photo of a' with a zero learning rate: logits are CLIP's for "a photo of a <name>."."""
    data, test = fit_data(cache), FeatureSplit(cache / "test.h5")
    head = create_head("coop", {"ctx_init": "a photo of a", "epochs": 1, "lr": 0.0, "warmup_lr": 0.0})
    head.fit(data)
    assert head.shapes["n_ctx"] == 4
    encoder = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    prompts = [f"a photo of a {n.replace('_', ' ')}." for n in data.text.classnames]
    with torch.no_grad():
        text = normalize(encoder.model.encode_text(encoder.tokenizer(prompts)))  # [C, D]
    expected = data.text.logit_scale * normalize(torch.from_numpy(test.read("global"))) @ text.T
    torch.testing.assert_close(head.scores(test), expected, rtol=1e-4, atol=1e-4)


def test_vpt_late_without_prompts_is_zero_shot(cache: Path) -> None:
    data, test = fit_data(cache), FeatureSplit(cache / "test.h5")
    head = create_head("vpt_late", {"n_prompts": 0, "epochs": 1, "warmup_epochs": 0})
    head.fit(data)
    expected = data.text.logit_scale * normalize(torch.from_numpy(test.read("global"))) @ data.class_weights("coop").T
    torch.testing.assert_close(head.scores(test), expected, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("name", PROMPT_LEARNERS)
def test_training_lowers_the_training_loss(name: str, cache: Path) -> None:
    longer = {"epochs": 25, "lr": 0.05, "warmup_epochs": 0}
    if name == "prolip":
        longer.pop("warmup_epochs")  # prolip has no warm-up (a cosine from the start)
    if name == "clip_lora":
        longer = {"n_iters": 13, "lr": 0.01, "dropout": 0.0}  # iterations, not epochs: 26 steps at 2 shots
    head = create_head(name, {**QUICK[name], **longer})
    head.fit(fit_data(cache))
    losses = [h["train_loss"] for h in head.history[1:]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses


def cavpt_batch(cache: Path, weight: float) -> tuple[CAVPT, dict[str, torch.Tensor]]:
    """A cavpt head at its initial state (lr 0) and one training minibatch."""
    head = create_head("cavpt", {**QUICK["cavpt"], "aux_weight": weight, "epochs": 1, "lr": 0.0, "warmup_lr": 0.0})
    assert isinstance(head, CAVPT)
    head.fit(fit_data(cache))
    train = FeatureSplit(cache / "k2-s1" / "train.h5")
    batch = {"labels": torch.from_numpy(train.labels).long(),
             "global": normalize(torch.from_numpy(train.read("global"))),
             "late_tokens": torch.from_numpy(train.read("late_tokens")).float()}
    return head, batch


def test_cavpt_auxiliary_loss_is_eq_10_and_alone_trains_its_classifier(cache: Path) -> None:
    head, batch = cavpt_batch(cache, 1.0)
    head.train()
    loss = head.loss(batch)
    assert sorted(batch) == ["global", "labels", "late_tokens"]  # the minibatch is read, never written
    logits, outputs = head.forward_aux(batch)  # the same minibatch again: the same logits and auxiliary outputs
    torch.testing.assert_close(logits, head.batch_scores(batch), rtol=0, atol=0)
    main = torch.nn.functional.cross_entropy(logits, batch["labels"])
    aux = torch.stack(outputs.aux).detach().numpy()  # [layers, B, K_N, C]
    top, labels = outputs.top.numpy(), batch["labels"].numpy()
    log_p = aux - np.log(np.exp(aux).sum(-1, keepdims=True))
    expected = []
    for layer in range(aux.shape[0]):
        for b in range(aux.shape[1]):
            for j in range(aux.shape[2]):  # the true class's output: one-hot; the others: uniform 1/K
                target = np.eye(3)[labels[b]] if top[b, j] == labels[b] else np.full(3, 1 / 3)
                expected.append(-(target * log_p[layer, b, j]).sum())
    assert float((loss - main).detach()) == pytest.approx(float(np.mean(expected)), rel=1e-5)
    for weight, moves in ((0.0, False), (1.0, True)):
        head, batch = cavpt_batch(cache, weight)
        head.train()
        head.loss(batch).backward()
        grad = head.class_aware[0].classifier.weight.grad
        assert (grad is not None and bool(grad.abs().sum() > 0)) == moves


def test_dual_modality_learns_text_context_at_its_own_rate(cache: Path) -> None:
    head = create_head("cavpt", {**QUICK["cavpt"], "text_prompts": True, "n_ctx": 3, "keys": "all_tokens"})
    head.fit(fit_data(cache))
    groups = head.param_groups()
    assert [g.get("lr_scale", 1.0) for g in groups] == [1.0, 0.2]
    assert groups[1]["params"] == [head.context.ctx]
    test = FeatureSplit(cache / "test.h5")
    assert head.scores(test).shape == (test.n, 3)


@pytest.mark.parametrize("position", ["end", "middle"])
def test_hugging_face_text_towers_take_the_context_as_input_embeddings(position: str, tmp_path: Path) -> None:
    """The roberta-ViT-B-32 layout (a tiny RoBERTa built offline): prompts as `inputs_embeds` give encode_text's
    features, and CoOp's layout is the hand-written prompt for that tokenizer too."""
    pytest.importorskip("transformers")
    from tests.hf_tower import make_hf_model

    encoder = load_encoder(str(make_hf_model(tmp_path)), "none", torch.device("cpu"))
    names = ["red thing", "dog", "blue"]
    layout = prompt_layout(encoder.tokenizer, names, 2, position)
    written = [f"X X {n}." if position == "end" else f"X {n} X." for n in names]
    ids = encoder.tokenizer(written)
    assert torch.equal(layout.ids, ids)
    tower = TextTower(encoder.model)
    assert tower.kind == "hf"
    with torch.no_grad():
        torch.testing.assert_close(tower.encode(tower.embed(ids), ids), encoder.model.encode_text(ids))


def test_coop_trains_on_a_hugging_face_text_tower(image_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tests.hf_tower import make_hf_model

    config = str(make_hf_model(tmp_path))
    section = encode_section(image_root, config, tmp_path / "cache", features__late_tokens=1)
    folder = run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder
    head = create_head("coop", {"epochs": 3, "n_ctx": 4, "class_token_position": "middle", "csc": True})
    head.fit(fit_data(folder))
    assert head.context.ctx.shape == (3, 4, 32)
    test = FeatureSplit(folder / "test.h5")
    save_head(head, tmp_path / "coop", {})
    loaded, meta = load_head(tmp_path / "coop")
    assert meta["encoder"]["model"] == model_label(config) and model_label(config).startswith("tiny-roberta-ViT-")
    assert torch.equal(loaded.scores(test), head.scores(test)) and torch.isfinite(head.scores(test)).all()


def test_vpt_deep_over_every_block_needs_the_tokens_after_the_patch_embedding(image_root: Path, tmp_path: Path) -> None:
    section = encode_section(image_root, "vit", tmp_path, features__late_tokens=1, views__count=1)
    folder = run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder
    with pytest.raises(ClipCacheError, match=r"k=0 prompts every one of the 2 blocks .*features.late_tokens: 2 \(the "
                                             r"cache "
                                             r"holds 1\); or set heads.vpt_late.k <= 1"):
        create_head("vpt_late", {"k": 0}).fit(fit_data(folder))


def test_coop_retargeted_keeps_its_context_in_other_class_prompts(cache: Path) -> None:
    """Base-to-novel for CoOp: the context learned on the base classes, placed in the prompts of other names."""
    from pipeline.heads.classes import SubsetSplit, SubsetText

    data = fit_data(cache)
    base = FitData(SubsetSplit(data.train, [0, 1]), SubsetSplit(data.val, [0, 1]), SubsetText(data.text, [0, 1]),
                   1, torch.device("cpu"))
    head = create_head("coop", {"epochs": 1, "n_ctx": 4}).fit(base)
    with torch.no_grad():
        fitted = head.context.features(head.tower()).clone()  # [2, D]
    head.retarget(SubsetText(data.text, [2, 0, 1]))
    with torch.no_grad():
        moved = head.context.features(head.tower())  # [3, D]
    assert moved.shape[0] == 3 and head.shapes["classes"] == 3
    torch.testing.assert_close(moved[1:], fitted)
    assert not torch.allclose(moved[0], fitted[0])
    csc = create_head("coop", {"epochs": 1, "n_ctx": 4, "csc": True}).fit(base)
    with pytest.raises(ClipCacheError, match="class-specific contexts"):
        csc.retarget(SubsetText(data.text, [2]))

"""IVLP and MaPLe against their authors' maths (muzairkhattak/multimodal-prompt-learning at 69bce21, clip/model.py
ResidualAttentionBlock_IVLP / _MaPLe, VisionTransformer*, TextEncoder, trainers/maple.py, independentVL.py), restated
on a tiny open_clip ViT with 3 blocks in each tower: the image prompts appended before ln_pre and replaced block by
block, the text context and its deep replacements, the couplings, logits and gradients; base-to-novel; refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.backbone import load_encoder
from pipeline.backbone.blocks import run_hooked
from pipeline.encode import run_encode
from pipeline.errors import ClipCacheError
from pipeline.heads import FitData, create_head
from pipeline.heads.classes import SubsetSplit, SubsetText
from pipeline.heads.io import load_head, save_head
from pipeline.heads.ivlp import IVLP
from pipeline.heads.maple import MaPLe
from pipeline.heads.maths import normalize
from pipeline.heads.vl_prompts import VLPrompts
from pipeline.params import encode_params, runtime_params
from pipeline.store import FeatureSplit, TextFeatures
from tests.helpers import CONFIGS, encode_section

DEEP = str(CONFIGS / "tiny-ViT-deep.json")


@pytest.fixture(scope="module")
def deep_cache(image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of a tiny ViT with 3 blocks per tower, keeping the tokens entering block 0 (late_tokens: 3)."""
    section = encode_section(image_root, DEEP, tmp_path_factory.mktemp("deep"), features__late_tokens=3,
                             views__count=2, features__spatial=False, features__spatial_raw=False)
    return run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder


def data_of(cache: Path) -> FitData:
    return FitData(FeatureSplit(cache / "k2-s1" / "train.h5"), FeatureSplit(cache / "k2-s1" / "val.h5"),
                   TextFeatures(cache / "text.h5"), seed=1, device=torch.device("cpu"))


def frozen(name: str, cache: Path, **params: object) -> tuple[FitData, VLPrompts]:
    """A head at its initial state (lr 0), then every parameter moved by noise so that each path acts."""
    data = data_of(cache)
    head = create_head(name, {"epochs": 1, "lr": 0.0, "warmup_lr": 0.0, **params})
    assert isinstance(head, VLPrompts)
    head.fit(data)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for q in head.parameters():
            q.add_(torch.randn(q.shape, generator=generator))
    return data, head


def their_image(model: torch.nn.Module, pixels: torch.Tensor, shallow: torch.Tensor,
                deep: list[torch.Tensor]) -> torch.Tensor:
    """VisionTransformer_MaPLe / VisionTransformer (VPT) forward: conv1, class token, positions, prompts appended,
    ln_pre, blocks (block i >= 1 replaces the last n tokens with deep[i-1] while there are any), ln_post(x[:, 0]) @
    proj; normalised."""
    visual = model.visual
    x = visual.conv1(pixels)  # [B, W, g, g]
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, g*g, W]
    cls = visual.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
    x = torch.cat([x, shallow.expand(x.shape[0], -1, -1)], dim=1)
    x = visual.ln_pre(x)
    n, counter = shallow.shape[0], 0
    for i, block in enumerate(visual.transformer.resblocks):
        if i > 0 and counter <= len(deep) - 1:
            x = torch.cat([x[:, : x.shape[1] - n], deep[counter].expand(x.shape[0], -1, -1)], dim=1)
            counter += 1
        x = block(x)
    x = visual.ln_post(x[:, 0, :]) @ visual.proj
    return x / x.norm(dim=-1, keepdim=True)


def their_text(model: torch.nn.Module, tokenizer, classnames: list[str], ctx: torch.Tensor,
               deep: list[torch.Tensor]) -> torch.Tensor:
    """PromptLearner (CTX_INIT 'a photo of a', n_ctx <= 4) and TextEncoder with deep prompts: cat(SOS, ctx, suffix)
    + positions; block i >= 1 replaces tokens 1..1+n with deep[i-1] while there are any; ln_final; EOT @ proj."""
    n = ctx.shape[0]
    tokenized = tokenizer([f"a photo of a {name.replace('_', ' ')}." for name in classnames])  # [C, L]
    with torch.no_grad():
        embedding = model.token_embedding(tokenized)  # [C, L, W]
    x = torch.cat([embedding[:, :1], ctx.expand(len(classnames), -1, -1), embedding[:, 1 + n :]], dim=1)
    x = x + model.positional_embedding
    counter = 0
    for i, block in enumerate(model.transformer.resblocks):
        if i > 0 and counter <= len(deep) - 1:
            x = torch.cat([x[:, :1], deep[counter].expand(x.shape[0], -1, -1), x[:, 1 + n :]], dim=1)
            counter += 1
        x = block(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokenized.argmax(dim=-1)] @ model.text_projection
    return x / x.norm(dim=-1, keepdim=True)


def ln_pre_tokens(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """What stage 1 caches as the tokens entering block 0: the embedded patches after ln_pre."""
    visual = model.visual
    x = visual.conv1(pixels)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1])
    return visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype))


def check_against_theirs(head: VLPrompts, data: FitData, shallow_v: torch.Tensor, deep_v: list[torch.Tensor],
                         deep_t: list[torch.Tensor], params: list[torch.Tensor]) -> None:
    model = load_encoder(DEEP, "none", torch.device("cpu"))
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 2])
    classnames = list(data.text.classnames)
    theirs = data.text.logit_scale * their_image(model.model, pixels, shallow_v, deep_v) @ their_text(
        model.model, model.tokenizer, classnames, head.context.ctx, deep_t).T  # [B, C]
    head.train()
    ours = head.batch_scores({"late_tokens": ln_pre_tokens(model.model, pixels).detach()})
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    expected = torch.autograd.grad(F.cross_entropy(theirs, labels), params)
    got = torch.autograd.grad(F.cross_entropy(head.batch_scores(
        {"late_tokens": ln_pre_tokens(model.model, pixels).detach()}), labels), params)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert float(b.abs().max()) > 0


@pytest.mark.parametrize("depth", [1, 2])
def test_maple_is_their_coupled_prompts(deep_cache: Path, depth: int) -> None:
    """Depth 1: the shallow prompts flow through every block; depth 2: block 1 replaces them."""
    data, head = frozen("maple", deep_cache, depth=depth)
    assert isinstance(head, MaPLe) and len(head.deep_text) == len(head.couplings) == depth - 1
    shallow_v = head.proj(head.context.ctx)  # their shared_ctx = proj(ctx)
    # their compound_prompt_projections[i](compound_prompts_text[i])
    deep_v = [coupling(prompt) for coupling, prompt in zip(head.couplings, head.deep_text, strict=True)]
    trained = [head.context.ctx, head.proj.weight, *head.deep_text, *(c.weight for c in head.couplings)]
    check_against_theirs(head, data, shallow_v, deep_v, list(head.deep_text), trained)


def test_ivlp_is_their_independent_prompts(deep_cache: Path) -> None:
    data, head = frozen("ivlp", deep_cache, depth_text=3, depth_vision=2, n_ctx_vision=3)
    assert isinstance(head, IVLP) and len(head.deep_text) == 2 and len(head.deep_vision) == 1
    check_against_theirs(head, data, head.vision_prompt, [head.deep_vision[0]], list(head.deep_text),
                         [head.context.ctx, head.vision_prompt, head.deep_vision[0], head.deep_text[1]])


def test_initial_state_is_theirs(deep_cache: Path) -> None:
    """ctx = the embeddings of the first 2 tokens of 'a photo of a'; MaPLe's couplings start as copies of one
    Linear; IVLP's prompts N(0, 0.02); defaults of their configs."""
    data = data_of(deep_cache)
    model = load_encoder(DEEP, "none", torch.device("cpu"))
    phrase = model.model.token_embedding(model.tokenizer(["a photo of a"]))[0, 1:3].detach()
    maple = create_head("maple", {"epochs": 1, "lr": 0.0, "warmup_lr": 0.0, "depth": 3}).fit(data)
    assert isinstance(maple, MaPLe)
    torch.testing.assert_close(maple.context.ctx.detach(), phrase)
    assert torch.equal(maple.couplings[0].weight, maple.couplings[1].weight)
    assert not torch.equal(maple.couplings[0].weight, maple.proj.weight)
    ivlp = create_head("ivlp", {"epochs": 1, "lr": 0.0, "warmup_lr": 0.0, "depth_text": 3, "depth_vision": 3})
    ivlp.fit(data)
    assert isinstance(ivlp, IVLP)
    drawn = torch.cat([ivlp.vision_prompt.flatten(), *(q.flatten() for q in ivlp.deep_vision)])
    assert 0.01 < float(drawn.detach().std()) < 0.03 and abs(float(drawn.detach().mean())) < 0.01
    assert (MaPLe.Params().depth, MaPLe.Params().lr, MaPLe.Params().batch_size, MaPLe.Params().epochs) == (
        9, 0.0035, 4, 5)
    assert (IVLP.Params().depth_text, IVLP.Params().depth_vision, IVLP.Params().n_ctx_vision) == (12, 12, 2)


@pytest.mark.parametrize("name", ["maple", "ivlp"])
def test_base_to_novel_after_a_reload(name: str, deep_cache: Path, tmp_path: Path) -> None:
    data = data_of(deep_cache)
    base = FitData(SubsetSplit(data.train, [0, 1]), SubsetSplit(data.val, [0, 1]), SubsetText(data.text, [0, 1]),
                   1, torch.device("cpu"))
    depths = {"depth": 3} if name == "maple" else {"depth_text": 3, "depth_vision": 3}
    head = create_head(name, {"epochs": 1, **depths}).fit(base)
    save_head(head, tmp_path / name, {})
    loaded, _ = load_head(tmp_path / name)
    test = FeatureSplit(deep_cache / "test.h5")
    before = loaded.scores(test)  # [N, 2]
    torch.testing.assert_close(before, head.scores(test))
    loaded.retarget(SubsetText(data.text, [2, 0, 1]))
    after = loaded.scores(test)  # [N, 3]
    torch.testing.assert_close(after[:, 1:], before, rtol=1e-5, atol=1e-5)


def test_refusals(deep_cache: Path, image_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ClipCacheError, match=r"heads\.maple\.depth must be at least 1 and at most the tower's 3"):
        create_head("maple", {"depth": 4, "epochs": 1}).fit(data_of(deep_cache))
    section = encode_section(image_root, DEEP, tmp_path, features__late_tokens=1, views__count=1,
                             features__spatial=False, features__spatial_raw=False)
    folder = run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder
    with pytest.raises(ClipCacheError, match=r"needs encode\.features\.late_tokens: 3 \(the cache holds 1\)"):
        create_head("ivlp", {"epochs": 1}).fit(data_of(folder))


def test_the_cached_tokens_are_ln_pre_output(deep_cache: Path) -> None:
    """The tokens stage 1 stored entering block 0 are ln_pre's output (where the heads append their ln_pre'd
    prompts): every block, ln_post and proj on them give the cached global feature."""
    test = FeatureSplit(deep_cache / "test.h5")
    model = load_encoder(DEEP, "none", torch.device("cpu")).model
    tokens = torch.from_numpy(test.read("late_tokens")).float()
    with torch.no_grad():
        x = run_hooked(model.visual.transformer, tokens, lambda i, x: x)
        pooled, _ = model.visual._pool(x)
        ours = normalize(pooled @ model.visual.proj)
    expected = normalize(torch.from_numpy(test.read("global")).float())
    assert float(F.cosine_similarity(ours, expected).min()) > 0.9995

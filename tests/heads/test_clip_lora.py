"""CLIP-LoRA against its authors' maths (MaxZanella/CLIP-LoRA at 358f0d7, loralib/layers.py LinearLoRA and
PlainMultiheadAttentionLoRA, lora.py run_lora), restated on the tiny open_clip model's own blocks: the adapted
attention with and without dropout, the zero-started equivalence with the frozen towers, the iteration count and
the cosine schedule, base-to-novel, and the refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.backbone import load_encoder
from pipeline.encode import run_encode
from pipeline.errors import ClipCacheError
from pipeline.heads import FitData, create_head
from pipeline.heads.classes import SubsetSplit, SubsetText
from pipeline.heads.clip_lora import CLIPLoRA
from pipeline.heads.maths import normalize
from pipeline.params import encode_params, runtime_params
from pipeline.prompts.lora import BlockAdapters, adapted_block
from pipeline.store import FeatureSplit
from tests.heads.test_prompt_learners import cache, fit_data  # noqa: F401  (the tiny-ViT cache, late_tokens: 2)
from tests.helpers import TINY, encode_section


def their_attention(block: torch.nn.Module, x: torch.Tensor, adapters: BlockAdapters, mask: torch.Tensor | None,
                    dropout: float = 0.0) -> torch.Tensor:
    """PlainMultiheadAttentionLoRA.forward_module inside open_clip's block (x [B, T, W]): q/k/v_proj copied from
    in_proj; LinearLoRA: original + (dropout(x) @ (B @ A)^T) * alpha / sqrt(r); SDPA over heads; proj."""
    attn = block.attn
    width, heads = attn.embed_dim, attn.num_heads
    h = block.ln_1(x)
    outs = []
    for i, name in enumerate("qkv"):
        w, b = attn.in_proj_weight[i * width : (i + 1) * width], attn.in_proj_bias[i * width : (i + 1) * width]
        original = h @ w.T + b
        lora = adapters.low_rank[name]
        x_lora = F.dropout(h, dropout, training=dropout > 0)
        outs.append(original + (x_lora @ (lora.B @ lora.A).transpose(0, 1)) * (1.0 / math.sqrt(lora.A.shape[0])))
    bsz, tgt = x.shape[0], x.shape[1]
    q, k, v = (t.transpose(0, 1) for t in outs)  # their tensors are [T, B, W]
    q, k, v = (t.reshape(tgt, bsz * heads, width // heads).transpose(0, 1).reshape(bsz, heads, tgt, width // heads)
               for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, mask, 0.0, False)
    out = out.permute(2, 0, 1, 3).contiguous().view(bsz * tgt, width)
    out = (out @ attn.out_proj.weight.T + attn.out_proj.bias).view(tgt, bsz, width).transpose(0, 1)
    x = x + out
    return x + block.mlp(block.ln_2(x))


def random_adapters(width: int, dropout: float = 0.0) -> BlockAdapters:
    torch.manual_seed(3)
    adapters = BlockAdapters(width, ("q", "k", "v"), 2, 1.0, dropout)
    with torch.no_grad():
        for lora in adapters.low_rank.values():
            lora.B.normal_(std=0.5)  # B = 0 at the start: nonzero here so that the adapters act
    return adapters


@pytest.mark.parametrize("tower", ["vision", "text"])
def test_adapted_block_is_their_lora_attention(tower: str) -> None:
    model = load_encoder(TINY["vit"], "none", torch.device("cpu")).model
    transformer = model.visual.transformer if tower == "vision" else model.transformer
    block = transformer.resblocks[0]
    width = transformer.width
    x = torch.randn(3, 7, width, generator=torch.Generator().manual_seed(1))
    mask = None if tower == "vision" else model.attn_mask[:7, :7]
    adapters = random_adapters(width).eval()
    with torch.no_grad():
        ours = adapted_block(block, x, adapters, mask)
        theirs = their_attention(block, x, adapters, mask)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        assert float((ours - block(x, attn_mask=mask)).abs().max()) > 1e-2  # the adapters act
        zero = BlockAdapters(width, ("q", "k", "v"), 2, 1.0, 0.0)  # B = 0: the frozen block itself
        torch.testing.assert_close(adapted_block(block, x, zero, mask), block(x, attn_mask=mask), rtol=1e-5,
                                   atol=1e-5)


def test_dropout_acts_on_the_adapters_input_only() -> None:
    """In training their LinearLoRA drops the adapter's input (q, then k, then v: the same random stream)."""
    model = load_encoder(TINY["vit"], "none", torch.device("cpu")).model
    block = model.visual.transformer.resblocks[1]
    x = torch.randn(2, 5, model.visual.transformer.width, generator=torch.Generator().manual_seed(2))
    adapters = random_adapters(model.visual.transformer.width, dropout=0.25).train()
    with torch.no_grad():
        torch.manual_seed(7)
        ours = adapted_block(block, x, adapters)
        torch.manual_seed(7)
        theirs = their_attention(block, x, adapters, None, dropout=0.25)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(ours, their_attention(block, x, adapters, None))  # dropout changed the result


def test_zero_started_adapters_reproduce_both_frozen_towers(cache: Path) -> None:  # noqa: F811
    """B = 0: every block on the cached tokens entering block 0 gives the cached global feature, and the class
    prompts give encode_text of the first 'coop' template."""
    data = fit_data(cache)
    head = create_head("clip_lora", {"n_iters": 1, "lr": 0.0})
    assert isinstance(head, CLIPLoRA)
    head.fit(data)
    test = FeatureSplit(cache / "test.h5")
    tokens = torch.from_numpy(test.read("late_tokens")).float()
    expected = normalize(torch.from_numpy(test.read("global")).float())
    with torch.no_grad():
        ours = head.image_features({"late_tokens": tokens})
        assert float(F.cosine_similarity(ours, expected).min()) > 0.9995  # the tokens are cached in float16
        clip = load_encoder(TINY["vit"], "none", torch.device("cpu"))
        template = data.text.provenance["templates"]["coop"][0]
        assert head.template == template
        prompts = [template.format(n.replace("_", " ")) for n in data.text.classnames]
        text = normalize(clip.model.encode_text(clip.tokenizer(prompts)))
        torch.testing.assert_close(head.text_features(), text, rtol=1e-5, atol=1e-5)
    assert float(head.logit_scale) == 100.0


def test_iterations_and_schedule_are_theirs(cache: Path) -> None:  # noqa: F811
    """500 x shots iterations in their loop; AdamW betas (0.9, 0.999), wd 1e-2; CosineAnnealingLR to eta_min; one
    epoch is one pass (6 images, batch 4: 2 minibatches, the last short); the run stops mid-pass."""
    data = fit_data(cache)
    head = create_head("clip_lora", {"n_iters": 3, "batch_size": 4})
    head.fit(data)
    assert head.selected["steps"] == 3 * 2 and [h["steps"] for h in head.history] == [2, 2, 2]
    odd = create_head("clip_lora", {"n_iters": 2, "batch_size": 5})  # 4 iterations: passes of 2, 2
    odd.fit(data)
    assert [h["steps"] for h in odd.history] == [2, 2] and "val_acc" in odd.history[-1]
    defaults = create_head("clip_lora", {}).params
    assert (defaults.r, defaults.alpha, defaults.dropout, defaults.matrices, defaults.encoder, defaults.lr,
            defaults.weight_decay, defaults.batch_size, defaults.n_iters, defaults.logit_scale) == (
        2, 1.0, 0.25, "qkv", "both", 2e-4, 1e-2, 32, 500, 100.0)
    lrs = []
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=2e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 8, eta_min=1e-6)
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 2e-4 and lrs[4] == pytest.approx(1e-6 + (2e-4 - 1e-6) / 2)


def test_text_only_adapters_need_no_tokens_and_base_to_novel_rewrites_the_prompts(cache: Path) -> None:  # noqa: F811
    data = fit_data(cache)
    base = FitData(SubsetSplit(data.train, [0, 1]), SubsetSplit(data.val, [0, 1]), SubsetText(data.text, [0, 1]),
                   1, torch.device("cpu"))
    head = create_head("clip_lora", {"n_iters": 2, "encoder": "text", "lr": 0.01})
    assert isinstance(head, CLIPLoRA) and head.requires == {"global", "views"}
    head.fit(base)
    assert len(head.vision_adapters) == 0 and len(head.text_adapters) == 1
    test = FeatureSplit(cache / "test.h5")
    before = head.scores(test)  # [N, 2]
    head.retarget(SubsetText(data.text, [2, 0, 1]))
    after = head.scores(test)  # [N, 3]
    torch.testing.assert_close(after[:, 1:], before)
    assert np.isfinite(after.numpy()).all()


def test_refusals(image_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ClipCacheError, match=r"heads\.clip_lora\.encoder must be one of both, vision, text"):
        create_head("clip_lora", {"encoder": "image"})
    with pytest.raises(ClipCacheError, match=r"heads\.clip_lora\.matrices must be distinct letters"):
        create_head("clip_lora", {"matrices": "qqx"})
    section = encode_section(image_root, "vit", tmp_path, features__late_tokens=1, views__count=1)
    folder = run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder
    with pytest.raises(ClipCacheError, match=r"every one of the 2 image blocks and needs encode.features.late_tokens: "
                                             r"2 \(the cache holds 1\)"):
        create_head("clip_lora", {"n_iters": 1}).fit(fit_data(folder))

"""CLIP-Adapter and VT-CLIP restated from their papers' equations on the synthetic cache: the bottleneck, the
residual mix, the visual-guided decoder block (multi-head attention written out from its projection weights), and
the schedules and refusals they name."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.errors import ClipCacheError
from pipeline.heads import create_head
from pipeline.heads.clip_adapter import bottleneck
from pipeline.heads.inputs import split_batches
from pipeline.heads.loop import Schedule, epochs_by_shots
from pipeline.heads.vt_clip import VisualGuidedBlock


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def test_bottleneck_is_linear_relu_linear_relu_without_bias() -> None:
    for dim, reduction, hidden in ((32, 4, 8), (32, 5, 6), (3, 8, 1)):
        layers = bottleneck(dim, reduction)
        assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear", "ReLU"]
        assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (dim, hidden, dim)
        assert layers[0].bias is None and layers[2].bias is None
        x = torch.randn(4, dim)
        torch.testing.assert_close(layers(x.clone()), F.relu(F.relu(x @ layers[0].weight.T) @ layers[2].weight.T))


@pytest.mark.parametrize("text_adapter", [False, True])
def test_clip_adapter_scores_are_the_residual_mix(task, text_adapter: bool) -> None:
    """f' = normalise(r A(f) + (1 - r) f) for the image (and the class weights with text_adapter);
    scores = logit_scale f' t'^T."""
    data, test = task
    head = create_head("clip_adapter", {"epochs": 2, "ratio": 0.3, "reduction": 8, "text_adapter": text_adapter})
    head.fit(data)
    assert head.image_adapter[0].out_features == 4 and (head.text_adapter is not None) == text_adapter
    x = unit(torch.from_numpy(test.read("global")).float())
    text = torch.from_numpy(data.text.mean("coop")).float()
    with torch.no_grad():
        image = unit(0.3 * head.image_adapter(x) + 0.7 * x)
        if text_adapter:
            text = unit(0.3 * head.text_adapter(text) + 0.7 * text)
        expected = data.text.logit_scale * image @ text.T
    torch.testing.assert_close(head.scores(test), expected, rtol=1e-5, atol=1e-4)
    assert head.selected["epoch"] == 2 and head.history[0]["steps"] == 1  # 20 images, batch 32


def mha(module: torch.nn.MultiheadAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
        mask: torch.Tensor | None = None) -> tuple:
    """Multi-head scaled dot-product attention from the module's projection weights; weights averaged over heads.
    A float mask is added to the scores, a boolean one blocks its True pairs."""
    dim, heads = module.embed_dim, module.num_heads
    if module.in_proj_weight is not None:
        wq, wk, wv = module.in_proj_weight.split(dim)
    else:
        wq, wk, wv = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
    bq, bk, bv = module.in_proj_bias.split(dim)
    b, lq, lk, d = q.shape[0], q.shape[1], k.shape[1], dim // heads
    qh = (q @ wq.T + bq).view(b, lq, heads, d).transpose(1, 2)  # [B, H, Lq, d]
    kh = (k @ wk.T + bk).view(b, lk, heads, d).transpose(1, 2)
    vh = (v @ wv.T + bv).view(b, lk, heads, d).transpose(1, 2)
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(d)  # [B, H, Lq, Lk]
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = torch.softmax(scores, dim=-1)
    out = (weights @ vh).transpose(1, 2).reshape(b, lq, dim)
    return out @ module.out_proj.weight.T + module.out_proj.bias, weights.mean(1)


def guided(block: VisualGuidedBlock, text: torch.Tensor, image: torch.Tensor) -> tuple:
    """VT-CLIP's decoder block, pre-norm: text += SelfAttn(LN(text)); text += CrossAttn(LN(text), LN(image));
    text += FFN(LN(text)) with FFN = Linear - GELU - Linear."""
    h = block.norm_self(text)
    text = text + mha(block.self_attn, h, h, h)[0]
    keys = block.norm_image(image)
    update, attention = mha(block.cross_attn, block.norm_query(text), keys, keys)
    text = text + update
    ffn = block.ffn[2](F.gelu(block.ffn[0](block.norm_ffn(text))))
    return text + ffn, attention


def test_vt_clip_scores_and_attention_are_the_visual_guided_decoder(task) -> None:
    data, test = task
    keys = "spatial"
    head = create_head("vt_clip", {"epochs": 2, "n_heads": 4, "n_layers": 2, "ffn_mult": 2, "keys": keys,
                                   "lr": 0.05}).fit(data)
    assert len(head.blocks) == 2 and head.blocks[0].ffn[0].out_features == 64
    batch = next(split_batches(test, torch.device("cpu"), ("global", keys)))
    with torch.no_grad():
        text = torch.from_numpy(data.text.mean("coop")).float().expand(test.n, -1, -1)
        for block in head.blocks:
            text, attention = guided(block, text, batch[keys])
        expected = data.text.logit_scale * torch.einsum("bd,bcd->bc", batch["global"], unit(text))
    torch.testing.assert_close(head.scores(test), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(head.attention(test), attention, rtol=1e-4, atol=1e-6)
    rows = np.array([5, 1, 5, 3])
    torch.testing.assert_close(head.attention(test, rows), attention[[1, 3, 5]], rtol=1e-4, atol=1e-6)


def test_a_fresh_visual_guided_block_passes_the_text_through() -> None:
    """The output projections and the last FFN layer start at zero: the block is the identity on the text."""
    block = VisualGuidedBlock(16, 2, 2, 0.0, key_dim=24)
    text, image = torch.randn(3, 5, 16), torch.randn(3, 9, 24)
    out, attention = block(text, image)
    torch.testing.assert_close(out, text)
    assert attention.shape == (3, 5, 9)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 5))
    with torch.no_grad():  # trained weights: the block against its restatement, keys of another width (spatial_raw)
        for parameter in block.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
        ours, ours_attention = block(text, image)
        expected, expected_attention = guided(block, text, image)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours_attention, expected_attention, rtol=1e-4, atol=1e-6)


def test_vt_clip_ships_its_zero_shot_start_when_training_does_not_beat_it_on_validation(task) -> None:
    """keep: best_val_or_start (the default): a ruinous rate never beats the start on val, and the start, with its
    zero-started outputs, is zero-shot CLIP with CoOp's template; keep: last ships the ruined last epoch."""
    data, test = task
    assert create_head("vt_clip").params.keep == "best_val_or_start"
    zero_shot = create_head("zero_shot", {"template_set": "coop"}).fit(data).scores(test)
    ruined = {"epochs": 3, "n_heads": 2, "lr": 30.0, "weight_decay": 0.0}
    head = create_head("vt_clip", ruined).fit(data)
    assert head.selected["epoch"] == 0 and len(head.history) == 3
    assert all(h["val_acc"] <= head.selected["val_acc"] for h in head.history)
    torch.testing.assert_close(head.scores(test), zero_shot, rtol=1e-4, atol=1e-4)
    last = create_head("vt_clip", {**ruined, "keep": "last"}).fit(data)
    assert last.selected["epoch"] == 3 and not torch.allclose(last.scores(test), zero_shot, atol=1e-2)


def test_vt_clip_schedules_and_refusals(task) -> None:
    data, _ = task
    coop = create_head("vt_clip", {"schedule": "coop", "lr": 0.1, "weight_decay": 0.2, "batch_size": 16,
                                   "keep": "best_val", "min_steps": 9}).schedule(4, "dtd")
    assert coop == Schedule("sgd", 0.1, 0.2, epochs_by_shots(4), 16, warmup_epochs=1, keep="best_val", min_steps=9,
                            lr_schedule="dassl")
    assert create_head("vt_clip", {"epochs": 7}).schedule(4, "imagenet").epochs == 7
    assert create_head("vt_clip").schedule(16, "imagenet").epochs == 50
    adamw = create_head("vt_clip", {"lr": 0.1, "weight_decay": 0.2, "batch_size": 16,
                                    "keep": "best_val", "min_steps": 9}).schedule(4, "dtd")
    assert adamw == Schedule("adamw", 0.1, 0.2, epochs_by_shots(4), 16, keep="best_val", min_steps=9)
    assert create_head("vt_clip").schedule(1, "dtd").epochs == 50 and create_head("vt_clip").params.lr == 2e-3
    assert create_head("vt_clip", {"schedule": "adamw", "epochs": 3}).schedule(4, "dtd").epochs == 3
    with pytest.raises(ClipCacheError) as error:
        create_head("vt_clip", {"schedule": "sgd"}).schedule(4, "dtd")
    assert str(error.value) == "heads.vt_clip.schedule must be 'coop' or 'adamw', got 'sgd'"
    with pytest.raises(ClipCacheError) as error:
        create_head("vt_clip", {"n_heads": 5}).fit(data)
    assert str(error.value) == "heads.vt_clip.n_heads=5 must divide the feature size 32"
    with pytest.raises(ClipCacheError) as error:
        create_head("vt_clip", {"keys": "views"})
    assert str(error.value) == "heads.vt_clip.keys must be one of spatial, spatial_raw, got 'views'"
    assert create_head("vt_clip", {"keys": "spatial_raw"}).requires == {"global", "views", "spatial_raw",
                                                                        "spatial_raw_views"}


@pytest.mark.parametrize("mask", ["authors", "block", "none"])
def test_mm_adapter_masks(task, mask: str) -> None:
    """Sequence [t_1 .. t_C, f]; 'authors' adds 1 to the cross-modal scores, 'block' allows only cross-modal pairs,
    'none' allows all; x' = normalise(r normalise(A(x)) + (1 - r) x); scores = logit_scale f' . t'_c."""
    data, test = task
    head = create_head("mm_adapter", {"epochs": 2, "width": 16, "bottleneck": 8, "n_heads": 2, "mask": mask,
                                      "ratio": 0.4, "lr": 0.05}).fit(data)
    a, classes = head.adapter, data.n_classes
    cross = torch.zeros(classes + 1, classes + 1, dtype=torch.bool)
    cross[:classes, classes] = cross[classes, :classes] = True
    attn_mask = {"authors": cross.float(), "block": ~cross, "none": None}[mask]
    image = unit(torch.from_numpy(test.read("global")).float())
    text = torch.from_numpy(data.text.mean("coop")).float()
    with torch.no_grad():
        tokens = torch.cat([text.expand(len(image), -1, -1), image[:, None]], dim=1)  # [B, C+1, D]
        z = a.down[1](a.down[0](tokens))
        out = a.up[2](F.gelu(a.up[0](mha(a.attn, z, z, z, attn_mask)[0])))
        mixed = unit(0.4 * unit(out) + 0.6 * tokens)
        expected = data.text.logit_scale * torch.einsum("bd,bcd->bc", mixed[:, classes], mixed[:, :classes])
    torch.testing.assert_close(head.scores(test), expected, rtol=1e-4, atol=1e-4)


def test_mm_adapter_refusals(task) -> None:
    data, _ = task
    with pytest.raises(ClipCacheError) as error:
        create_head("mm_adapter", {"mask": "causal"}).fit(data)
    assert str(error.value) == "heads.mm_adapter.mask must be one of authors, block, none, got 'causal'"
    with pytest.raises(ClipCacheError) as error:
        create_head("mm_adapter", {"width": 12, "n_heads": 5}).fit(data)
    assert str(error.value) == "heads.mm_adapter.n_heads=5 must divide width=12"
    assert create_head("mm_adapter").requires == {"global"}
    assert create_head("mm_adapter", {"augment": True}).requires == {"global", "views"}

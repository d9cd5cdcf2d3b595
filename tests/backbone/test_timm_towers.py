"""Every feature of the timm towers open_clip's best models use (SigLIP-, PE-Core- and EVA-CLIP-style, tiny): the
stored tensors are what the tower itself computed (hooks on its own modules during an ordinary encode_image), its
pooling head applied to them gives the stored global feature, and the map is each token through the pool's path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import tests.towers  # noqa: F401  (registers the tiny timm trunks the configs name)
from pipeline.backbone import load_encoder
from pipeline.backbone.image import final_projection
from pipeline.encode import run_encode
from pipeline.params import encode_params, runtime_params
from pipeline.store import FeatureSplit
from tests.backbone.test_spatial import hooked_forward, pixels_of
from tests.helpers import CONFIGS, encode_section

TOWERS = {"siglip": "tiny-MAP.json", "pe": "tiny-PE.json", "eva": "tiny-EVA.json"}


@pytest.fixture(scope="module", params=sorted(TOWERS))
def tower(request: pytest.FixtureRequest, image_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """(encoder, test split, image root) of a tiny timm tower encoded with every feature and 2 late blocks."""
    config = str(CONFIGS / TOWERS[request.param])
    section = encode_section(image_root, config, tmp_path_factory.mktemp(request.param), views__count=0,
                             features__late_tokens=2, features__pooled=True)
    folder = run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder
    return load_encoder(config, "none", torch.device("cpu")), FeatureSplit(folder / "test.h5"), image_root


def test_global_is_encode_image_and_the_maps_are_the_final_norms_patch_tokens(tower) -> None:
    encoder, split, root = tower
    trunk = encoder.model.visual.trunk
    pixels = pixels_of(encoder, split, root)
    normed = hooked_forward(encoder, pixels, lambda record: trunk.norm.register_forward_hook(
        lambda _m, _i, out: record(out)))  # [N, T, W]: the sequence the pool reads
    with torch.inference_mode():
        expected = encoder.model.encode_image(pixels)  # [N, D]
    np.testing.assert_allclose(split.read("global"), expected.numpy(), rtol=1e-4, atol=1e-5)
    prefix = 1 if trunk.cls_token is not None else 0  # the tiny towers have no register tokens
    np.testing.assert_allclose(split.read("spatial_raw"), normed[:, prefix:].numpy(), rtol=1e-4, atol=1e-5)
    assert split.read("spatial").shape[1] == (encoder.image_size // 16) ** 2


def test_late_tokens_enter_block_l_minus_k_and_the_rest_of_the_tower_gives_the_global_feature(tower) -> None:
    encoder, split, root = tower
    visual, late = encoder.model.visual, torch.from_numpy(split.read("late_tokens"))  # [N, T, W]
    trunk = visual.trunk
    seen = hooked_forward(encoder, pixels_of(encoder, split, root), lambda record: trunk.blocks[
        -2].register_forward_pre_hook(lambda _m, args: record(args[0])))  # [N, T, W] entering block L-2
    np.testing.assert_allclose(late.numpy(), seen.numpy(), rtol=1e-4, atol=1e-5)
    rope = trunk.rope.get_embed() if getattr(trunk, "rope", None) is not None else None
    x = late
    with torch.inference_mode():
        for block in trunk.blocks[-2:]:
            x = block(x, rope=rope) if rope is not None else block(x)  # [N, T, W]
        again = visual.head(trunk.forward_head(trunk.norm(x)))  # [N, D]
    np.testing.assert_allclose(again.numpy(), split.read("global"), rtol=1e-4, atol=1e-5)


def test_the_map_is_each_token_through_the_pools_value_path(tower) -> None:
    """Restated: attention pools take a token through kv's value half, proj and the residual MLP; class-token pools
    through fc_norm; then the trunk's head and open_clip's."""
    encoder, split, _ = tower
    visual = encoder.model.visual
    trunk, x = visual.trunk, torch.from_numpy(split.read("spatial_raw"))  # [N, HW, W]
    with torch.inference_mode():
        if trunk.attn_pool is not None:
            pool, width = trunk.attn_pool, x.shape[-1]
            values = x @ pool.kv.weight[width:].T + pool.kv.bias[width:]  # [N, HW, W] @ [W, W]
            y = values @ pool.proj.weight.T + pool.proj.bias  # [N, HW, W] @ [W, W]
            x = y + pool.mlp(pool.norm(y))
        dense = visual.head(trunk.head(trunk.fc_norm(x)))  # [N, HW, D]
    np.testing.assert_allclose(split.read("spatial"), dense.numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(dense.numpy(), dense.numpy().mean(axis=1, keepdims=True)), "the map must vary"


def test_an_attention_pool_all_on_one_token_returns_that_tokens_map_entry(tower) -> None:
    """The definition of the map for attention pools, with the pool module itself: when every position holds token
    i (all attention on it), the pool and the heads return the map's entry i."""
    encoder, split, _ = tower
    visual = encoder.model.visual
    if visual.trunk.attn_pool is None:
        pytest.skip("class-token pools (EVA-CLIP) have no attention to concentrate")
    raw, spatial = torch.from_numpy(split.read("spatial_raw")), split.read("spatial")  # [N, HW, W], [N, HW, D]
    with torch.inference_mode():
        for i in (0, raw.shape[1] - 1):
            same = raw[:, i:i + 1].expand(-1, 5, -1)  # [N, 5, W]: five copies of token i
            pooled = visual.head(visual.trunk.head(visual.trunk.fc_norm(visual.trunk.attn_pool(same))))  # [N, D]
            np.testing.assert_allclose(pooled.numpy(), spatial[:, i], rtol=1e-4, atol=1e-5)


def test_a_pool_that_reads_the_patches_only_gives_the_global_feature_from_the_stored_map(tower) -> None:
    encoder, split, _ = tower
    visual = encoder.model.visual
    if visual.trunk.num_prefix_tokens:
        pytest.skip("this tower's pool also reads its class token, which is not a position of the map")
    with torch.inference_mode():
        pooled = visual.head(visual.trunk.forward_head(torch.from_numpy(split.read("spatial_raw"))))  # [N, D]
    np.testing.assert_allclose(pooled.numpy(), split.read("global"), rtol=1e-4, atol=1e-5)


def test_pooled_times_the_composed_projection_is_the_global_feature(tower) -> None:
    encoder, split, _ = tower
    weight, bias = final_projection(encoder.model.visual)
    with torch.no_grad():
        projected = torch.from_numpy(split.read("pooled")) @ weight + (bias if bias is not None else 0)  # [N, D]
    np.testing.assert_allclose(projected.numpy(), split.read("global"), rtol=1e-4, atol=1e-5)
    assert split.provenance["features"]["tower"].startswith("TimmModel(")

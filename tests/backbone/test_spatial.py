"""The stored spatial maps are the right ones, checked against the model's own modules on stored tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.backbone import load_encoder
from pipeline.store import FeatureSplit
from tests.helpers import TINY


def stored(report, name: str) -> FeatureSplit:
    return FeatureSplit(report.folder / name)


def pixels_of(encoder, split: FeatureSplit, image_root) -> torch.Tensor:
    """The split's images decoded again and preprocessed the model's own way: [N, 3, S, S]."""
    from PIL import Image

    return torch.stack([encoder.preprocess(Image.open(image_root / i).convert("RGB")) for i in split.image_ids])


def hooked_forward(encoder, pixels: torch.Tensor, attach) -> torch.Tensor:
    """What the hook that `attach(record)` registers records during an ordinary encode_image of `pixels`."""
    seen: list[torch.Tensor] = []
    handle = attach(seen.append)
    with torch.inference_mode():
        encoder.model.encode_image(pixels)
    handle.remove()
    return seen[0]


def test_global_is_the_models_encode_image(encoded, image_root) -> None:
    """Re-encode the stored images with open_clip's own preprocess + encode_image: same global features."""
    kind, report = encoded
    split = stored(report, "test.h5")
    encoder = load_encoder(TINY[kind], "none", torch.device("cpu"))
    with torch.inference_mode():
        expected = encoder.model.encode_image(pixels_of(encoder, split, image_root)).numpy()  # [N, D]
    np.testing.assert_allclose(split.read("global"), expected, rtol=1e-4, atol=1e-5)


def test_resnet_attention_pool_on_stored_raw_map_reproduces_global(encoded) -> None:
    kind, report = encoded
    if kind != "resnet":
        pytest.skip("the attention pool exists in ResNet towers only")
    split = stored(report, "test.h5")
    pool = load_encoder(TINY["resnet"], "none", torch.device("cpu")).model.visual.attnpool
    raw = torch.from_numpy(split.read("spatial_raw"))  # [N, HW, C_s]
    side = round(raw.shape[1] ** 0.5)
    grid = raw.transpose(1, 2).reshape(raw.shape[0], raw.shape[2], side, side)  # [N, C_s, h, w]
    with torch.inference_mode():
        pooled = pool(grid).numpy()  # [N, D]
        values = F.linear(raw + pool.positional_embedding[1:], pool.v_proj.weight, pool.v_proj.bias)  # [N, HW, C_s]
        dense = F.linear(values, pool.c_proj.weight, pool.c_proj.bias).numpy()  # [N, HW, D]
    np.testing.assert_allclose(pooled, split.read("global"), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dense, split.read("spatial"), rtol=1e-4, atol=1e-5)
    assert not np.allclose(dense, dense.mean(axis=1, keepdims=True)), "the dense map must vary over locations"


def test_vit_tokens_are_what_the_final_projection_produced(encoded, image_root) -> None:
    """Hook the model's final norm during an ordinary forward; its patch tokens x proj equal the stored map."""
    kind, report = encoded
    if kind != "vit":
        pytest.skip("patch tokens and a final projection exist in ViT towers only")
    split = stored(report, "test.h5")
    encoder = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    visual = encoder.model.visual
    normed = hooked_forward(encoder, pixels_of(encoder, split, image_root),
                            lambda record: visual.ln_post.register_forward_hook(lambda _m, _i, out: record(out)))
    tokens = normed[:, 1:]  # [N, HW, width] after the final norm, class token dropped
    with torch.inference_mode():
        projected = (tokens @ visual.proj).numpy()  # [N, HW, D]
        cls = (normed[:, 0] @ visual.proj).numpy()  # [N, D]: the pooled token, which is the global embedding
    np.testing.assert_allclose(split.read("spatial"), projected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(split.read("spatial_raw"), tokens.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(split.read("global"), cls, rtol=1e-4, atol=1e-5)
    grid = (encoder.image_size // visual.patch_size[0]) ** 2
    assert split.read("spatial").shape[1] == grid


def test_vit_late_tokens_are_the_input_of_block_l_minus_k(encoded, image_root) -> None:
    """A pre-hook on the last block during an ordinary encode_image sees exactly the stored late tokens (k = 1)."""
    kind, report = encoded
    if kind != "vit":
        pytest.skip("late tokens are stored for ViT towers only")
    split = stored(report, "test.h5")
    encoder = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    last = encoder.model.visual.transformer.resblocks[-1]
    seen = hooked_forward(encoder, pixels_of(encoder, split, image_root),
                          lambda record: last.register_forward_pre_hook(lambda _m, args: record(args[0])))
    entering = seen if encoder.model.visual.transformer.batch_first else seen.transpose(0, 1)  # [N, 1+HW, W]
    assert split.read("late_tokens").shape == tuple(entering.shape) and split.provenance["features"]["late_tokens"] == 1
    np.testing.assert_allclose(split.read("late_tokens"), entering.numpy(), rtol=1e-4, atol=1e-5)

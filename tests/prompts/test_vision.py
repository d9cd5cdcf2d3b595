"""LateViT (pipeline.prompts.vision) against the tiny ViT's own blocks, written out: where prompts enter the
sequence, which block sees them, and which outputs are dropped (VPT-deep) or carried (VPT-shallow)."""

from __future__ import annotations

import pytest
import torch

from pipeline.backbone import load_encoder
from pipeline.errors import ClipCacheError
from pipeline.prompts.vision import LateViT
from tests.helpers import TINY


@pytest.fixture(scope="module")
def visual() -> torch.nn.Module:
    """The tiny ViT's image tower: 2 blocks of width 48, 4 x 4 patches + the class token, projection to 32."""
    return load_encoder(TINY["vit"], "none", torch.device("cpu")).model.visual


def tokens(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 17, 48, generator=torch.Generator().manual_seed(seed))  # [B, 1+HW, W]


def prompt_set(blocks: int, p: int, batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(blocks, batch, p, 48, generator=torch.Generator().manual_seed(seed))  # [k, B, P, W]


def block(visual: torch.nn.Module, index: int, x: torch.Tensor) -> torch.Tensor:
    """One residual block of the tower on [B, T, W] (the tiny tower is batch-first)."""
    assert visual.transformer.batch_first
    return visual.transformer.resblocks[index](x)


def head(visual: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CLIP's image feature of a sequence: ln_post on the class token, then the projection."""
    return visual.ln_post(x[:, 0]) @ visual.proj


@pytest.mark.parametrize(("stored", "k", "p"), [(2, 2, 4), (2, 1, 4), (1, 1, 4), (2, 2, 1)])
def test_deep_prompts_enter_after_the_class_token_and_leave_after_their_block(visual, stored: int, k: int,
                                                                               p: int) -> None:
    """VPT-deep (eq. 6): [s, P_l, E] -> block l -> [s, E] for each of the last k blocks."""
    x, prompts = tokens(), prompt_set(k, p)
    seen = []

    def fn(i: int, entering: torch.Tensor) -> torch.Tensor:
        seen.append((i, entering.clone()))
        return prompts[i]

    with torch.no_grad():
        ours = LateViT(visual, stored=stored, k=k)(x, fn)
        expected = x
        first = 2 - stored
        for index in range(first, 2):
            i = index - (2 - k)
            if i < 0:
                expected = block(visual, index, expected)
                continue
            torch.testing.assert_close(seen[i][1], expected)  # the prompt function sees the sequence entering
            assert seen[i][0] == i
            out = block(visual, index, torch.cat([expected[:, :1], prompts[i], expected[:, 1:]], dim=1))
            assert out.shape == (3, 1 + p + 16, 48)
            expected = torch.cat([out[:, :1], out[:, 1 + p :]], dim=1)
        expected = head(visual, expected)
    assert len(seen) == k
    torch.testing.assert_close(ours, expected)


def test_shallow_prompts_flow_through_and_leave_at_the_end(visual) -> None:
    """VPT-shallow (eqs. 4-5): prompts enter the first prompted block; their outputs pass through the later blocks and
    are dropped only before the pool."""
    x, prompts = tokens(), prompt_set(1, 3)
    with torch.no_grad():
        ours = LateViT(visual, stored=2, k=2, shallow=True)(x, lambda i, _x: prompts[i])
        y = block(visual, 1, block(visual, 0, torch.cat([x[:, :1], prompts[0], x[:, 1:]], dim=1)))
        expected = head(visual, torch.cat([y[:, :1], y[:, 4:]], dim=1))
        one = LateViT(visual, stored=2, k=1, shallow=True)(x, lambda i, _x: prompts[i])
        z = block(visual, 1, torch.cat([block(visual, 0, x)[:, :1], prompts[0], block(visual, 0, x)[:, 1:]], dim=1))
        expected_one = head(visual, z)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(one, expected_one)


def test_no_prompts_is_the_tower_and_empty_prompts_are_skipped(visual) -> None:
    x = tokens()
    with torch.no_grad():
        expected = head(visual, block(visual, 1, block(visual, 0, x)))
        for late in (LateViT(visual, stored=2, k=2), LateViT(visual, stored=2, k=1),
                     LateViT(visual, stored=2, k=2, shallow=True)):
            torch.testing.assert_close(late(x), expected)
            torch.testing.assert_close(late(x, lambda i, y: y.new_zeros(y.shape[0], 0, y.shape[2])), expected)
            torch.testing.assert_close(late(x, lambda i, y: None), expected)
        after_first = LateViT(visual, stored=1, k=1)
        torch.testing.assert_close(after_first(block(visual, 0, x)), expected)


def test_prompts_in_another_dtype_are_cast_to_the_sequence(visual) -> None:
    x, prompts = tokens(), prompt_set(2, 2)
    with torch.no_grad():
        ours = LateViT(visual, stored=2, k=2)(x, lambda i, _x: prompts[i].double())
        expected = LateViT(visual, stored=2, k=2)(x, lambda i, _x: prompts[i])
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, expected)


def test_depth_and_tower_are_checked(visual) -> None:
    late = LateViT(visual, stored=2, k=1)
    assert (late.first, late.prompted, late.width, late.shallow) == (0, 1, 48, False)
    assert (LateViT(visual, stored=1, k=1).first, LateViT(visual, stored=2, k=2).prompted) == (1, 0)
    for k, stored in ((0, 2), (3, 2), (2, 1)):
        with pytest.raises(ClipCacheError) as error:
            LateViT(visual, stored=stored, k=k)
        assert str(error.value) == (f"the head's k={k} must be between 1 and the cached encode.features.late_tokens="
                                    f"{stored} (re-encode with encode.features.late_tokens >= {k})")
    resnet = load_encoder(TINY["resnet"], "none", torch.device("cpu")).model.visual
    with pytest.raises(ClipCacheError) as error:
        LateViT(resnet, stored=1, k=1)
    assert str(error.value) == f"late visual prompts need a CLIP ViT image tower, not {type(resnet).__name__}"

"""A grid whose features a tower cannot give still encodes: the feature is skipped with a logged note recorded in
the files, and the heads that need it are 'not applicable' on that model (not failures); on timm towers, which have
every feature, only the heads that run the CLIP ViT's own blocks are."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import tests.towers  # noqa: F401  (registers the tiny timm trunks the configs name)
from pipeline.encode import run_encode
from pipeline.errors import NotApplicable
from pipeline.heads.fitting import fit_head
from pipeline.params import encode_params, runtime_params
from pipeline.store import FeatureSplit
from tests.heads.conftest import QUICK
from tests.helpers import CONFIGS, encode_section

CPU = torch.device("cpu")


def encoded(root: Path, config: str, cache: Path):
    section = encode_section(root, str(CONFIGS / config), cache, views__count=2, features__late_tokens=1,
                             features__pooled=True)
    params = encode_params(section)
    return params, run_encode(params, runtime_params({"workers": 0, "batch_size": 8})).folder


def test_a_convnext_tower_keeps_its_global_feature_and_notes_what_it_skipped(image_root, tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        params, folder = encoded(image_root, "tiny-ConvNeXt.json", tmp_path)
    split = FeatureSplit(folder / "k2-s1" / "train.h5")
    assert split.has("global") and split.has("views/global")
    for name in ("spatial", "spatial_raw", "pooled", "late_tokens", "views/spatial"):
        assert not split.has(name), name
    features = split.provenance["features"]
    assert features["tower"] == "TimmModel(ConvNeXt)"
    for name in ("spatial_skipped", "pooled_skipped"):
        assert "ConvNeXt" in features[name]
    assert features["late_tokens_skipped"] == "TimmModel(ConvNeXt)"
    assert (features["spatial"], features["spatial_raw"], features["late_tokens"]) == (False, False, 0)
    assert "pooled" not in features  # recorded only where kept
    logged = [r.getMessage() for r in caplog.records]
    assert any("no spatial maps are kept" in m and "ConvNeXt" in m for m in logged)
    assert fit_head(params, 2, 1, "zero_shot", {}, CPU).metrics["val_acc"] is not None
    for head, need in (("vt_clip", "spatial"), ("prolip", "pooled"), ("vpt_late", "prompts CLIP ViT blocks")):
        with pytest.raises(NotApplicable, match=need):
            fit_head(params, 2, 1, head, QUICK.get(head, {}), CPU)


@pytest.mark.parametrize("config", ["tiny-MAP.json", "tiny-PE.json"])
def test_timm_towers_fit_the_map_and_pooled_heads_and_refuse_the_clip_vit_block_learners(
        config: str, image_root: Path, tmp_path: Path) -> None:
    params, _ = encoded(image_root, config, tmp_path)
    for head in ("vt_clip", "prolip"):
        assert fit_head(params, 2, 1, head, QUICK[head], CPU).metrics["val_acc"] is not None
    for head in ("cavpt", "maple"):
        with pytest.raises(NotApplicable, match="TimmModel"):
            fit_head(params, 2, 1, head, QUICK[head], CPU)


def test_an_mlp_after_the_pool_keeps_the_maps_and_skips_the_pooled_feature(image_root, tmp_path) -> None:
    """open_clip's `timm_proj: mlp` (convnext_large_d's head) is not linear: no projection maps pooled to global."""
    _, folder = encoded(image_root, "tiny-MAP-mlp.json", tmp_path)
    split = FeatureSplit(folder / "test.h5")
    features = split.provenance["features"]
    assert features["pooled_skipped"] == "the projection after its pool is not linear"
    assert not split.has("pooled") and split.has("spatial") and split.has("late_tokens")
    assert "spatial_skipped" not in features and "late_tokens_skipped" not in features

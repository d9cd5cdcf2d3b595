"""The pooled feature before the image tower's final projection (`encode.features.pooled`, ProLIP's input): stored per
image and per view, it times the model's projection reproduces the stored global feature, for ViTs and ResNets; a
cache that does not ask for it keeps the fingerprints it always had."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.backbone.image import final_projection
from pipeline.backbone.model import load_encoder
from pipeline.encode import run_encode
from pipeline.encode.plan import feature_record
from pipeline.params import encode_params, runtime_params
from pipeline.store import FeatureSplit
from tests.helpers import TINY, encode_section


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_pooled_times_the_projection_is_the_global_feature(kind: str, image_root: Path, tmp_path: Path) -> None:
    section = encode_section(image_root, kind, tmp_path / "cache", views__count=2, features__spatial=False,
                             features__spatial_raw=False, features__late_tokens=0, features__pooled=True)
    folder = run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder
    encoder = load_encoder(TINY[kind], "none", torch.device("cpu"))
    weight, bias = final_projection(encoder.model.visual)
    width = weight.shape[0]
    for name in ("test.h5", "k2-s1/train.h5"):
        split = FeatureSplit(folder / name)
        pooled, features = split.read("pooled"), split.read("global")
        assert pooled.shape == (split.n, width) and pooled.dtype == np.float32
        with torch.no_grad():
            projected = torch.from_numpy(pooled) @ weight + (bias if bias is not None else 0)  # [N, width] @ [width, D]
        np.testing.assert_allclose(projected.numpy(), features, rtol=1e-4, atol=1e-5)
        assert split.provenance["features"]["pooled"] is True
    train = FeatureSplit(folder / "k2-s1" / "train.h5")
    views, view_globals = train.read("views/pooled"), train.read("views/global")  # [V, N, width], [V, N, D]
    assert views.shape[:2] == (2, train.n)
    with torch.no_grad():
        projected = torch.from_numpy(views) @ weight + (bias if bias is not None else 0)
    np.testing.assert_allclose(projected.numpy(), view_globals, rtol=1e-4, atol=1e-5)
    assert not np.allclose(views[0], views[1])  # two views, two crops


def test_a_cache_without_pooled_features_keeps_its_provenance(encoded) -> None:
    """The `pooled` key enters a split's features record only when it is asked for: every cache encoded before it
    existed keeps its fingerprint and is not re-encoded."""
    _, report = encoded
    split = FeatureSplit(report.folder / "test.h5")
    assert "pooled" not in split.provenance["features"] and not split.has("pooled")
    section = encode_section(Path("/x"), "vit", Path("/c"), features__precision="fp32")
    assert "pooled" not in feature_record(encode_params(section))
    section["features"]["pooled"] = True
    assert feature_record(encode_params(section))["pooled"] is True

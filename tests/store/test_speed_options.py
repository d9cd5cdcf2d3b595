"""runtime.channels_last and runtime.compile change how fast the image tower runs: the features stay those of the
default path up to float rounding (stated: 1e-4 relative here), and the settings are runtime (untracked, not in any
file's identity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import pipeline.encode.forward as forward
from pipeline.backbone import load_encoder
from pipeline.encode.forward import Speed, forward_batch, prepare
from pipeline.params import FeatureParams
from tests.helpers import TINY


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_channels_last_and_compile_give_the_default_features(kind: str, monkeypatch) -> None:
    monkeypatch.setattr(forward, "COMPILE_BACKEND", "eager")  # dynamo's tracing without inductor's minutes
    features = FeatureParams(spatial=True, late_tokens=1 if kind == "vit" else 0, precision="fp32")
    pixels = torch.randn(2, 1, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # [b, 1+V, 3, S, S]
    plain = forward_batch(load_encoder(TINY[kind], "none", torch.device("cpu")), pixels, features, None)
    fast = load_encoder(TINY[kind], "none", torch.device("cpu"))
    speed = Speed(channels_last=True, compile=True)
    prepare(fast, speed)
    if kind == "resnet":
        conv = next(m for m in fast.model.visual.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    tuned = forward_batch(fast, pixels, features, None, speed)
    assert sorted(tuned) == sorted(plain)
    for name in plain:
        scale = float(np.abs(plain[name]).max())
        assert np.abs(tuned[name] - plain[name]).max() <= 1e-4 * scale, name


def test_the_speed_settings_are_runtime_and_leave_the_files_identity_alone(image_root: Path, tmp_path: Path) -> None:
    from pipeline.encode import run_encode
    from pipeline.params import encode_params, runtime_params
    from tests.helpers import encode_section

    section = encode_section(image_root, "resnet", tmp_path, protocol__shots=[1], protocol__seeds=[1])
    run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8}))
    again = run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8, "channels_last": True}))
    assert set(again.files.values()) == {"up to date"}

"""Shared fixtures: a folder of generated images and encoded caches for a tiny ResNet and a tiny ViT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pipeline.encode import run_encode
from pipeline.encode.run import EncodeReport
from pipeline.params import encode_params, runtime_params
from tests.helpers import encode_section, make_folder

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def verified_memo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The memo of verified files (pipeline.store.integrity) lives in the session's temporary folder, not ~/.cache;
    subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("state")
    os.environ["CLIPCACHE_STATE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 10 images (48x40 JPEG)."""
    return make_folder(tmp_path_factory.mktemp("images"), ["red_thing", "green_thing", "blue_thing"], 10)


def encode_tiny(root: Path, cache: Path, model: str) -> EncodeReport:
    section = encode_section(root, model, cache)
    return run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8, "shard_images": 4}))


@pytest.fixture(scope="session", params=["resnet", "vit"])
def encoded(request: pytest.FixtureRequest, image_root: Path,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[str, EncodeReport]:
    """(tower kind, report) of a finished tiny encode run, one per tower kind."""
    cache = tmp_path_factory.mktemp(f"cache-{request.param}")
    return request.param, encode_tiny(image_root, cache, request.param)

"""A tiny ViT cache with two shot counts and two seeds, and params files whose grid points at it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.encode import run_encode
from pipeline.params import encode_params, runtime_params
from tests.heads.conftest import QUICK
from tests.helpers import encode_section

HEADS = ["zero_shot", "gda", "tip_adapter"]


@pytest.fixture(scope="session")
def two_seed_cache(image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The `encode` section (grid-less form) of a tiny ViT cache with shots [1, 2] x seeds [1, 2]."""
    cache = tmp_path_factory.mktemp("sweep-cache")
    section = encode_section(image_root, "vit", cache, protocol__shots=[1, 2], protocol__seeds=[1, 2])
    run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8, "shard_images": 8}))
    return section


def grid_params(section: dict[str, Any], folder: Path, heads: list[str] | None = None,
                runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """A params mapping with a one-pair grid over the cache of `section`, QUICK head params, results in `folder`."""
    section = copy.deepcopy(section)
    shared = {k: v for k, v in section.items() if k not in ("dataset", "model")}
    return {"grid": {"datasets": [section["dataset"]], "models": [section["model"]]}, "encode": shared,
            "runtime": {"workers": 0, "device": "cpu", **(runtime or {})}, "train": {"heads": heads or HEADS},
            "heads": {k: dict(v) for k, v in QUICK.items()},
            "evaluate": {"results_dir": str(folder / "results"), "report_dir": str(folder / "report")}}


def write(params: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(params))
    return path

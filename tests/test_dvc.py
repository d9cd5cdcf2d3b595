"""`dvc repro encode` in a real temporary git + DVC repository, with this checkout's dvc.yaml and stage script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import encode_section, make_folder

REPO = Path(__file__).resolve().parents[1]


def sh(*args: str, cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_dvc_repro_encode_then_only_tracked_params_rerun_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(REPO / "stages", repo / "stages")
    shutil.copytree(REPO / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    images = make_folder(tmp_path / "images", ["a", "b", "c"], 10)
    section = encode_section(images, "vit", Path("cache"))
    params = {"encode": section, "runtime": {"workers": 0, "batch_size": 8}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    sh("git", "init", "-q", cwd=repo)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)

    out = sh("dvc", "repro", "encode", cwd=repo)
    folder = repo / "cache" / "image_folder" / "tiny-ViT__none"
    assert "Running stage 'encode'" in out and (folder / "test.h5").is_file() and (folder / "k2-s1" / "train.h5").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert "encode" in lock["stages"]["encode"]["params"]["params.yaml"]
    assert "runtime" not in lock["stages"]["encode"]["params"]["params.yaml"]

    params["runtime"]["batch_size"] = 2  # runtime only: nothing to do
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert "Stage 'encode' didn't change" in sh("dvc", "repro", "encode", cwd=repo)

    stamp = (folder / "test.h5").stat().st_mtime_ns
    params["encode"]["views"]["count"] = 2  # tracked: the stage re-runs; only the files it changes are rewritten
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert "Running stage 'encode'" in sh("dvc", "repro", "encode", cwd=repo)
    assert (folder / "test.h5").stat().st_mtime_ns == stamp, "test split has no views: kept, not re-encoded"
    from pipeline.store import FeatureSplit

    assert FeatureSplit(folder / "k2-s1" / "train.h5").n_views == 2

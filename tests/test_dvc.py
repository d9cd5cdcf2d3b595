"""`dvc repro` end to end in a real temporary git + DVC repository, with this checkout's dvc.yaml and stages.

The central promise: after a full run, changing one head's parameter re-runs only that head's train and evaluate
stages (and the report); encode and the other heads are not re-run. Checked on what DVC reports and on file times.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.heads.conftest import QUICK
from tests.helpers import encode_section, make_folder

REPO = Path(__file__).resolve().parents[1]


def sh(*args: str, cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def stamps(root: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.glob(pattern)) if p.is_file()}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A git + DVC repository holding the pipeline, after a first full `dvc repro`."""
    root = tmp_path_factory.mktemp("dvc")
    repo = root / "repo"
    repo.mkdir()
    shutil.copytree(REPO / "stages", repo / "stages")
    shutil.copytree(REPO / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    images = make_folder(root / "images", ["a", "b", "c"], 10)
    params = {"encode": encode_section(images, "vit", Path("cache")), "runtime": {"workers": 0, "batch_size": 8},
              "train": {"head": "gda", "shots": 2, "seed": 1, "out_dir": "models", "heads": ["gda", "tip_adapter"]},
              "heads": {"gda": {}, "tip_adapter": dict(QUICK["tip_adapter"])},
              "evaluate": {"results_dir": "results", "report_dir": "report"}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    sh("git", "init", "-q", cwd=repo)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    out = sh("dvc", "repro", cwd=repo)
    for stage in ("encode", "train@gda-2-1", "train@tip_adapter-2-1", "evaluate@gda-2-1", "evaluate@tip_adapter-2-1", "report"):
        assert f"Running stage '{stage}'" in out, out
    return repo, params


@pytest.mark.slow
def test_full_repro_writes_every_stage_output(repo) -> None:
    root, _ = repo
    assert (root / "cache" / "image_folder" / "tiny-ViT__none" / "k2-s1" / "train.h5").is_file()
    assert (root / "models" / "gda" / "k2-s1" / "head.safetensors").is_file()
    record = json.loads((root / "results" / "tip_adapter" / "k2-s1" / "evaluation.json").read_text())
    assert record["random_weights"] is True and record["head_params"]["beta_grid"] == [0.5, 7.0, 10]
    assert "RANDOM WEIGHTS" in (root / "report" / "table.md").read_text()
    assert list((root / "report" / "figures").glob("accuracy_vs_shots*.png"))
    metrics = sh("dvc", "metrics", "show", cwd=root)
    assert "top1" in metrics and "results/gda/k2-s1/metrics.json" in metrics


@pytest.mark.slow
def test_runtime_settings_rerun_nothing(repo) -> None:
    root, params = repo
    params["runtime"]["batch_size"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = sh("dvc", "repro", cwd=root)
    assert "Running stage" not in out, out


@pytest.mark.slow
def test_one_heads_parameter_reruns_only_that_head(repo) -> None:
    root, params = repo
    before = {**stamps(root, "cache/**/*.h5"), **stamps(root, "models/gda/**/*"), **stamps(root, "results/gda/**/*")}
    params["heads"]["tip_adapter"]["alpha_grid"] = [0.5, 2.0, 4]
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = sh("dvc", "repro", cwd=root)
    ran = sorted(line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage"))
    assert ran == ["evaluate@tip_adapter-2-1", "report", "train@tip_adapter-2-1"], out
    after = {**stamps(root, "cache/**/*.h5"), **stamps(root, "models/gda/**/*"), **stamps(root, "results/gda/**/*")}
    assert after == before, "encode and the other head's files must not be rewritten"
    saved = json.loads((root / "models" / "tip_adapter" / "k2-s1" / "head.json").read_text())
    assert saved["params"]["alpha_grid"] == [0.5, 2.0, 4]

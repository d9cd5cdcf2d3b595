"""`dvc repro` end to end in a real temporary git + DVC repository, with this checkout's dvc.yaml and stages.

Coarse stages: one encode stage per data set of the grid, one sweep stage per head, the report. Changing one head's
parameter re-runs that head's sweep stage (and the report) and nothing else; runtime settings re-run nothing; adding
images to a data set's folder makes its encode stage out of date.
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
from tests.helpers import PAIR as TINY_PAIR
from tests.helpers import encode_section, make_folder, make_image

REPO = Path(__file__).resolve().parents[1]
PAIR = TINY_PAIR["vit"]


def sh(*args: str, cwd: Path, stdout_only: bool = False) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout if stdout_only else done.stdout + done.stderr


def ran(out: str) -> list[str]:
    return sorted(line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage"))


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
    section = encode_section(images, "vit", Path("cache"))
    params = {"grid": {"datasets": [section.pop("dataset")], "models": [section.pop("model")]}, "encode": section,
              "runtime": {"workers": 0, "batch_size": 8},
              "train": {"heads": ["gda", "tip_adapter", "clip_adapter"], "protocol": "all",  # tracked by sweep
                        "transfer": {"source": "", "targets": []}},
              "heads": {"gda": {}, "tip_adapter": dict(QUICK["tip_adapter"]), "clip_adapter": {"epochs": 3}},
              "transductive": {"heads": []},
              "evaluate": {"results_dir": "results", "report_dir": "report", "curves": ["auto"]}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    sh("git", "init", "-q", cwd=repo)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    out = sh("dvc", "repro", cwd=repo)
    assert ran(out) == ["encode@0", "report", "sweep@clip_adapter", "sweep@gda", "sweep@tip_adapter", "textile"], out
    return repo, params


@pytest.mark.slow
def test_full_repro_writes_every_stage_output(repo) -> None:
    root, _ = repo
    assert (root / "cache" / "image_folder" / PAIR / "k2-s1" / "train.h5").is_file()
    assert (root / "results" / "gda" / "image_folder" / PAIR / "k2-s1" / "head.safetensors").is_file()
    run = root / "results" / "tip_adapter" / "image_folder" / PAIR / "k2-s1"
    record = json.loads((run / "evaluation.json").read_text())
    assert record["random_weights"] is True and record["head_params"]["beta_grid"] == [0.5, 7.0, 10]
    assert "RANDOM WEIGHTS" in (root / "report" / "table.md").read_text()
    assert (root / "report" / "index.html").is_file()
    metrics = sh("dvc", "metrics", "show", cwd=root)
    assert "top1" in metrics and "results/metrics/gda.json" in metrics
    plots = json.loads(sh("dvc", "plots", "show", "--json", cwd=root, stdout_only=True))["data"]
    values = plots["accuracy_vs_shots"][0]["content"]["data"]["values"]
    assert sorted({v["filename"] for v in values}) == ["clip_adapter.csv", "gda.csv", "tip_adapter.csv"]


@pytest.mark.slow
def test_dvc_plots_draw_the_training_curves_and_dvc_shows_their_finals(repo) -> None:
    """The trained head's DVCLive curves (the report's copies of the run evaluate.curves chose): one plot per curve,
    x = epoch; its kept epoch and final loss among the sweep stage's metrics, which `dvc exp show` lists."""
    root, _ = repo
    run = f"clip_adapter/image_folder/{PAIR}/k2-s1"
    plots = json.loads(sh("dvc", "plots", "show", "--json", cwd=root, stdout_only=True))["data"]
    training = {key.split("/")[-1]: value for key, value in plots.items() if key.startswith(f"report/training/{run}/")}
    assert sorted(training) == ["lr.tsv", "train_loss.tsv", "val_acc.tsv"], sorted(plots)
    loss = training["train_loss.tsv"][0]["content"]
    assert [(int(v["step"]), float(v["train_loss"])) for v in loss["data"]["values"]] == [
        (int(step), float(value)) for step, value in (line.split("\t") for line in (
            root / "results" / run / "dvclive" / "plots" / "metrics" / "train_loss.tsv").read_text().splitlines()[1:])]
    assert len(loss["data"]["values"]) == 3 and loss["encoding"]["x"]["field"] == "step"
    fit = json.loads((root / "results" / run / "fit.json").read_text())
    metrics = json.loads(sh("dvc", "metrics", "show", "--json", cwd=root, stdout_only=True))
    finals = metrics[""]["data"]["results/metrics/clip_adapter.json"]["data"]["image_folder"][PAIR]["k2-s1"]
    assert finals["kept_epoch"] == fit["selected"]["epoch"] == 3
    assert finals["final_train_loss"] == fit["history"][-1]["train_loss"]
    shown = sh("dvc", "exp", "show", "--csv", "--drop", ".*", "--keep", ".*kept_epoch", cwd=root, stdout_only=True)
    assert f"{PAIR}.k2-s1.kept_epoch" in shown.splitlines()[0], shown


@pytest.mark.slow
def test_runtime_settings_rerun_nothing(repo) -> None:
    root, params = repo
    params["runtime"]["batch_size"] = 2
    params["runtime"]["cluster"] = "local:2"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = sh("dvc", "repro", cwd=root)
    assert "Running stage" not in out, out


@pytest.mark.slow
def test_one_heads_parameter_reruns_only_that_head(repo) -> None:
    root, params = repo
    before = {**stamps(root, "cache/**/*.h5"), **stamps(root, "results/gda/**/*")}
    params["heads"].setdefault("tip_adapter", {})["alpha_grid"] = [0.5, 2.0, 4]
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = sh("dvc", "repro", cwd=root)
    assert ran(out) == ["report", "sweep@tip_adapter"], out
    after = {**stamps(root, "cache/**/*.h5"), **stamps(root, "results/gda/**/*")}
    assert after == before, "encode and the other head's files must not be rewritten"
    saved = json.loads((root / "results" / "tip_adapter" / "image_folder" / PAIR / "k2-s1" / "head.json").read_text())
    assert saved["params"]["alpha_grid"] == [0.5, 2.0, 4]


@pytest.mark.slow
def test_the_readmes_ablation_recipe_runs_as_written(repo) -> None:
    """README's `dvc exp` recipe on a committed baseline: an experiment over one head's parameter re-runs that head's
    sweep stage and the report only, in a temporary copy (the workspace keeps its params), and `dvc exp show` with the
    recipe's filters shows the experiment and that head's columns alone."""
    root, _ = repo
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "baseline", cwd=root)
    before = (root / "params.yaml").read_text()
    out = sh("dvc", "exp", "run", "--temp", "-n", "tip-beta", "-S", "heads.tip_adapter.beta_grid=[1.0,5.0,5]", cwd=root)
    assert ran(out) == ["report", "sweep@tip_adapter"], out
    assert (root / "params.yaml").read_text() == before
    shown = sh("dvc", "exp", "show", "--csv", "--drop", ".*", "--keep", "Experiment|.*tip_adapter.*", cwd=root,
               stdout_only=True)
    header, *rows = shown.strip().splitlines()
    assert "tip-beta" in shown and all("tip_adapter" in c or c == "Experiment" for c in header.split(",")), header
    assert any("5.0" in row for row in rows) and "gda" not in header, shown


@pytest.mark.slow
def test_new_images_make_the_encode_stage_out_of_date(repo) -> None:
    root, params = repo
    images = Path(params["grid"]["datasets"][0]["root"])
    for i in range(2):
        make_image(images / "a" / f"new_{i}.jpg", 0, seed=500 + i)
    status = sh("dvc", "status", cwd=root)
    assert "encode@0" in status and "sweep@gda" not in status.split("encode@0")[0], status

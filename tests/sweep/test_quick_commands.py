"""Commands that answer at once: `heads`, `presets`, `datasets`, `--help`, `status` and a sweep with nothing left to
do import no torch, open_clip or h5py-backed model code (checked in a fresh interpreter); and the torch-free
description of every head (pipeline.head_params) is the one its class uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.head_names import HEADS
from pipeline.head_params import head_requires, head_runs, params_class
from pipeline.heads.registry import head_class
from tests.sweep.conftest import grid_params, write

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", HEADS)
def test_every_heads_class_takes_its_params_requires_and_runs_from_head_params(name: str) -> None:
    cls = head_class(name)
    assert cls.Params is params_class(name)
    assert cls.requires == head_requires(name) and cls.runs == head_runs(name)


def heavy_after(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter; it ends by printing the heavy modules it imported."""
    script = ("import sys\nfrom pipeline.cli import main\n" + code +
              "print(sorted({'torch', 'open_clip', 'pipeline.heads', 'distributed'} & set(sys.modules)))\n")
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False)


def test_listings_status_and_a_sweep_with_nothing_to_do_load_no_model_library(two_seed_cache: dict[str, Any],
                                                                              tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot", "tip_adapter"])
    path = write(params, tmp_path / "params.yaml")
    first = subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "--params", str(path)], cwd=REPO,
                           capture_output=True, text=True, timeout=300, check=True)
    assert '"done_now": 8' in first.stdout
    calls = "".join(f"assert main({argv!r}) == 0\n" for argv in (
        ["heads", "--params", str(path)], ["presets"], ["datasets"], ["status", "--params", str(path)],
        ["sweep", "--params", str(path)]))
    done = heavy_after(calls)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]
    assert '"already_done": 8' in done.stdout and "tip_adapter\n  needs: global, views" in done.stdout


def test_a_sweep_with_runs_to_do_still_names_an_unknown_model_in_one_line(two_seed_cache: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    params = grid_params(two_seed_cache, tmp_path, heads=["zero_shot"])
    params["grid"]["models"] = [{"name": "ViT-B-322", "pretrained": "none"}]
    done = heavy_after(f"assert main(['sweep', '--params', {str(write(params, tmp_path / 'p.yaml'))!r}]) == 1\n")
    assert done.returncode == 0, done.stderr
    assert "clipcache: error: " in done.stderr and "ViT-B-322" in done.stderr.splitlines()[-1]


def test_refusals_of_names_roots_and_missing_caches_come_before_any_model_library(tmp_path: Path) -> None:
    """encode with data roots that are not folders (all named), encode --dataset typo, train / evaluate --head typo
    and a sweep whose caches were never encoded: one line each, exit 1, no torch."""
    params = tmp_path / "p.yaml"
    params.write_text(f"grid:\n  datasets: [{{name: dtd, root: {tmp_path}/nowhere}}, "
                      f"{{name: eurosat, root: {tmp_path}/neither}}]\n"
                      "  models: [{name: ViT-B-32, pretrained: none}]\ntrain: {heads: [zero_shot]}\n"
                      f"encode: {{cache_dir: {tmp_path}/cache}}\n")
    calls = "".join(f"assert main({argv!r}) == 1\n" for argv in (
        ["encode", "--params", str(params)], ["encode", "--params", str(params), "--dataset", "dtdd"],
        ["train", "--params", str(params), "--head", "nosuch", "--dataset", "dtd"],
        ["evaluate", "--params", str(params), "--head", "nosuch", "--dataset", "dtd"],
        ["sweep", "--params", str(params)]))
    done = heavy_after(calls)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("clipcache: error: ")]
    assert len(errors) == 5, done.stderr
    assert errors[0] == (f"clipcache: error: data set root '{tmp_path}/nowhere' of 'dtd' is not a folder; data set "
                         f"root '{tmp_path}/neither' of 'eurosat' is not a folder")
    assert "--dataset dtdd: no such data set in the grid" in errors[1]
    assert "unknown head 'nosuch'" in errors[2] and "unknown head 'nosuch'" in errors[3]
    assert "nothing to fit: 2 (data set, model) pair(s) not encoded (dtd / ViT-B-32__none, eurosat / " in errors[4]
    assert errors[4].endswith("run clipcache encode first")

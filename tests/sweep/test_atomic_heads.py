"""A fitted head is written as one unit: into a temporary folder unique to the process, renamed into place. A kill
between its two files leaves the previous head whole; two concurrent `clipcache train` of the same run leave one
complete head, never one's weights beside the other's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

import pipeline.heads.io as head_io
from pipeline.heads.io import load_head
from pipeline.train.entry import train_from_params
from tests.helpers import PAIR
from tests.sweep.conftest import grid_params, write

FOLDER = Path("tip_adapter") / "image_folder" / PAIR["vit"] / "k2-s1"


def params_file(cache: dict, tmp_path: Path, alpha_stop: float) -> Path:
    params = grid_params(cache, tmp_path, heads=["tip_adapter"])
    params["train"].update({"head": "tip_adapter", "shots": 2, "seed": 1})
    params["heads"]["tip_adapter"] = {"beta_grid": [1.0, 1.0, 1], "alpha_grid": [alpha_stop / 2, alpha_stop, 1]}
    return write(params, tmp_path / f"params-{alpha_stop}.yaml")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_failure_between_the_two_files_leaves_the_previous_head_whole(two_seed_cache, tmp_path: Path,
                                                                         monkeypatch) -> None:
    first = train_from_params(params_file(two_seed_cache, tmp_path, 2.0), [], None, {})
    before = snapshot(first.folder)

    def killed(*_args, **_kwargs) -> None:
        raise KeyboardInterrupt("killed after the weights were written")

    monkeypatch.setattr(head_io, "write_json_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        train_from_params(params_file(two_seed_cache, tmp_path, 6.0), [], None, {})
    assert snapshot(first.folder) == before  # weights of the new fit never sit beside the old head.json
    assert not [p for p in first.folder.parent.iterdir() if p.name.startswith(".tmp-")]
    _, meta = load_head(first.folder)
    assert meta["selected"]["alpha"] == pytest.approx(1.0)  # the first fit's alpha: 2.0 / 2


@pytest.mark.slow
def test_concurrent_trains_of_one_run_leave_one_whole_head(two_seed_cache, tmp_path: Path) -> None:
    """Pairs of real `clipcache train` processes, each with its own alpha, racing on the same run folder."""
    for attempt in range(2):
        paths = [params_file(two_seed_cache, tmp_path, alpha) for alpha in (2.0, 6.0)]
        procs = [subprocess.Popen([sys.executable, "-m", "pipeline.cli", "train", "--params", str(p)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for p in paths]
        assert [proc.wait(timeout=300) for proc in procs] == [0, 0], [proc.stderr.read() for proc in procs]
        folder = tmp_path / "results" / FOLDER
        meta = json.loads((folder / "head.json").read_text())
        weights = load_file(str(folder / "head.safetensors"))
        assert float(weights["alpha"]) == pytest.approx(meta["selected"]["alpha"]), f"attempt {attempt}: a mix"
        assert meta["selected"]["alpha"] in (pytest.approx(1.0), pytest.approx(3.0))
        assert sorted(p.name for p in folder.iterdir()) == ["fit.json", "head.json", "head.safetensors"]
        assert not [p for p in folder.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]

"""A fitted head's two files are checked against each other before anything is allocated: a crafted head.json cannot
ask for a huge tensor, and weights from another head are refused by name."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from pipeline.errors import ClipCacheError
from pipeline.heads import create_head
from pipeline.heads.io import load_head, save_head


@pytest.fixture
def saved(task, tmp_path: Path) -> Path:
    data, _ = task
    save_head(create_head("gda").fit(data), tmp_path / "gda", {"test": True})
    save_head(create_head("tip_adapter", {"beta_grid": [1.0, 2.0, 2]}).fit(data), tmp_path / "tip", {"test": True})
    return tmp_path


def test_a_crafted_shape_is_refused_before_any_allocation(saved: Path) -> None:
    meta = json.loads((saved / "gda" / "head.json").read_text())
    meta["shapes"]["dim"] = 10**12  # 10^12 x classes floats: terabytes
    (saved / "gda" / "head.json").write_text(json.dumps(meta))
    started = time.perf_counter()
    with pytest.raises(ClipCacheError, match=r"shapes.dim = 1000000000000 is not a size a head can have"):
        load_head(saved / "gda")
    meta["shapes"]["dim"] = 64  # a plausible size that is not the weights'
    (saved / "gda" / "head.json").write_text(json.dumps(meta))
    with pytest.raises(ClipCacheError, match=r"head.json and head.safetensors do not belong together \(tensor "
                                             r"'class_weights': head.json implies \(5, 64\), the weights hold "
                                             r"\(5, 32\)"):
        load_head(saved / "gda")
    assert time.perf_counter() - started < 5


def test_weights_of_another_head_are_refused(saved: Path) -> None:
    shutil.copy(saved / "tip" / "head.safetensors", saved / "gda" / "head.safetensors")
    with pytest.raises(ClipCacheError, match="do not belong together"):
        load_head(saved / "gda")
    head, meta = load_head(saved / "tip")
    assert meta["head"] == "tip_adapter" and head.shapes["keys"] > 0


def test_damaged_weights_of_the_right_shapes_are_refused(saved: Path) -> None:
    """Flipped bytes keep every shape: only the checksum in head.json can tell."""
    weights = saved / "gda" / "head.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-16:] = bytes(255 - b for b in raw[-16:])  # inside the last tensor's data
    weights.write_bytes(bytes(raw))
    with pytest.raises(ClipCacheError, match=r"head\.json' does not match its weights: head\.safetensors is damaged"):
        load_head(saved / "gda")
    meta = json.loads((saved / "tip" / "head.json").read_text())
    del meta["weights_checksum"]
    (saved / "tip" / "head.json").write_text(json.dumps(meta))
    with pytest.raises(ClipCacheError, match="records no checksum of its weights"):
        load_head(saved / "tip")


@pytest.mark.parametrize("value", [-1, True, 2.0, "3", None])
def test_every_shape_must_be_a_plain_integer_size(saved: Path, value) -> None:
    meta = json.loads((saved / "gda" / "head.json").read_text())
    meta["shapes"]["classes"] = value
    (saved / "gda" / "head.json").write_text(json.dumps(meta))
    path = str(saved / "gda" / "head.json")
    with pytest.raises(ClipCacheError) as error:
        load_head(saved / "gda")
    assert str(error.value) == f"{path!r}: shapes.classes = {value!r} is not a size a head can have"
    meta["shapes"] = [5, 32]
    (saved / "gda" / "head.json").write_text(json.dumps(meta))
    with pytest.raises(ClipCacheError) as error:
        load_head(saved / "gda")
    assert str(error.value) == f"{path!r}: 'shapes' must map tensor sizes to integers"


def test_a_head_is_saved_into_a_folder_it_creates(task, tmp_path: Path) -> None:
    data, test = task
    head = create_head("gda").fit(data)
    record = save_head(head, tmp_path / "runs" / "k4" / "gda", {"test": True})
    loaded, meta = load_head(tmp_path / "runs" / "k4" / "gda")
    assert meta == record and meta["provenance"] == {"test": True} and meta["selected"] == head.selected
    assert meta["head"] == "gda" and meta["shapes"] == head.shapes
    assert (loaded.scores(test) == head.scores(test)).all()


def test_a_folder_without_a_head_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipCacheError) as error:
        load_head(tmp_path / "empty")
    assert str(error.value).startswith(f"no readable fitted head in {str(tmp_path / 'empty')!r}: ")

"""params.yaml values checked before any work, one line each: unknown sections, list items of the wrong type or
count, and data-set options out of range."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.data import create_dataset
from pipeline.errors import ClipCacheError
from pipeline.heads import create_head
from pipeline.params import load_params
from tests.helpers import make_folder


def test_a_misspelled_section_is_named(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"encode": {}, "head": {"gda": {}}}))
    with pytest.raises(ClipCacheError, match=r"unknown section 'head'; known: grid, encode, runtime, train, heads"):
        load_params(path)


@pytest.mark.parametrize(("params", "culprit"), [
    ({"alpha_grid": ["a", 2.0, 7]}, r"heads.gda.alpha_grid\[0\] must be float, got 'a'"),
    ({"alpha_grid": [-4.0, 2.0, 7.5]}, r"heads.gda.alpha_grid\[2\] must be int, got 7.5"),
    ({"alpha_grid": [-4.0, 2.0]}, r"heads.gda.alpha_grid must have 3 items, got \[-4.0, 2.0\]"),
    ({"alpha_grid": [True, 2.0, 7]}, r"heads.gda.alpha_grid\[0\] must be float, got True"),
])
def test_list_items_are_type_checked(params: dict, culprit: str) -> None:
    with pytest.raises(ClipCacheError, match=culprit):
        create_head("gda", params)
    assert create_head("gda", {"alpha_grid": [-4, 2, 7]}).params.alpha_grid == (-4.0, 2.0, 7)  # ints are floats


@pytest.mark.parametrize(("options", "culprit"), [
    ({"max_per_class": -5}, "max_per_class must be a whole number >= 1 .* got -5"),
    ({"max_per_class": 2.5}, "max_per_class must be a whole number >= 1 .* got 2.5"),
    ({"split_seed": -1}, "split_seed must be a whole number >= 0, got -1"),
])
def test_data_set_options_out_of_range_are_named(tmp_path: Path, options: dict, culprit: str) -> None:
    root = make_folder(tmp_path / "images", ["cat", "dog"], 6)
    with pytest.raises(ClipCacheError, match=culprit):
        create_dataset("image_folder", root, options)
    assert create_dataset("image_folder", root, {"max_per_class": 2}).splits


def test_the_bounds_are_inclusive() -> None:
    """The largest view count and shot count allowed are accepted; seed 0 is a seed."""
    from pipeline.params import MAX_SHOTS, MAX_VIEWS, encode_params, train_params

    params = encode_params({"views": {"count": MAX_VIEWS}, "protocol": {"shots": [MAX_SHOTS], "seeds": [0]}})
    assert (params.views.count, params.protocol.shots, params.protocol.seeds) == (MAX_VIEWS, (MAX_SHOTS,), (0,))
    assert train_params({"seed": 0, "shots": 1}).seed == 0

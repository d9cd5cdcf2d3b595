"""The reader: lazy views, provenance checks, and refusal of incomplete, truncated or foreign files."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline.errors import ClipCacheError
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.inspect import describe, render


def test_layout_shapes_and_provenance(encoded) -> None:
    kind, report = encoded
    train = FeatureSplit(report.folder / "k2-s1" / "train.h5")
    test = FeatureSplit(report.folder / "test.h5")
    assert train.n == 6 and test.n == 9 and np.bincount(train.labels).tolist() == [2, 2, 2]
    assert train.array("global").shape == (6, 32) and train.array("views/spatial").shape[:2] == (3, 6)
    p = train.provenance
    assert (p["encoder"]["pretrained"], p["encoder"]["random_weights"], p["split"]["shots"], p["split"]["seed"]) == \
        ("none", True, 2, 1)
    assert p["dataset"]["name"] == "image_folder" and len(p["dataset"]["file_list_sha256"]) == 64
    assert p["features"]["normalised"] is False and p["views"]["count"] == 3
    # the views' rule is written out whole: a reader can rebuild every crop from the provenance alone
    assert {k: p["views"][k] for k in ("ratio", "flip", "interpolation", "scale", "seed", "spatial")} == {
        "ratio": [3 / 4, 4 / 3], "flip": 0.5, "interpolation": "bicubic", "scale": [0.5, 1.0], "seed": 0,
        "spatial": True}
    assert p["views"]["view_seed"] == "numpy default_rng([views.seed, item_index, view])"
    assert {"open_clip_version", "torch_version", "preprocess"} <= set(p["encoder"])
    assert train.build["code_version"].startswith("0.1.0") and test.provenance["views"] is None
    if kind == "vit":  # late_tokens: 1 keeps the tokens entering the last block, of the images and of their views
        assert train.array("late_tokens").shape == (6, 17, 48) and train.array("views/late_tokens").shape[:2] == (3, 6)
    else:
        assert not train.has("late_tokens") and p["features"]["late_tokens"] == 0


@pytest.mark.parametrize(("field", "value"), [("encoder.model", "RN50"), ("split.shots", 16), ("split.seed", 9)])
def test_a_mismatched_request_is_refused_naming_the_field(encoded, field: str, value) -> None:
    _, report = encoded
    with pytest.raises(ClipCacheError, match=field.replace(".", r"\.")):
        FeatureSplit(report.folder / "k2-s1" / "train.h5", expect={field: value})
    FeatureSplit(report.folder / "k2-s1" / "train.h5", expect={"split.shots": 2, "encoder.random_weights": True})


def copy_of(report, tmp_path: Path, name: str = "test.h5") -> Path:
    target = tmp_path / name
    shutil.copy(report.folder / name, target)
    return target


def test_incomplete_file_is_refused(encoded, tmp_path: Path) -> None:
    _, report = encoded
    path = copy_of(report, tmp_path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["complete"] = False
    with pytest.raises(ClipCacheError, match="incomplete"):
        FeatureSplit(path)


def test_truncated_file_is_refused_never_read_as_zeros(encoded, tmp_path: Path) -> None:
    _, report = encoded
    path = copy_of(report, tmp_path)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size - 2000)
    with pytest.raises(ClipCacheError, match=r"corrupt|truncated"):
        FeatureSplit(path).read("global")


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.h5").write_bytes(b"\x00" * 100)
    with pytest.raises(ClipCacheError, match=r"junk\.h5.*corrupt"):
        FeatureSplit(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(ClipCacheError, match="not a clipcache file"):
        FeatureSplit(tmp_path / "other.h5")
    with pytest.raises(ClipCacheError, match="does not exist"):
        FeatureSplit(tmp_path / "missing.h5")


def test_reads_in_any_order_with_duplicates(encoded) -> None:
    _, report = encoded
    split = FeatureSplit(report.folder / "test.h5")
    full = split.read("spatial")
    rows = np.array([8, 0, 3, 3, 1])
    np.testing.assert_array_equal(split.read("spatial", rows), full[rows])
    views = FeatureSplit(report.folder / "k2-s1" / "train.h5")
    picked = np.array([2, 0, 1, 0, 2, 1])
    expected = views.read("views/spatial")[picked, np.arange(6)]
    np.testing.assert_array_equal(views.read_views("views/spatial", np.arange(6), picked), expected)


class RowsDataset(torch.utils.data.Dataset):
    def __init__(self, split: FeatureSplit):
        self.array = split.array("spatial")

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.array[i]


def test_lazy_arrays_pickle_and_work_in_dataloader_workers(encoded) -> None:
    _, report = encoded
    split = FeatureSplit(report.folder / "test.h5")
    clone = pickle.loads(pickle.dumps(split))
    np.testing.assert_array_equal(clone.read("global"), split.read("global"))
    loader = torch.utils.data.DataLoader(RowsDataset(split), batch_size=4, num_workers=2)
    np.testing.assert_array_equal(torch.cat(list(loader)).numpy(), split.read("spatial"))


def test_dask_view_equals_numpy_and_streams_batches(encoded) -> None:
    _, report = encoded
    split = FeatureSplit(report.folder / "test.h5")
    lazy = split.dask("global", rows_per_chunk=4)
    assert lazy.chunks[0] == (4, 4, 1)
    np.testing.assert_allclose(lazy.mean(axis=0).compute(scheduler="threads"), split.read("global").mean(0), rtol=1e-6)
    seen = np.concatenate([b["rows"] for b in split.batches(["global"], batch_size=4, seed=3)])
    assert sorted(seen.tolist()) == list(range(split.n))


def test_text_features_file(encoded) -> None:
    _, report = encoded
    text = TextFeatures(report.folder / "text.h5", expect={"encoder.random_weights": True})
    assert text.template_sets == ["coop", "imagenet80", "tip7"] and text.per_template("tip7").shape == (3, 7, 32)
    assert text.classnames == ["blue thing", "green thing", "red thing"] and text.templates("coop") == ["a photo of a "
                                                                                                        "{}."]
    np.testing.assert_allclose(np.linalg.norm(text.mean("tip7"), axis=1), 1.0, rtol=1e-5)
    assert text.logit_scale > 1
    with pytest.raises(ClipCacheError, match=r"no template set 'laion'.*present: coop, imagenet80, tip7"):
        text.mean("laion")


def test_inspect_reports_every_file(encoded) -> None:
    _, report = encoded
    entries = describe(report.folder)
    assert len(entries) == 4 and all(e["status"] == "complete" for e in entries)
    text = render(entries)
    assert "RANDOM WEIGHTS" in text and "views/spatial" in text and "shots 2, seed 1" in text


def test_a_global_only_cache_names_the_setting_that_adds_maps(image_root: Path, tmp_path: Path) -> None:
    from pipeline.encode import run_encode
    from pipeline.params import encode_params, runtime_params
    from tests.helpers import encode_section

    section = encode_section(image_root, "vit", tmp_path, features__spatial=False, features__spatial_raw=False,
                             features__late_tokens=0,
                             views__count=0)
    report = run_encode(encode_params(section), runtime_params({"workers": 0}))
    split = FeatureSplit(report.folder / "k2-s1" / "train.h5")
    assert sorted(split.arrays) == ["global", "image_id", "item_index", "labels"] and split.n_views == 0
    with pytest.raises(ClipCacheError, match=r"no 'spatial'; re-encode with encode\.features\.spatial: true"):
        split.array("spatial")
    with pytest.raises(ClipCacheError, match=r"encode\.views\.count > 0"):
        split.read_views("views/global", np.arange(2), np.zeros(2, int))


@pytest.mark.parametrize(("kind", "says"), [
    ("external storage", "dataset 'stolen' takes its bytes from another file (external storage)"),
    ("external link", "'stolen' is an external link to another file"),
    ("virtual dataset", "dataset 'stolen' takes its bytes from another file (a virtual dataset)")])
def test_a_file_taking_bytes_from_another_file_is_refused(encoded, tmp_path: Path, kind: str, says: str) -> None:
    """A cache file whose dataset reads another file's bytes (external storage, an external link, a virtual dataset)
    is not ours: refused by name before anything is read."""
    copy = copy_of(encoded[1], tmp_path)
    other = tmp_path / "other.bin"
    other.write_bytes(np.arange(16, dtype=np.float32).tobytes())
    with h5py.File(copy, "a") as handle:
        if kind == "external storage":
            handle.create_dataset("stolen", shape=(16,), dtype="f4", external=[(str(other), 0, 64)])
        elif kind == "external link":
            handle["stolen"] = h5py.ExternalLink(str(other), "/x")
        else:
            layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
            layout[:] = h5py.VirtualSource(str(other), "x", shape=(4,))
            handle.create_virtual_dataset("stolen", layout)
    with pytest.raises(ClipCacheError) as refused:
        FeatureSplit(copy)
    assert str(refused.value) == f"cache file {str(copy)!r} is not ours: {says}"


def test_damaged_metadata_is_a_one_line_refusal_and_inspect_exits_non_zero(encoded, tmp_path: Path, capsys) -> None:
    """One flipped byte in the object headers: h5py raises a RuntimeError while visiting; we name the file."""
    from pipeline.cli import main

    copy = copy_of(encoded[1], tmp_path)
    with copy.open("r+b") as handle:
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ClipCacheError, match=r"test.h5' is corrupt: Link visitation failed"):
        FeatureSplit(copy)
    assert main(["inspect", str(copy)]) == 1
    out, err = capsys.readouterr()
    assert "not healthy (cache file" in out and err.count("\n") == 1 and "1 of 1 entries are not healthy" in err
    assert main(["inspect", str(encoded[1].folder / "test.h5")]) == 0

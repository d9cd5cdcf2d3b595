"""`clipcache export`: a split file's features, labels, image ids and provenance round-trip through one .npz and
through clip-retrieval's layout (normalised img_emb .npy + parquet metadata); bad requests are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipeline.cli import main
from pipeline.store import FeatureSplit
from pipeline.store.provenance import fingerprint


def test_npz_and_embeddings_round_trip(encoded, tmp_path: Path, capsys) -> None:
    _, report = encoded
    source = report.folder / "test.h5"
    split = FeatureSplit(source)
    assert main(["export", str(source), "--out", str(tmp_path / "test.npz"), "--feature", "global",
                 "--feature", "spatial"]) == 0
    with np.load(tmp_path / "test.npz") as saved:
        assert np.array_equal(saved["global"], split.read("global"))
        assert np.array_equal(saved["spatial"], split.read("spatial"))
        assert np.array_equal(saved["labels"], split.labels) and list(saved["image_id"]) == split.image_ids
        assert list(saved["classnames"]) == split.provenance["dataset"]["classnames"]
        record = json.loads(str(saved["provenance"]))
    assert record["fingerprint"] == fingerprint(split.provenance) and record["provenance"] == split.provenance
    assert main(["export", str(source), "--out", str(tmp_path / "emb"), "--format", "embeddings"]) == 0
    emb = np.load(tmp_path / "emb" / "img_emb" / "img_emb_0.npy")
    feats = split.read("global")
    assert np.allclose(emb, feats / np.linalg.norm(feats, axis=1, keepdims=True), atol=1e-6)
    table = pq.read_table(tmp_path / "emb" / "metadata" / "metadata_0.parquet").to_pydict()
    names = split.provenance["dataset"]["classnames"]
    assert table["image_path"] == split.image_ids and table["label"] == split.labels.tolist()
    assert table["classname"] == [names[y] for y in split.labels]
    assert "wrote " in capsys.readouterr().out


def test_bad_exports_are_one_line(encoded, tmp_path: Path, capsys) -> None:
    _, report = encoded
    source = str(report.folder / "test.h5")
    assert main(["export", source, "--out", str(tmp_path / "x.npz"), "--feature", "views/global"]) == 1
    assert "has no row feature 'views/global' to export; it has: global" in capsys.readouterr().err
    assert main(["export", source, "--out", str(tmp_path / "x.txt")]) == 1
    assert "goes to a file ending in .npz" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "none.h5"), "--out", str(tmp_path / "x.npz")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_readmes_h5py_lines_read_a_cache_file_without_this_package(encoded) -> None:
    _, report = encoded
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- read-without-clipcache -->\n```python\n")[1].split("```")[0]
    source = report.folder / "test.h5"
    scope: dict = {}
    exec(block.replace("cache/dtd/ViT-B-32__openai/test.h5", str(source)), scope)
    split = FeatureSplit(source)
    assert np.array_equal(scope["features"], split.read("global")) and scope["image_ids"] == split.image_ids
    assert scope["classnames"] == split.provenance["dataset"]["classnames"]

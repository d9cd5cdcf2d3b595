"""Class descriptions in the text cache: every description's embedding is what the text tower computes for it (ragged,
with per-class offsets), their normalised mean is CuPL's classifier, the file is part of the text file's provenance
(a changed sentence rewrites text.h5 and nothing else), and a text file without descriptions keeps the provenance it
always had."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.backbone.model import load_encoder
from pipeline.encode.entry import encode_from_params
from pipeline.errors import ClipCacheError
from pipeline.grid import grid_pairs
from pipeline.heads import FitData, create_head
from pipeline.heads.classes import SubsetText
from pipeline.store import FeatureSplit, TextFeatures
from tests.helpers import TINY, encode_section, write_params
from tests.test_bad_files import one_error_line

SENTENCES = {"red thing": ["A red thing.", "Something red and round."],
             "green_thing": ["A green thing.", "Greenish, on a table.", "A green object in a photo."],
             "blue thing": ["A blue thing."]}


def described(image_root: Path, tmp_path: Path, sentences: dict) -> tuple[Path, Path]:
    """(params file, cache folder) of a tiny ViT encode whose data set has a descriptions file."""
    (tmp_path / "desc.json").write_text(json.dumps(sentences))
    section = encode_section(image_root, "vit", tmp_path / "cache", views__count=1, features__spatial=False,
                             features__spatial_raw=False, features__late_tokens=0)
    section["descriptions"] = {"image_folder": str(tmp_path / "desc.json")}
    params = write_params(tmp_path / "params.yaml", section)
    (report,) = encode_from_params(params, [], {})
    return params, report.folder


def test_descriptions_are_the_towers_embeddings_and_their_mean_is_cupls_classifier(image_root: Path,
                                                                                    tmp_path: Path) -> None:
    _, folder = described(image_root, tmp_path, SENTENCES)
    text = TextFeatures(folder / "text.h5")
    assert text.classnames == ["blue thing", "green thing", "red thing"]  # sorted folders: the file's order differs
    embeddings, offsets = text.description_embeddings()
    assert offsets.tolist() == [0, 1, 4, 6] and embeddings.shape[0] == 6
    flat = ["A blue thing.", "A green thing.", "Greenish, on a table.", "A green object in a photo.", "A red thing.",
            "Something red and round."]
    encoder = load_encoder(TINY["vit"], "none", torch.device("cpu"))
    with torch.no_grad():
        want = encoder.model.encode_text(encoder.tokenizer(flat)).float()  # [6, D]
    torch.testing.assert_close(torch.from_numpy(embeddings), want, rtol=1e-5, atol=1e-6)
    unit = F.normalize(want, dim=-1)
    means = F.normalize(torch.stack([unit[0:1].mean(0), unit[1:4].mean(0), unit[4:6].mean(0)]), dim=-1)
    torch.testing.assert_close(torch.from_numpy(text.mean("descriptions")), means, rtol=1e-5, atol=1e-6)
    record = text.provenance["descriptions"]
    assert record["file"] == "desc.json" and record["counts"] == [1, 3, 2]
    assert "descriptions" in text.template_sets
    with pytest.raises(ClipCacheError, match="descriptions differ in number per class"):
        text.per_template("descriptions")
    subset_embeddings, subset_offsets = SubsetText(text, [2, 0]).description_embeddings()
    assert subset_offsets.tolist() == [0, 2, 3]
    np.testing.assert_array_equal(subset_embeddings, embeddings[[4, 5, 0]])

    train, val = FeatureSplit(folder / "k2-s1" / "train.h5"), FeatureSplit(folder / "k2-s1" / "val.h5")
    head = create_head("zero_shot", {"template_set": "descriptions"}).fit(
        FitData(train, val, text, 1, torch.device("cpu")))
    torch.testing.assert_close(head.class_weights, means, rtol=1e-5, atol=1e-6)


def test_a_changed_sentence_rewrites_the_text_file_only(image_root: Path, tmp_path: Path) -> None:
    params, folder = described(image_root, tmp_path, SENTENCES)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.h5")}
    first = TextFeatures(folder / "text.h5").provenance["descriptions"]["sha256"]
    (tmp_path / "desc.json").write_text(json.dumps({**SENTENCES, "blue thing": ["A bluish thing."]}))
    (report,) = encode_from_params(params, [], {})
    assert report.files[str(folder / "text.h5")] == "written"
    assert {k for k, v in report.files.items() if v == "written"} == {str(folder / "text.h5")}
    assert TextFeatures(folder / "text.h5").provenance["descriptions"]["sha256"] != first
    after = {p.name: p.stat().st_mtime_ns for p in folder.rglob("*.h5")}
    assert {k for k in stamps if stamps[k] != after[k]} == {"text.h5"}


def test_a_text_file_without_descriptions_has_the_provenance_it_always_had(encoded) -> None:
    _, report = encoded
    text = TextFeatures(report.folder / "text.h5")
    assert "descriptions" not in text.provenance and "descriptions" not in text.template_sets
    with pytest.raises(ClipCacheError, match="holds no class descriptions: name a descriptions file"):
        text.description_embeddings()


def test_a_bad_descriptions_file_stops_the_encode_before_any_model(image_root: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "desc.json").write_text(json.dumps({"red thing": ["A red thing."]}))
    section = encode_section(image_root, "vit", tmp_path / "cache")
    section["descriptions"] = {"image_folder": str(tmp_path / "desc.json")}
    params = write_params(tmp_path / "params.yaml", section)
    line = one_error_line(["encode", "--params", str(params)], capsys)
    assert f"descriptions file {str(tmp_path / 'desc.json')!r} has no descriptions of class 'blue thing'" in line
    assert not list((tmp_path / "cache").rglob("*.h5"))  # nothing was encoded
    section["descriptions"] = {"imagefolder": str(tmp_path / "desc.json")}
    with pytest.raises(ClipCacheError, match=r"encode\.descriptions names 'imagefolder', which is no data set of "
                                             r"the grid; known: image_folder"):
        grid_pairs({"encode": section})
    section["descriptions"] = ["x"]
    with pytest.raises(ClipCacheError, match=r"encode\.descriptions must map data set names to files"):
        grid_pairs({"encode": section})

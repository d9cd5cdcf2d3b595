"""Files of one cache provably belong together, and a cache is identified by content: image bytes, model-config
content, checkpoint sha256 (issue 14). Real encodes of a tiny model; every refusal is one line naming the files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
import torch

from pipeline.backbone import load_encoder
from pipeline.cli import main
from pipeline.encode import run_encode
from pipeline.encode.run import EncodeReport
from pipeline.errors import ClipCacheError
from pipeline.evaluate.entry import evaluate_from_params
from pipeline.params import encode_params, runtime_params
from pipeline.store import FeatureSplit
from pipeline.store.provenance import ATTR_PROVENANCE
from pipeline.train.entry import train_from_params
from tests.helpers import TINY, encode_section, make_image, write_params

RUNTIME = {"workers": 0, "batch_size": 8, "shard_images": 4}
LEAN = {"views__count": 1, "features__spatial": False, "features__spatial_raw": False, "features__late_tokens": 0}


def encode(root: Path, cache: Path, model: str = "resnet", **changes: object) -> EncodeReport:
    return run_encode(encode_params(encode_section(root, model, cache, **{**LEAN, **changes})), runtime_params(RUNTIME))


@pytest.fixture(scope="module")
def two_builds(image_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Cache folders of the same images and model: A, and B built with another data-set option that keeps every
    file (max_per_class above the class sizes), i.e. the same file list from another build of the data set."""
    a = encode(image_root, tmp_path_factory.mktemp("a")).folder
    b = encode(image_root, tmp_path_factory.mktemp("b"), dataset__options__max_per_class=100).folder
    assert json.loads(h5py.File(a / "test.h5").attrs[ATTR_PROVENANCE])["dataset"]["file_list_sha256"] == \
        json.loads(h5py.File(b / "test.h5").attrs[ATTR_PROVENANCE])["dataset"]["file_list_sha256"]
    return a, b


def copy_cache(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "cache" / folder.parent.name / folder.name
    shutil.copytree(folder, target)
    return target


def params(image_root: Path, cache_folder: Path, tmp_path: Path, head: str = "tip_adapter") -> Path:
    section = encode_section(image_root, "resnet", cache_folder.parents[1])
    for key, value in LEAN.items():
        group, leaf = key.split("__")
        section[group][leaf] = value
    return write_params(tmp_path / "params.yaml", section, train={"head": head, "shots": 2, "seed": 1},
                        evaluate={"results_dir": str(tmp_path / "results")})


def test_a_val_file_of_another_build_is_refused_naming_both_files(two_builds, image_root: Path, tmp_path: Path,
                                                                  capsys) -> None:
    a, b = two_builds
    mixed = copy_cache(a, tmp_path)
    shutil.copy(b / "k2-s1" / "val.h5", mixed / "k2-s1" / "val.h5")
    assert main(["train", "--params", str(params(image_root, mixed, tmp_path)), "--head", "tip_adapter"]) == 1
    err = capsys.readouterr().err.strip()
    assert str(mixed / "k2-s1" / "train.h5") in err and str(mixed / "k2-s1" / "val.h5") in err
    assert "do not belong together: dataset.options.max_per_class is None in the first, 100 in the second" in err
    assert "\n" not in err and not (tmp_path / "results").exists()


def test_a_text_file_of_another_build_is_refused(two_builds, image_root: Path, tmp_path: Path) -> None:
    a, b = two_builds
    mixed = copy_cache(a, tmp_path)
    shutil.copy(b / "text.h5", mixed / "text.h5")
    with pytest.raises(ClipCacheError, match=r"train\.h5' and '.*text\.h5' do not belong together: dataset\.options"):
        train_from_params(params(image_root, mixed, tmp_path), [], "zero_shot", {})


def test_a_test_file_of_another_build_is_refused_at_evaluation(two_builds, image_root: Path, tmp_path: Path) -> None:
    a, b = two_builds
    mixed = copy_cache(a, tmp_path)
    path = params(image_root, mixed, tmp_path)
    result = train_from_params(path, [], "tip_adapter", {})
    assert evaluate_from_params(path, [], "tip_adapter")["metrics"]["n_test"] > 0  # A's own test file is accepted
    shutil.copy(b / "test.h5", mixed / "test.h5")
    with pytest.raises(ClipCacheError, match=r"test\.h5' does not belong with the head in '.*head\.json': its dataset "
                                             r"differs") as info:
        evaluate_from_params(path, [], "tip_adapter")
    assert str(result.folder / "head.json") in str(info.value)


def test_edited_provenance_is_refused_on_open_and_named_by_inspect(two_builds, tmp_path: Path, capsys) -> None:
    a, _ = two_builds
    copy = copy_cache(a, tmp_path)
    with h5py.File(copy / "text.h5", "r+") as handle:
        provenance = json.loads(handle.attrs[ATTR_PROVENANCE])
        provenance["dataset"]["classnames"][0] = "renamed_thing"
        handle.attrs[ATTR_PROVENANCE] = json.dumps(provenance, sort_keys=True)
    with pytest.raises(ClipCacheError, match=r"text\.h5': its provenance does not match the fingerprint"):
        FeatureSplit(copy / "text.h5")
    assert main(["inspect", str(copy)]) == 1
    assert "text.h5: not healthy (its provenance does not match its fingerprint" in capsys.readouterr().out


def test_a_changed_image_rebuilds_only_the_files_that_hold_it(image_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "images"
    shutil.copytree(image_root, root)
    first = encode(root, tmp_path / "cache")
    test = FeatureSplit(first.folder / "test.h5")
    before = test.read("global")  # [N, D]
    changed = root / test.image_ids[0]
    make_image(changed, 2, seed=77)  # new bytes under the same name
    again = encode(root, tmp_path / "cache")
    assert again.files[str(test.path)] == "written"
    assert {p: s for p, s in again.files.items() if p != str(test.path)} == \
        dict.fromkeys([p for p in again.files if p != str(test.path)], "up to date")
    after = FeatureSplit(test.path).read("global")
    assert not torch.allclose(torch.from_numpy(after[0]), torch.from_numpy(before[0]))
    torch.testing.assert_close(torch.from_numpy(after[1:]), torch.from_numpy(before[1:]))
    index = json.loads((first.folder.parent / "image-hashes.json").read_text())
    held = {i for name in ("test.h5", "k2-s1/train.h5", "k2-s1/val.h5")
            for i in FeatureSplit(first.folder / name).image_ids}
    assert set(index) == held and len(index[test.image_ids[0]][2]) == 64, "every encoded image, and only those, hashed"
    assert encode(root, tmp_path / "cache").files[str(test.path)] == "up to date"


def test_two_model_configs_of_one_file_name_are_two_models(image_root: Path, tmp_path: Path) -> None:
    config = json.loads(Path(TINY["resnet"]).read_text())
    wide = {**config, "embed_dim": 48}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "tiny.json").write_text(json.dumps(config))
    (tmp_path / "two" / "tiny.json").write_text(json.dumps(wide))
    first = encode(image_root, tmp_path / "cache", str(tmp_path / "one" / "tiny.json"))
    stamp = (first.folder / "test.h5").stat().st_mtime_ns
    second = encode(image_root, tmp_path / "cache", str(tmp_path / "two" / "tiny.json"))
    assert first.folder != second.folder and first.folder.name.startswith("tiny-")
    assert (first.folder / "test.h5").stat().st_mtime_ns == stamp, "the first model's cache is left alone"
    assert FeatureSplit(first.folder / "test.h5").read("global").shape[1] == 32
    assert FeatureSplit(second.folder / "test.h5").read("global").shape[1] == 48
    # in one process, each config still builds its own model (open_clip keys configs by file stem)
    assert load_encoder(str(tmp_path / "one" / "tiny.json"), "none", torch.device("cpu")).provenance["embed_dim"] == 32
    moved = tmp_path / "moved.json"
    shutil.copy(tmp_path / "one" / "tiny.json", moved)  # the same content elsewhere, under another name
    assert encode(image_root, tmp_path / "cache", str(moved)).folder.name.startswith("moved-")


def test_a_moved_checkpoint_is_the_same_model_and_a_missing_one_is_named(image_root: Path, tmp_path: Path,
                                                                       capsys) -> None:
    torch.manual_seed(5)
    import open_clip

    from pipeline.backbone.model import resolve_architecture

    model = open_clip.create_model(resolve_architecture(TINY["vit"])[0], pretrained=None)
    first = tmp_path / "weights" / "a.pt"
    first.parent.mkdir()
    torch.save(model.state_dict(), first)
    cache = tmp_path / "cache"
    section = encode_section(image_root, "vit", cache, **{**LEAN, "features__late_tokens": 1,
                                                          "model__pretrained": str(first)})
    path = write_params(tmp_path / "params.yaml", section, RUNTIME, train={"head": "coop", "shots": 2, "seed": 1},
                        heads={"coop": {"epochs": 1}}, evaluate={"results_dir": str(tmp_path / "results")})
    assert main(["encode", "--params", str(path)]) == 0
    assert main(["train", "--params", str(path)]) == 0
    second = tmp_path / "elsewhere.pt"
    first.rename(second)
    path.write_text(path.read_text().replace(str(first), str(second)))
    report = run_encode(encode_params(section | {"model": {"name": TINY["vit"], "pretrained": str(second)}}),
                        runtime_params(RUNTIME))
    assert set(report.files.values()) == {"up to date"}, "moving the checkpoint re-encodes nothing"
    assert main(["evaluate", "--params", str(path)]) == 0, "the fitted coop head finds its frozen model by sha256"
    capsys.readouterr()
    # a run that still names the old path: its sha is not found and the line names the sha and the last known path
    from pipeline.backbone.frozen import build_checked
    from pipeline.heads.io import load_head

    _, meta = load_head(next((tmp_path / "results").rglob("k2-s1")))
    source = meta["encoder"]
    assert source["paths"]["checkpoint"] == str(first) and source["pretrained"].startswith("file-")
    second.unlink()
    with pytest.raises(ClipCacheError, match=rf"checkpoint with sha256 {source['checkpoint_sha256']} is not found "
                                             rf"\(last known at '{first}'\)"):
        build_checked(source, torch.device("cpu"))

"""Each data-set layout, built in miniature on disk, reads into the right splits, labels and class names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.data import create_dataset, list_datasets
from pipeline.errors import ClipCacheError
from tests.helpers import make_folder, make_image, make_imagenet

COOP_SPLIT_FILES = {
    "caltech101": ("101_ObjectCategories", "split_zhou_Caltech101.json"),
    "oxford_pets": ("images", "split_zhou_OxfordPets.json"),
    "stanford_cars": (".", "split_zhou_StanfordCars.json"),
    "oxford_flowers": ("jpg", "split_zhou_OxfordFlowers.json"),
    "food101": ("images", "split_zhou_Food101.json"),
    "sun397": ("SUN397", "split_zhou_SUN397.json"),
    "dtd": ("images", "split_zhou_DescribableTextures.json"),
    "eurosat": ("2750", "split_zhou_EuroSAT.json"),
    "ucf101": ("UCF-101-midframes", "split_zhou_UCF101.json"),
}


def test_all_eleven_benchmarks_and_generic_layouts_are_registered() -> None:
    expected = set(COOP_SPLIT_FILES) | {"imagenet", "fgvc_aircraft", "image_folder", "manifest", "textile"}
    assert expected <= set(list_datasets())


def write_split_zhou(folder: Path, image_dir: str, split_file: str, classes: list[str]) -> None:
    """A CoOp split file over generated images: 3 train, 1 val, 2 test per class."""
    split: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, name in enumerate(classes):
        for i, part in enumerate(["train"] * 3 + ["val"] + ["test"] * 2):
            rel = f"{name}/{name}_{i}.jpg"
            make_image(folder / image_dir / rel, label, seed=i)
            split[part].append([rel, label, name])
    (folder / split_file).write_text(json.dumps(split))


@pytest.mark.parametrize("name", sorted(COOP_SPLIT_FILES))
def test_split_zhou_layouts(tmp_path: Path, name: str) -> None:
    image_dir, split_file = COOP_SPLIT_FILES[name]
    classes = ["AnnualCrop", "Forest"] if name == "eurosat" else ["abyssinian", "great_pyrenees"]
    folder = tmp_path / "DATA" / {"caltech101": "caltech-101", "food101": "food-101"}.get(name, name)
    write_split_zhou(folder, image_dir, split_file, classes)
    dataset = create_dataset(name, tmp_path / "DATA", {})  # CoOp's $DATA works as well as the folder itself
    assert [len(dataset.splits[s]) for s in ("train", "val", "test")] == [6, 2, 4]
    assert all(item.path.is_file() for items in dataset.splits.values() for item in items)
    expected = ("Annual Crop Land", "Forest") if name == "eurosat" else ("abyssinian", "great pyrenees")
    assert dataset.classnames == expected
    assert "{}" in dataset.coop_template
    assert create_dataset(name, folder, {}).file_list_hash() == dataset.file_list_hash()


def test_imagenet_layout_has_no_val_and_tests_on_its_val_folder(tmp_path: Path) -> None:
    make_imagenet(tmp_path, ["tench", "goldfish fish"], 4)
    dataset = create_dataset("imagenet", tmp_path, {})
    assert dataset.classnames == ("tench", "goldfish fish")
    assert (len(dataset.splits["train"]), len(dataset.splits["val"]), len(dataset.splits["test"])) == (8, 0, 2)


def test_imagenet_keeps_the_class_folders_present_and_names_a_flat_val_folder(tmp_path: Path) -> None:
    """CoOp's read_data: the classes are the sorted wnid folders of images/train; a classnames.txt line without its
    folder is left out (not an empty class); a flat images/val (the official download) is named in one line."""
    make_imagenet(tmp_path, ["tench", "goldfish", "shark"], 2)
    shutil.rmtree(tmp_path / "images" / "train" / "n00000001")
    shutil.rmtree(tmp_path / "images" / "val" / "n00000001")
    dataset = create_dataset("imagenet", tmp_path, {})
    assert dataset.classnames == ("tench", "shark")
    assert [item.label for item in dataset.splits["train"]] == [0, 0, 1, 1]
    assert [item.path.parent.name for item in dataset.splits["test"]] == ["n00000000", "n00000002"]
    (tmp_path / "images" / "train" / "n09999999").mkdir()
    with pytest.raises(ClipCacheError, match=r"folder images/train/n09999999 has no line in .*classnames\.txt"):
        create_dataset("imagenet", tmp_path, {})
    (tmp_path / "images" / "train" / "n09999999").rmdir()
    make_image(tmp_path / "images" / "val" / "ILSVRC2012_val_00000001.JPEG", 0, 1)
    with pytest.raises(ClipCacheError, match=r"holds 1 image file\(s\) directly; CoOp's layout needs "
                                             r"images/val/<wnid>/<image>"):
        create_dataset("imagenet", tmp_path, {})


def test_fgvc_aircraft_layout(tmp_path: Path) -> None:
    (tmp_path / "variants.txt").write_text("707-320\nA300B4\n")
    for split, rows in {"train": ["1 707-320", "2 A300B4"], "val": ["3 707-320"], "test": ["4 A300B4"]}.items():
        (tmp_path / f"images_variant_{split}.txt").write_text("\n".join(rows) + "\n")
        for row in rows:
            make_image(tmp_path / "images" / f"{row.split()[0]}.jpg", 0, 1)
    dataset = create_dataset("fgvc_aircraft", tmp_path, {})
    assert [i.label for i in dataset.splits["train"]] == [0, 1] and dataset.classnames == ("707-320", "A300B4")


def test_fgvc_unknown_variant_is_named(tmp_path: Path) -> None:
    (tmp_path / "variants.txt").write_text("707-320\n")
    for split in ("train", "val", "test"):
        (tmp_path / f"images_variant_{split}.txt").write_text("1 Concorde\n")
    with pytest.raises(ClipCacheError, match="Concorde"):
        create_dataset("fgvc_aircraft", tmp_path, {})


def test_image_folder_partitions_per_class_with_a_fixed_seed(tmp_path: Path) -> None:
    make_folder(tmp_path, ["a_b", "c"], 10, ".png")
    dataset = create_dataset("image_folder", tmp_path, {"val_fraction": 0.2, "test_fraction": 0.3})
    counts = {s: [sum(i.label == c for i in dataset.splits[s]) for c in (0, 1)] for s in ("train", "val", "test")}
    assert counts == {"train": [5, 5], "val": [2, 2], "test": [3, 3]}
    assert dataset.classnames == ("a b", "c")
    again = create_dataset("image_folder", tmp_path, {"val_fraction": 0.2, "test_fraction": 0.3})
    assert again.splits == dataset.splits
    other = create_dataset("image_folder", tmp_path, {"val_fraction": 0.2, "test_fraction": 0.3, "split_seed": 5})
    assert other.splits["test"] != dataset.splits["test"]


def test_image_folder_with_its_own_split_folders(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        make_folder(tmp_path / split, ["x", "y"], n)
    dataset = create_dataset("image_folder", tmp_path, {})
    assert [len(dataset.splits[s]) for s in ("train", "val", "test")] == [6, 2, 4]


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_manifest_layouts(tmp_path: Path, kind: str) -> None:
    rows = []
    for i in range(8):
        make_image(tmp_path / "img" / f"{i}.jpg", i % 2, i)
        rows.append({"path": f"img/{i}.jpg", "label": ["dog", "cat"][i % 2],
                     "split": ["train", "train", "val", "test"][i // 2]})
    if kind == "csv":
        (tmp_path / "manifest.csv").write_text("path,label,split\n"
                                               + "".join(f"{r['path']},{r['label']},{r['split']}\n" for r in rows))
    else:
        (tmp_path / "manifest.json").write_text(json.dumps(rows))
    dataset = create_dataset("manifest", tmp_path, {})
    assert dataset.classnames == ("cat", "dog")
    assert [len(dataset.splits[s]) for s in ("train", "val", "test")] == [4, 2, 2]


def test_manifest_row_without_label_is_named(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,label\na.jpg,cat\nb.jpg,\n")
    with pytest.raises(ClipCacheError, match="row 2"):
        create_dataset("manifest", tmp_path, {})


def test_textile_default_is_the_packaged_images() -> None:
    dataset = create_dataset("textile", None, {"max_per_class": 20})
    assert len(dataset.classnames) == 3 and "defect" in " ".join(dataset.classnames)
    assert sum(len(v) for v in dataset.splits.values()) == 60
    assert all(item.path.suffix == ".jpg" and item.path.is_file() for item in dataset.splits["test"])


@pytest.mark.parametrize(("name", "root", "options", "culprit"), [
    ("no_such_set", None, {}, "no_such_set"),
    ("image_folder", "/does/not/exist", {}, "/does/not/exist"),
    ("oxford_pets", "{tmp}", {}, "split_zhou_OxfordPets.json"),
    ("image_folder", "{tmp}", {"test_fractoin": 0.5}, "test_fractoin"),
])
def test_bad_data_set_requests_name_the_culprit(tmp_path: Path, name, root, options, culprit) -> None:
    make_folder(tmp_path, ["a"], 2)
    with pytest.raises(ClipCacheError, match=culprit):
        create_dataset(name, None if root is None else root.format(tmp=tmp_path), options)


@pytest.mark.parametrize("outside", ["../outside.jpg", "{abs}", "link/inside.jpg"])
def test_manifest_paths_stay_inside_the_data_root(tmp_path: Path, outside: str) -> None:
    """'..', an absolute path, or a symbolic link out of the root: refused by row unless the user opts in."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    make_image(root / "a.jpg", 0, seed=1)
    make_image(tmp_path / "outside.jpg", 1, seed=2)
    make_image(elsewhere / "inside.jpg", 1, seed=3)
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    target = outside.format(abs=tmp_path / "outside.jpg")
    (root / "manifest.csv").write_text(f"path,label,split\na.jpg,cat,train\n{target},dog,test\n")
    with pytest.raises(ClipCacheError, match=r"manifest .*manifest\.csv' row 2: image path .* leaves the data root"):
        create_dataset("manifest", root, {})
    allowed = create_dataset("manifest", root, {"allow_outside_root": True})
    assert [item.path.is_file() for item in allowed.splits["test"]] == [True]


def test_coop_split_paths_stay_inside_the_data_set(tmp_path: Path) -> None:
    folder = tmp_path / "dtd"
    write_split_zhou(folder, "images", "split_zhou_DescribableTextures.json", ["banded", "woven"])
    split = json.loads((folder / "split_zhou_DescribableTextures.json").read_text())
    split["test"][0][0] = "../../../../etc/passwd"
    (folder / "split_zhou_DescribableTextures.json").write_text(json.dumps(split))
    with pytest.raises(ClipCacheError, match=r"split_zhou_DescribableTextures\.json': image path "
                                             r"'\.\./\.\./\.\./\.\./etc/passwd' leaves the data root"):
        create_dataset("dtd", folder, {})
    assert len(create_dataset("dtd", folder, {"allow_outside_root": True}).splits["test"]) == 4


@pytest.mark.parametrize("kind", ["image_folder", "manifest"])
def test_class_names_and_templates_come_from_files(tmp_path: Path, kind: str) -> None:
    from pipeline.data.templates import templates_for

    root = make_folder(tmp_path / "data", ["cat_a", "dog_b"], 6)
    if kind == "manifest":
        rows = [f"{p.relative_to(root)},{p.parent.name}" for p in sorted(root.rglob("*.jpg"))]
        (root / "manifest.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (root / "names.txt").write_text("# one per class, in folder order\na tabby cat\n\na spotted dog\n")
    (root / "prompts.txt").write_text("a photo of {c}.\nart of {}.\n")
    dataset = create_dataset(kind, str(root),
                             {"classnames_file": "names.txt", "templates_file": str(root / "prompts.txt")})
    assert dataset.classnames == ("a tabby cat", "a spotted dog")
    assert templates_for("coop", dataset) == ["a photo of {}.", "art of {}."]
    assert dataset.options["classnames_file"] == "names.txt"
    plain = create_dataset(kind, str(root), {})
    assert plain.file_list_hash() != dataset.file_list_hash(), "other class names: another data set identity"
    assert templates_for("coop", plain) == [plain.coop_template]
    (root / "names.txt").write_text("only one\n")
    with pytest.raises(ClipCacheError, match=r"names\.txt' has 1 names for the 2 classes"):
        create_dataset(kind, str(root), {"classnames_file": "names.txt"})
    (root / "prompts.txt").write_text("a photo of a thing.\n")
    with pytest.raises(ClipCacheError, match=r"prompts\.txt': template 1 must hold the class name's place once"):
        create_dataset(kind, str(root), {"templates_file": "prompts.txt"})
    with pytest.raises(ClipCacheError, match=r"classnames_file '.*absent\.txt' cannot be read"):
        create_dataset(kind, str(root), {"classnames_file": "absent.txt"})


def test_a_data_set_takes_its_own_name_and_two_folders_of_one_layout_share_a_grid(tmp_path: Path) -> None:
    """`name` names the folders, `layout` reads the files: two image folders are two data sets, each under its name."""
    from pipeline.encode import run_encode
    from pipeline.grid import grid_pairs
    from pipeline.params import runtime_params
    from tests.helpers import encode_section

    roots = [make_folder(tmp_path / f"data{i}", ["cat_a", "dog_b"], 8 + 4 * i) for i in range(2)]
    encode = encode_section(roots[0], "resnet", tmp_path / "cache", views__count=0)
    del encode["dataset"], encode["model"]
    grid = {"datasets": [{"name": f"parts_{i}", "layout": "image_folder", "root": str(roots[i]),
                          "options": {"val_fraction": 0.25, "test_fraction": 0.25}} for i in range(2)],
            "models": [{"name": encode_section(roots[0], "resnet", tmp_path)["model"]["name"], "pretrained": "none"}]}
    pairs = grid_pairs({"grid": grid, "encode": encode})
    assert [p.dataset.name for p in pairs] == ["parts_0", "parts_1"]
    assert [p.dataset.registered for p in pairs] == ["image_folder", "image_folder"]
    (chosen,) = grid_pairs({"grid": grid, "encode": encode}, dataset="parts_1")
    run_encode(chosen, runtime_params({"workers": 0, "batch_size": 8}))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["parts_1"], "encoded under its own name only"
    test_files = list((tmp_path / "cache" / "parts_1").rglob("test.h5"))
    assert len(test_files) == 1
    from pipeline.store import FeatureSplit

    split = FeatureSplit(test_files[0])
    assert split.n == 6  # 12 images per class in parts_1: a quarter of each is test
    assert (split.provenance["dataset"]["name"], split.provenance["dataset"]["layout"]) == ("parts_1", "image_folder")
    with pytest.raises(ClipCacheError, match="unknown data set 'parts_1'"):
        run_encode(grid_pairs({"encode": {**encode, "dataset": {"name": "parts_1", "root": str(roots[1])},
                                          "model": grid["models"][0]}})[0], runtime_params({"workers": 0}))
    with pytest.raises(ClipCacheError, match=r"data set name '\.\./up' must be letters"):
        grid_pairs({"grid": {**grid, "datasets": [{**grid["datasets"][0], "name": "../up"}]}, "encode": encode})

"""The container layouts (webdataset tar shards, parquet / arrow files): samples, labels, class names, splits,
identity, and bad members named by container and key."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.data import create_dataset
from pipeline.data.content import ContentIndex, items_sha256
from pipeline.data.decode import ImageReader
from pipeline.data.members import read_bytes
from pipeline.data.registry import ImageItem
from pipeline.encode.buffer import relative
from pipeline.errors import ClipCacheError
from tests.data.containers import (
    folder_images,
    make_parquet,
    make_saved_dataset,
    make_shards,
    sample_key,
    split_copy,
)
from tests.helpers import make_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 6 JPEGs."""
    return make_folder(tmp_path_factory.mktemp("img"), ["red_thing", "green_thing", "blue_thing"], 6)


def add_tar_member(tar: Path, name: str, data: bytes) -> None:
    with tarfile.open(tar, "a") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def write_tar(tar: Path, members: list[tuple[str, bytes]]) -> Path:
    tar.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return tar


def test_folder_identity_is_unchanged_by_the_member_field(tmp_path: Path) -> None:
    """A folder data set's file-list hash, content hashes and image ids are those computed before containers came
    (values from the code at 3e0882a, on the files this test writes)."""
    root = tmp_path / "img"
    for c, name in enumerate(["ants", "bees", "cats"]):
        for i in range(5):
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / f"img_{i}.jpg").write_bytes(f"image {c} {i}".encode())
    dataset = create_dataset("image_folder", root, {"split_seed": 3})
    assert dataset.file_list_hash() == "bf09363be6e53ad6db60466cc04f53cd64f1c6ea8620d9f16c4659cf51c76181"
    index = ContentIndex(tmp_path / "hashes.json", dataset.root)
    assert {s: items_sha256(v, index) for s, v in dataset.splits.items()} == {
        "train": "9645c236621fd2273d5808cff2bc388cd6dc2926e895d1ca5f22983f383392c9",
        "val": "fa7c91f3457fd4e3861de7c804be9e78b30b9e1b0c120b64e9082f6d220ecd83",
        "test": "6ba483079bbc1074bd6f684bf08c482558a1321b9e195b9f8d3fa21aa8874d29"}
    assert [relative(str(i.path), str(dataset.root)) for i in dataset.splits["test"]] == [
        "ants/img_2.jpg", "ants/img_4.jpg", "bees/img_0.jpg", "bees/img_3.jpg", "cats/img_0.jpg", "cats/img_1.jpg"]


@pytest.mark.parametrize("kind", ["webdataset", "parquet"])
def test_a_flat_container_root_lists_the_folders_images_in_its_partition(folder: Path, tmp_path: Path,
                                                                         kind: str) -> None:
    """Shards / parquet files made from a folder list the same bytes, labels and class names per split as the folder
    (the same seeded partition)."""
    made = make_shards(tmp_path, folder, 7) if kind == "webdataset" else make_parquet(tmp_path, folder, 10)
    assert len(made) == 3 if kind == "webdataset" else len(made) == 2
    want, got = create_dataset("image_folder", folder), create_dataset(kind, tmp_path)
    assert got.classnames == want.classnames == ("blue thing", "green thing", "red thing")
    for split in ("train", "val", "test"):
        assert [i.label for i in got.splits[split]] == [i.label for i in want.splits[split]]
        assert [read_bytes(i) for i in got.splits[split]] == [i.path.read_bytes() for i in want.splits[split]]
        assert all(i.member and i.path.parent == tmp_path for i in got.splits[split])
    first = got.splits["test"][0]
    expected = f"{sample_key(want.splits['test'][0].path)}.jpg" if kind == "webdataset" else "000000002.jpg"
    assert first.member == expected and first.name(tmp_path).endswith(f"#{expected}")


def test_webdataset_split_folders_classnames_and_templates(folder: Path, tmp_path: Path) -> None:
    """CLIP_benchmark's layout: train/ and test/ shards, classnames.txt and the templates file at the root; webp."""
    make_shards(tmp_path / "train", folder, 100, field="webp")
    make_shards(tmp_path / "test", folder, 5, field="webp")
    (tmp_path / "classnames.txt").write_text("blue\ngreen\nred\n")
    (tmp_path / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\nart of the {c}.\n")
    dataset = create_dataset("webdataset", tmp_path)
    assert dataset.classnames == ("blue", "green", "red") and dataset.templates == ("a photo of a {}.",
                                                                                  "art of the {}.")
    assert [len(dataset.splits[s]) for s in ("train", "val", "test")] == [18, 0, 18]
    assert [i.path.name for i in dataset.splits["test"][:6]] == ["shards-000000.tar"] * 5 + ["shards-000001.tar"]
    assert dataset.splits["train"][0].member.endswith(".webp")
    brace = create_dataset("webdataset", tmp_path, {"files": {"train": "train/shards-000000.tar",
                                                              "test": "test/shards-{000000..000001}.tar"}})
    assert [len(brace.splits[s]) for s in ("train", "test")] == [18, 10]


def test_webdataset_groups_members_by_webdatasets_keys(tmp_path: Path) -> None:
    """The key ends at the base name's first dot (a.b.jpg is key 'a', field 'b.jpg'); extensions are compared lower
    case; __key__-style metadata members are skipped; a later run of the same key is a new sample."""
    jpg = make_folder(tmp_path / "f", ["x"], 1).joinpath("x", "img_000.jpg").read_bytes()
    write_tar(tmp_path / "s" / "a.tar", [("__meta__", b"x"), ("dir/s1.JPG", jpg), ("dir/s1.cls", b"1"),
                                         ("s2.seg.png", b"not read"), ("s2.jpg", jpg), ("s2.cls", b" 0\n")])
    (tmp_path / "s" / "classnames.txt").write_text("zero\none\n")
    dataset = create_dataset("webdataset", tmp_path / "s", {"files": {"train": "a.tar", "test": "a.tar"}})
    items = dataset.splits["test"]
    assert [(i.member, i.label) for i in items] == [("dir/s1.JPG", 1), ("s2.jpg", 0)]
    assert read_bytes(items[0]) == jpg
    for name, data in (("s3.jpg", jpg), ("s3.cls", b"0"), ("s2.cls", b"1")):  # s2 again after s3: a new sample
        add_tar_member(tmp_path / "s" / "a.tar", name, data)
    with pytest.raises(ClipCacheError, match=r"a\.tar#s2: the sample lacks an image \(jpg, jpeg, png, webp\); "
                                             r"its members: cls$"):
        create_dataset("webdataset", tmp_path / "s", {"files": {"train": "a.tar", "test": "a.tar"}})


@pytest.mark.parametrize(("members", "culprit"), [
    ([("k1.jpg", b"x"), ("k1.cls", b"7")], r"a\.tar#k1\.jpg: label 7 is outside the 2 class names"),
    ([("k1.jpg", b"x"), ("k1.cls", b"one")], r"a\.tar#k1\.cls: label 'one' of sample 'k1' is not a whole number"),
    ([("k1.jpg", b"x"), ("k1.txt", b"a cat")], r"a\.tar#k1: the sample lacks a 'cls' member; its members: jpg, txt"),
    ([("k1.jpg", b"x"), ("k1.cls", b"0"), ("k1.jpg", b"y")], r"a\.tar.*duplicate file name"),
    ([("k1.jpg", b"x"), ("k1.cls", b"0"), ("k2.jpg", b"x"), ("k2.cls", b"0"), ("k1.jpg", b"x"), ("k1.cls", b"0")],
     r"a\.tar#k1\.jpg: two images of the file have this name"),
])
def test_webdataset_bad_samples_are_one_line_naming_shard_and_key(tmp_path: Path, members: list,
                                                                  culprit: str) -> None:
    write_tar(tmp_path / "a.tar", members)
    (tmp_path / "classnames.txt").write_text("zero\none\n")
    with pytest.raises(ClipCacheError, match=culprit) as caught:
        create_dataset("webdataset", tmp_path)
    assert "\n" not in str(caught.value)


def test_unreadable_containers_and_missing_names_are_named(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.tar").write_bytes(b"not a tar at all" * 100)
    (tmp_path / "w" / "classnames.txt").write_text("zero\n")
    with pytest.raises(ClipCacheError, match=r"a\.tar' is not a readable uncompressed tar"):
        create_dataset("webdataset", tmp_path / "w")
    write_tar(tmp_path / "n" / "a.tar", [("k.jpg", b"x"), ("k.cls", b"0")])
    with pytest.raises(ClipCacheError, match=r"has no class names: put classnames\.txt"):
        create_dataset("webdataset", tmp_path / "n")
    (tmp_path / "p").mkdir()
    pq.write_table(pa.table({"key": ["1"], "jpg": [b"x"], "caption": ["c"]}), tmp_path / "p" / "a.parquet")
    (tmp_path / "p" / "classnames.txt").write_text("zero\n")
    with pytest.raises(ClipCacheError, match=r"a\.parquet' has no label column one of cls, label; its columns: "
                                             r"key, jpg, caption"):
        create_dataset("parquet", tmp_path / "p")
    with pytest.raises(ClipCacheError, match="has no image column 'png'"):
        create_dataset("parquet", tmp_path / "p", {"image_column": "png", "label_column": "caption"})
    pq.write_table(pa.table({"key": ["1", "1"], "jpg": [b"x", b"y"], "cls": [0, 0]}), tmp_path / "p" / "a.parquet")
    with pytest.raises(ClipCacheError, match=r"a\.parquet#1\.jpg: two images of the file have this name"):
        create_dataset("parquet", tmp_path / "p")
    (tmp_path / "p" / "a.parquet").write_bytes(b"PAR1 damaged")
    with pytest.raises(ClipCacheError, match=r"a\.parquet' cannot be read as parquet"):
        create_dataset("parquet", tmp_path / "p")


def test_saved_dataset_reads_splits_features_and_class_label_names(folder: Path, tmp_path: Path) -> None:
    make_saved_dataset(tmp_path, split_copy(tmp_path / "split", folder))
    dataset = create_dataset("parquet", tmp_path)
    assert dataset.classnames == ("blue thing", "green thing", "red thing")
    assert [len(dataset.splits[s]) for s in ("train", "val", "test")] == [12, 0, 6]
    item = dataset.splits["test"][1]
    assert (item.name(tmp_path), item.label) == ("test/data-00000-of-00001.arrow#1.image", 0)
    assert read_bytes(item) == (folder / "blue_thing" / "img_003.jpg").read_bytes()
    one = create_dataset("parquet", tmp_path / "train", {"val_fraction": 0.0})  # one Dataset folder: partitioned
    assert sum(len(v) for v in one.splits.values()) == 12 and one.classnames == dataset.classnames


def test_file_list_hash_follows_member_labels_and_content_hash_follows_member_bytes(folder: Path,
                                                                                   tmp_path: Path) -> None:
    shards = make_shards(tmp_path, folder, 9)
    before = create_dataset("webdataset", tmp_path)
    index = ContentIndex(tmp_path / "hashes.json", before.root)
    hashes = {s: items_sha256(v, index) for s, v in before.splits.items()}
    index.save()
    assert any("#" in key for key in index.entries) and len(index.entries) == 18
    os.utime(shards[1], ns=(1, 1))  # touched, bytes unchanged: hashed again to the same values
    again = ContentIndex(tmp_path / "hashes.json", before.root)
    assert {s: items_sha256(v, again) for s, v in before.splits.items()} == hashes
    # shard 0 rewritten with one image's bytes changed (the labels kept): only the splits holding it change
    first = before.splits["test"][0]
    changed = first.path if first.path == shards[0] else shards[0]
    victim = next(i for s in before.splits.values() for i in s if i.path == changed)
    with tarfile.open(changed) as archive:
        members = [(m.name, archive.extractfile(m).read()) for m in archive.getmembers()]
    write_tar(changed, [(n, d + b"\0" if n == victim.member else d) for n, d in members])
    after = create_dataset("webdataset", tmp_path)
    assert after.file_list_hash() == before.file_list_hash()
    third = ContentIndex(tmp_path / "hashes.json", before.root)
    new = {s: items_sha256(v, third) for s, v in after.splits.items()}
    holding = {s for s, v in before.splits.items() if victim in v}
    assert {s for s in hashes if new[s] != hashes[s]} == holding
    write_tar(changed, [(n, str((int(d) + 1) % 3).encode() if n.endswith(".cls") else d) for n, d in members])
    assert create_dataset("webdataset", tmp_path).file_list_hash() != before.file_list_hash()
    renamed = victim.member.rpartition(".")[0]  # one sample's key renamed, its labels and bytes kept
    write_tar(changed, [(n.replace(renamed, "renamed_key", 1), d) for n, d in members])
    moved = create_dataset("webdataset", tmp_path)
    assert sorted(i.label for s in moved.splits.values() for i in s) == sorted(
        i.label for s in before.splits.values() for i in s)
    assert moved.file_list_hash() != before.file_list_hash()


def reader_of(items: list[ImageItem]) -> ImageReader:
    def preprocess(image: object) -> object:
        import torch

        return torch.zeros(3, 4, 4)

    return ImageReader(items, np.arange(len(items)), preprocess, None, 4, (0, 0, 0), (1, 1, 1))


def test_a_damaged_member_is_named_by_container_and_key(folder: Path, tmp_path: Path) -> None:
    write_tar(tmp_path / "w" / "a.tar", [("k1.jpg", b"not a jpeg"), ("k1.cls", b"0")])
    pq.write_table(pa.table({"key": ["007"], "jpg": [b"not a jpeg"], "cls": [0]}), tmp_path / "a.parquet")
    items = [ImageItem(tmp_path / "w" / "a.tar", 0, "k1.jpg"), ImageItem(tmp_path / "w" / "a.tar", 0, "k9.jpg"),
             ImageItem(tmp_path / "a.parquet", 0, "007.jpg"), ImageItem(tmp_path / "a.parquet", 0, "008.jpg")]
    errors = [reader_of(items)[i]["error"] for i in range(4)]
    assert errors[0].startswith(f"{tmp_path}/w/a.tar#k1.jpg: UnidentifiedImageError")
    assert errors[1] == f"{tmp_path}/w/a.tar#k9.jpg: no such member in the shard"
    assert errors[2].startswith(f"{tmp_path}/a.parquet#007.jpg: UnidentifiedImageError")
    assert errors[3].startswith(f"{tmp_path}/a.parquet#008.jpg: KeyError")
    good = make_shards(tmp_path / "ok", folder, 50)[0]
    with tarfile.open(good) as archive:
        last = [m for m in archive.getmembers() if m.name.endswith(".jpg")][-1]
    with good.open("r+b") as handle:  # cut inside the last image
        handle.truncate(last.offset_data + 10)
    message, after = (reader_of([ImageItem(good, 0, name)])[0]["error"] for name in (last.name, "zz.jpg"))
    assert message.startswith(f"{good}#{last.name}: the shard ends inside the member (10 of ")
    assert after.startswith(f"{good}#zz.jpg: no such member in the shard (the shard is damaged before its end: ")


def test_decode_gpu_reads_the_members_bytes(folder: Path, tmp_path: Path) -> None:
    """`decode: gpu` workers read raw bytes (BytesReader): a member's are its file's, for tar and parquet alike."""
    from pipeline.encode.jpeg import BytesReader

    make_shards(tmp_path / "w", folder, 7)
    make_parquet(tmp_path / "p", folder, 10)
    files = create_dataset("image_folder", folder).splits["test"]
    for kind in ("webdataset", "parquet"):
        items = create_dataset(kind, tmp_path / ("w" if kind == "webdataset" else "p")).splits["test"]
        reader = BytesReader(reader_of(items))
        assert [bytes(reader[i]["data"].numpy()) for i in range(len(items))] == [f.path.read_bytes() for f in files]


def test_a_real_save_to_disk_folder_reads_as_the_format_exact_one(folder: Path, tmp_path: Path) -> None:
    """datasets' own save_to_disk (Image and ClassLabel features) gives the labels, bytes and class names of the
    folder tests/data/containers.py writes with pyarrow (run where the test extra installs datasets)."""
    datasets = pytest.importorskip("datasets")
    split = split_copy(tmp_path / "split", folder)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["blue thing", "green thing", "red thing"])})
    parts = {}
    for name in ("train", "test"):
        rows = folder_images(split / name)
        parts[name] = datasets.Dataset.from_dict({"image": [str(p) for p, _ in rows],
                                                  "label": [label for _, label in rows]}, features=features)
    datasets.DatasetDict(parts).save_to_disk(str(tmp_path / "real"))
    real = create_dataset("parquet", tmp_path / "real")
    mine = create_dataset("parquet", make_saved_dataset(tmp_path / "mine", split))
    assert real.classnames == mine.classnames and real.file_list_hash() == mine.file_list_hash()
    for name in ("train", "test"):
        assert [read_bytes(i) for i in real.splits[name]] == [read_bytes(i) for i in mine.splits[name]]


def test_parquet_labels_must_be_whole_numbers_and_classes(tmp_path: Path) -> None:
    (tmp_path / "classnames.txt").write_text("zero\none\n")
    for labels, culprit in (([0, 2], r"a\.parquet#2\.jpg: label 2 is outside the 2 class names"),
                            (["0", "1"], r"a\.parquet'\: label column 'cls' holds '0', not a whole number")):
        pq.write_table(pa.table({"key": ["1", "2"], "jpg": [b"x", b"y"], "cls": labels}), tmp_path / "a.parquet")
        with pytest.raises(ClipCacheError, match=culprit):
            create_dataset("parquet", tmp_path)

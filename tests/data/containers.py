"""Test data in container layouts, made from an image folder's own files (the same encoded bytes): webdataset tar
shards written by webdataset's ShardWriter (as img2dataset and CLIP_benchmark write them), parquet files with
img2dataset's columns, and a folder in the layout of Hugging Face datasets' `save_to_disk`.

The save_to_disk folder is written with pyarrow to the format datasets 2.x / 3.x writes (datasets
`arrow_dataset.Dataset.save_to_disk` and `arrow_writer.ArrowWriter`): `dataset_dict.json` {"splits": [...]}; per split
`data-00000-of-00001.arrow`, an arrow IPC *stream* whose schema metadata holds {"huggingface": {"info": {"features":
...}}}, `dataset_info.json` (features: Image -> {"_type": "Image"}, a struct column {bytes: binary, path: string};
ClassLabel -> {"names": [...], "_type": "ClassLabel"}, an int64 column) and `state.json` listing `_data_files`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from pipeline.data.folder import class_folders, list_images


def folder_images(folder: Path) -> list[tuple[Path, int]]:
    """(image file, label) of an image folder, in (label, path) order: the order image_folder lists them."""
    return [(path, label) for label, sub in enumerate(class_folders(folder)) for path in list_images(sub)]


def sample_key(path: Path) -> str:
    """A webdataset key for an image file (no dots: webdataset keys end at the first one)."""
    return f"{path.parent.name}_{path.stem}"


def write_classnames(root: Path, folder: Path) -> None:
    """classnames.txt at `root` with the folder's class names (as image_folder names them)."""
    root.mkdir(parents=True, exist_ok=True)
    names = [sub.name.replace("_", " ") for sub in class_folders(folder)]
    (root / "classnames.txt").write_text("".join(f"{n}\n" for n in names))


def make_shards(root: Path, folder: Path, per_shard: int, field: str = "jpg") -> list[Path]:
    """Webdataset shards `root/shards-%06d.tar` of the folder's images ({key}.jpg + {key}.cls), classnames.txt."""
    write_classnames(root, folder)
    with wds.ShardWriter(str(root / "shards-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
        for path, label in folder_images(folder):
            sink.write({"__key__": sample_key(path), field: path.read_bytes(), "cls": str(label).encode()})
    return sorted(root.glob("shards-*.tar"))


def make_parquet(root: Path, folder: Path, per_file: int, row_group: int = 4) -> list[Path]:
    """img2dataset-style parquet files `root/0000k.parquet` (key, jpg, cls, caption, status), small row groups."""
    write_classnames(root, folder)
    images = folder_images(folder)
    paths = []
    for number, start in enumerate(range(0, len(images), per_file)):
        chunk = images[start:start + per_file]
        table = pa.table({"key": [f"{start + i:09d}" for i in range(len(chunk))],
                          "jpg": pa.array([p.read_bytes() for p, _ in chunk], pa.binary()),
                          "cls": pa.array([label for _, label in chunk], pa.int64()),
                          "caption": [p.stem for p, _ in chunk], "status": ["success"] * len(chunk)})
        paths.append(root / f"{number:05d}.parquet")
        pq.write_table(table, paths[-1], row_group_size=row_group)
    return paths


def split_copy(root: Path, folder: Path, test_every: int = 3) -> Path:
    """An image folder with its own splits (root/{train,test}/<class>/) holding the folder's files: every
    `test_every`-th image of a class in test, the rest in train."""
    for path, _ in folder_images(folder):
        number = list_images(path.parent).index(path)
        target = root / ("test" if number % test_every == 0 else "train") / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return root


def make_saved_dataset(root: Path, split_folder: Path) -> Path:
    """A datasets DatasetDict save_to_disk folder of an image folder with train/ and test/ splits (the same images,
    labels and order per split); features {image: Image, label: ClassLabel(names)}."""
    names = [sub.name.replace("_", " ") for sub in class_folders(split_folder / "train")]
    features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
    for split in ("train", "test"):
        write_saved_split(root / split, folder_images(split_folder / split), features)
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    return root


def write_saved_split(folder: Path, rows: list[tuple[Path, int]], features: dict) -> None:
    """One save_to_disk split: data-00000-of-00001.arrow (IPC stream), dataset_info.json, state.json."""
    folder.mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("image", image_type), ("label", pa.int64())],
                       metadata={"huggingface": json.dumps({"info": {"features": features}})})
    table = pa.table({"image": pa.array([{"bytes": p.read_bytes(), "path": None} for p, _ in rows], image_type),
                      "label": pa.array([label for _, label in rows], pa.int64())}, schema=schema)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, schema) as out:
        out.write_table(table, max_chunksize=4)
    info = {"citation": "", "description": "", "features": features, "homepage": "", "license": ""}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    state = {"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_fingerprint": "0" * 16,
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": folder.name}
    (folder / "state.json").write_text(json.dumps(state))

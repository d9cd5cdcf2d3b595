"""What reading images in place from webdataset shards and parquet files costs, next to an image folder.

Makes N small JPEGs (224x224, as a data set's images after img2dataset's resize) in an image folder, the same bytes
as webdataset shards (webdataset's ShardWriter, 1000 samples a shard) and as img2dataset-style parquet files (1000
rows a file, row groups of 100), then times, each the median of 3 in a fresh process state:
- listing the data set (create_dataset: file walk vs tar headers vs key/label columns),
- hashing every image for the content index (first run) and checking it again (an unchanged data set),
- reading every image's bytes in order and in a random order (what few-shot draws do),
- decoding the first 1000 images to model input as encode's DataLoader workers do (pipeline.data.decode.ImageReader
  with open_clip's 224-pixel evaluation preprocess), in one process.
Usage: python benchmarks/container_layouts.py [N]   (prints one JSON line per layout)
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD, image_transform
from PIL import Image

from pipeline.data import create_dataset
from pipeline.data import members as members_module
from pipeline.data.content import ContentIndex, items_sha256
from pipeline.data.decode import ImageReader
from pipeline.data.members import read_bytes
from tests.data.containers import make_parquet, make_shards


def make_images(root: Path, n: int, classes: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        label = i % classes
        path = root / f"class_{label:02d}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)  # [224, 224, 3]
        Image.fromarray(pixels).save(path, quality=90)
    return root


def clear_caches() -> None:
    for store in (members_module._TAR_INDEX, members_module._ARROW, members_module._ROW_KEYS,
                  members_module._ROW_GROUPS, members_module._PARQUET_LAYOUT):
        store.clear()


def median_seconds(action, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        clear_caches()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def decode_times(readers: dict[str, ImageReader], rounds: int = 5) -> dict[str, float]:
    """Median seconds to decode every image of each reader, the layouts taken in turn each round (a shared machine's
    load then falls on all of them alike)."""
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(rounds):
        for name, reader in readers.items():
            clear_caches()
            started = time.perf_counter()
            for i in range(len(reader)):
                reader[i]
            times[name].append(time.perf_counter() - started)
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


def decoder(layout: str, root: Path, n: int = 1000) -> ImageReader:
    """encode's CPU decoding of the first n images (open_clip's 224-pixel evaluation preprocess)."""
    items = [i for split in create_dataset(layout, root).splits.values() for i in split][:n]
    return ImageReader(items, np.arange(len(items)), image_transform(224, is_train=False), None, 224,
                       OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)


def measure(layout: str, root: Path, work: Path) -> dict:
    dataset = create_dataset(layout, root)
    items = [i for split in dataset.splits.values() for i in split]
    shuffled = random.Random(0).sample(items, len(items))
    out = {"layout": layout, "images": len(items), "list_s": median_seconds(lambda: create_dataset(layout, root))}
    hashes = work / f"{layout}-hashes.json"

    def first_hash() -> None:
        hashes.unlink(missing_ok=True)
        items_sha256(items, ContentIndex(hashes, dataset.root))

    out["hash_first_s"] = median_seconds(first_hash)
    index = ContentIndex(hashes, dataset.root)
    items_sha256(items, index)
    index.save()
    out["hash_again_s"] = median_seconds(lambda: items_sha256(items, ContentIndex(hashes, dataset.root)))
    out["read_in_order_s"] = median_seconds(lambda: [read_bytes(i) for i in items])
    out["read_random_s"] = median_seconds(lambda: [read_bytes(i) for i in shuffled])
    out["bytes"] = sum(len(read_bytes(i)) for i in items)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = make_images(work / "folder", n)
        make_shards(work / "shards", folder, 1000)
        make_parquet(work / "rows", folder, 1000, row_group=100)
        (work / "folder" / "classnames.txt").unlink(missing_ok=True)
        layouts = {"image_folder": folder, "webdataset": work / "shards", "parquet": work / "rows"}
        rows = {layout: measure(layout, root, work) for layout, root in layouts.items()}
        readers = {layout: decoder(layout, root) for layout, root in layouts.items()}
        for reader in readers.values():  # warm-up: torch's and PIL's first calls
            [reader[i] for i in range(100)]
        for layout, seconds in decode_times(readers).items():
            print(json.dumps({**rows[layout], "decode_1000_s": seconds}))

if __name__ == "__main__":
    main()

"""Features out, for tools that do not read our HDF5 files: one split file's row features with their labels, image
ids and provenance, as one `.npz`, or in clip-retrieval's embedding layout (`img_emb/img_emb_0.npy`, the
L2-normalised global features in float32, and `metadata/metadata_0.parquet`: image_path, label, classname,
item_index), with `provenance.json` beside them. The file is opened and checked as every reader does; the outputs
are written under temporary names and renamed into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ClipCacheError
from pipeline.store.provenance import fingerprint
from pipeline.store.reader import FeatureSplit

FORMATS = ("npz", "embeddings")  # one .npz; clip-retrieval's img_emb/ + metadata/ folders


def export_split(path: str | Path, out: str | Path, fmt: str = "npz",
                 features: tuple[str, ...] = ("global",)) -> list[Path]:
    """Write the split file `path`'s `features` (row datasets: global, pooled, spatial, late_tokens...) to `out`;
    the paths written."""
    if fmt not in FORMATS:
        raise ClipCacheError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    split = FeatureSplit(path)
    for name in features:
        if name.startswith("views/") or not split.has(name) or name in ("labels", "image_id", "item_index"):
            raise ClipCacheError(f"{str(path)!r} has no row feature {name!r} to export; it has: "
                                 f"{', '.join(sorted(rows_of(split)))}")
    record = {"source": str(Path(path).resolve()), "fingerprint": fingerprint(split.provenance),
              "provenance": split.provenance}
    if fmt == "npz":
        return [write_npz(split, Path(out), features, record)]
    if "global" not in features:
        raise ClipCacheError("the embeddings format holds the global features: export them (--feature global)")
    return write_embeddings(split, Path(out), record)


def rows_of(split: FeatureSplit) -> list[str]:
    """The row features a split file holds."""
    known = ("global", "pooled", "spatial", "spatial_raw", "late_tokens")
    return [name for name in known if split.has(name)]


def write_npz(split: FeatureSplit, out: Path, features: tuple[str, ...], record: dict[str, Any]) -> Path:
    """One .npz: each feature, labels [N], image_id [N], item_index [N], classnames [C], provenance (JSON)."""
    if out.suffix != ".npz":
        raise ClipCacheError(f"the npz export goes to a file ending in .npz, got {str(out)!r}")
    arrays = {name: split.read(name) for name in features}  # [N, ...] each
    arrays |= {"labels": split.labels, "image_id": np.array(split.image_ids), "item_index": split.read("item_index"),
               "classnames": np.array(split.provenance["dataset"]["classnames"]),
               "provenance": np.array(json.dumps(record, sort_keys=True))}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.npz")
    savez: Any = np.savez  # (numpy's stub reads **arrays as its allow_pickle flag)
    savez(tmp, **arrays)
    os.replace(tmp, out)
    return out


def write_embeddings(split: FeatureSplit, out: Path, record: dict[str, Any]) -> list[Path]:
    """clip-retrieval's layout under the folder `out`."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ClipCacheError("the embeddings export writes parquet: pip install pyarrow "
                             "(or clip-feature-cache[export])") from exc
    feats = split.read("global").astype(np.float32)  # [N, D]
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)  # [N, D]
    names = split.provenance["dataset"]["classnames"]
    table = pa.table({"image_path": split.image_ids, "label": split.labels.astype(np.int64),
                      "classname": [names[int(label)] for label in split.labels],
                      "item_index": split.read("item_index").astype(np.int64)})
    written = [out / "img_emb" / "img_emb_0.npy", out / "metadata" / "metadata_0.parquet", out / "provenance.json"]
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = [path.with_name(f".{path.name}.tmp-{os.getpid()}") for path in written]
    with tmp[0].open("wb") as handle:
        np.save(handle, unit)
    pq.write_table(table, tmp[1])
    tmp[2].write_text(json.dumps(record, sort_keys=True, indent=1), encoding="utf-8")
    for source, target in zip(tmp, written, strict=True):
        os.replace(source, target)
    return written

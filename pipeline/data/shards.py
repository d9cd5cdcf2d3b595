"""`layout: webdataset`: images in webdataset tar shards (img2dataset's and CLIP_benchmark's format), read in place.

A shard's members are grouped into samples by webdataset's own rules (`webdataset.tariterators`: the key is the
member name up to the first dot of its base name, `base_plus_ext`; consecutive members with one key form a sample,
`group_by_keys`, which refuses a repeated extension; `__*__` metadata members are skipped as its
`tar_file_iterator` skips them). The shards are listed from their headers alone (one pass, no data read but the
small label members, nothing unpacked). A sample's image is its first present field of `image_fields` (default jpg,
jpeg, png, webp), its label the text integer of `label_field` (default cls), an index into the class names.
The item of a sample is (shard, image member name): see pipeline/data/members.py for how it is read.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.data.containers import CONTAINER_DEFAULTS, build_container_dataset
from pipeline.data.members import tar_entries
from pipeline.data.registry import DataSet, register_dataset, take_options
from pipeline.errors import ClipCacheError

SKIP_META = re.compile(r"__[^/]*__($|/)")  # webdataset tar_file_iterator's default skip_meta
WEBDATASET_DEFAULTS: dict[str, Any] = {
    **CONTAINER_DEFAULTS,
    "image_fields": ["jpg", "jpeg", "png", "webp"],  # a sample's image: the first of these extensions it has
    "label_field": "cls",  # a sample's label: this member's text, a whole number (CLIP_benchmark's cls)
}
MAX_LABEL_BYTES = 64  # a label member is a short integer; a larger one is not read into memory


def is_meta(name: str, prefix: str, suffix: str) -> bool:
    """Members webdataset's tar_file_iterator skips: `__key__`-style names at the top, and its skip_meta pattern."""
    top_meta = "/" not in name and name.startswith(prefix) and name.endswith(suffix)
    return top_meta or SKIP_META.match(name) is not None


def shard_samples(shard: Path) -> list[dict[str, Any]]:
    """The samples of a shard as webdataset groups them: {'__key__', <ext>: (member name, offset, size)}."""
    # imported here: webdataset imports torch, which listing the layouts (clipcache datasets) does not need. Its .pyi
    # stubs ship without a py.typed marker, so mypy does not read them
    from webdataset.tariterators import (  # type: ignore[import-untyped]
        base_plus_ext,
        group_by_keys,
        meta_prefix,
        meta_suffix,
    )

    try:
        files = [{"fname": name, "data": (name, offset, size), "__url__": str(shard)}
                 for name, offset, size in tar_entries(shard) if not is_meta(name, meta_prefix, meta_suffix)]
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ClipCacheError(f"shard {str(shard)!r} is not a readable uncompressed tar: {exc}") from None
    try:
        return list(group_by_keys([*files, {}], keys=base_plus_ext))
    except ValueError as exc:  # a repeated extension within one sample
        raise ClipCacheError(f"shard {str(shard)!r}: {exc.args[0]}") from None


def read_label(shard: Path, handle: BinaryIO, key: str, field: tuple[str, int, int]) -> int:
    """A sample's label member read at its offset in the open shard: a whole number in text."""
    name, offset, size = field
    if size > MAX_LABEL_BYTES:
        raise ClipCacheError(f"{shard}#{name}: a label of {size} bytes (a whole number expected)")
    handle.seek(offset)
    text = handle.read(size).decode("utf-8", errors="replace").strip()
    try:
        return int(text)
    except ValueError:
        raise ClipCacheError(f"{shard}#{name}: label {text!r} of sample {key!r} is not a whole number") from None


def shard_lister(image_fields: list[str], label_field: str) -> Any:
    """The (image member, label) pairs of a shard, for the fields the options name."""

    def listed(shard: Path) -> list[tuple[str, int]]:
        samples = shard_samples(shard)
        with shard.open("rb") as handle:
            return [labelled(shard, handle, sample) for sample in samples]

    def labelled(shard: Path, handle: BinaryIO, sample: dict[str, Any]) -> tuple[str, int]:
        key = sample["__key__"]
        image = next((sample[f] for f in image_fields if f in sample), None)
        if image is None or label_field not in sample:
            lacking = f"an image ({', '.join(image_fields)})" if image is None else f"a {label_field!r} member"
            raise ClipCacheError(f"{shard}#{key}: the sample lacks {lacking}; its members: "
                                 f"{', '.join(sorted(k for k in sample if not k.startswith('__')))}")
        return image[0], read_label(shard, handle, key, sample[label_field])

    return listed


def field_names(options: dict[str, Any]) -> tuple[list[str], str]:
    """(image extensions, label extension) from the options, checked (webdataset lower-cases extensions)."""
    fields = options["image_fields"]
    fields = [fields] if isinstance(fields, str) else fields
    label = options["label_field"]
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
        raise ClipCacheError(f"webdataset option image_fields must be a list of extensions, got {fields!r}")
    if not isinstance(label, str) or not label:
        raise ClipCacheError(f"webdataset option label_field must be an extension, got {label!r}")
    return [f.lower() for f in fields], label.lower()


@register_dataset("webdataset")
def webdataset(root: Path | None, options: dict[str, Any]) -> DataSet:
    """Webdataset tar shards under a root folder (see the module's docstring and pipeline/data/containers.py)."""
    if root is None:
        raise ClipCacheError("data set 'webdataset' needs a root (the folder holding the shards)")
    options = take_options("webdataset", options, WEBDATASET_DEFAULTS)
    fields, label = field_names(options)
    return build_container_dataset("webdataset", root, options, ".tar", shard_lister(fields, label))

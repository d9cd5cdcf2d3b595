"""Save and load fitted heads: weights as safetensors (no pickle), params/shapes/selection/provenance as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from pipeline.digest import file_checksum
from pipeline.errors import ClipCacheError
from pipeline.heads.base import SHAPE_NAMES, Head, Shapes
from pipeline.heads.registry import create_head
from pipeline.layout import HEAD_META, HEAD_WEIGHTS
from pipeline.params import as_dict
from pipeline.store.atomic import TMP_MARK, no_space, space_error, unique_token, write_json_atomic


def save_head(head: Head, folder: Path, provenance: dict[str, Any]) -> dict[str, Any]:
    """Write folder/head.safetensors and folder/head.json (each replaced atomically); return head.json's record.

    The two files are one unit only inside a folder that is itself renamed into place (a run's temporary folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    tmp = folder / f"{HEAD_WEIGHTS}{TMP_MARK}{unique_token()}"  # never shared by two writers
    try:
        save_file(tensors, str(tmp))
        tmp.replace(folder / HEAD_WEIGHTS)
    except Exception as exc:  # safetensors raises its own error types; space is the one a user can fix
        if no_space(exc):
            size = sum(t.numel() * t.element_size() for t in tensors.values())
            raise space_error(folder / HEAD_WEIGHTS, size, exc) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    record = {"head": head.name, "params": as_dict(head.params), **head.extra_state(), "provenance": provenance,
              "weights_checksum": file_checksum(folder / HEAD_WEIGHTS)}
    write_json_atomic(folder / HEAD_META, record)
    return record


MAX_SIZE = 2**31  # no head dimension is larger; a head.json asking for more is refused before any allocation


def stored_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header (nothing else is read)."""
    with safe_open(str(path), framework="pt") as handle:
        return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118


def checked_shapes(meta: dict[str, Any], path: Path) -> Shapes:
    """head.json's `shapes`: sizes named in `Shapes`, integers in [0, MAX_SIZE); or one line naming the file and
    the key."""
    shapes = meta.get("shapes")
    if not isinstance(shapes, dict):
        raise ClipCacheError(f"{str(path)!r}: 'shapes' must map tensor sizes to integers")
    for key, value in shapes.items():
        if key not in SHAPE_NAMES or isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_SIZE:
            raise ClipCacheError(f"{str(path)!r}: shapes.{key} = {value!r} is not a size a head can have")
    return cast(Shapes, shapes)


# what loading a head reads of head.json (`shapes` has its own check), and what stage 3 reads besides: by path
HEAD_FIELDS: dict[str, type] = {"head": str, "params": dict}
EVALUATION_FIELDS: dict[str, type] = {
    "selected": dict, "provenance": dict, "provenance.shots": int, "provenance.seed": int, "provenance.files": dict,
    "provenance.dataset": dict, "provenance.dataset.name": str, "provenance.dataset.classnames": list,
    "provenance.dataset.file_list_sha256": str, "provenance.encoder": dict, "provenance.encoder.model": str,
    "provenance.encoder.pretrained": str, "provenance.encoder.random_weights": bool}


def check_meta(meta: Any, path: Path, fields: dict[str, type]) -> dict[str, Any]:
    """head.json with every field of `fields` present and of its type, or one line naming the file and the field."""
    if not isinstance(meta, dict):
        raise ClipCacheError(f"{str(path)!r} must hold a JSON object")
    for dotted, kind in fields.items():
        value: Any = meta
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None or isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise ClipCacheError(f"{str(path)!r}: field {dotted} is missing or not a {kind.__name__} ({HEAD_META} is "
                                 "damaged or not written by clipcache); fit the head again")
    return meta


def load_head(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Head, dict[str, Any]]:
    """The fitted head saved in `folder`, and its JSON record; both files are checked whole (head.json's fields, the
    shapes it implies against the weights' header, then the weights' checksum) before anything is built."""
    folder = Path(folder)
    try:
        meta = check_meta(json.loads((folder / HEAD_META).read_text()), folder / HEAD_META, HEAD_FIELDS)
        stored = stored_shapes(folder / HEAD_WEIGHTS)
    except (OSError, ValueError) as exc:
        raise ClipCacheError(f"no readable fitted head in {str(folder)!r}: {exc}") from exc
    except SafetensorError as exc:  # a truncated or overwritten header
        raise ClipCacheError(f"{str(folder / HEAD_WEIGHTS)!r} is not a readable safetensors file ({exc}); fit the "
                             "head again") from None
    shapes = checked_shapes(meta, folder / HEAD_META)
    with torch.device("meta"):  # the tensors head.json asks for, allocating nothing
        planned = create_head(meta["head"], meta["params"])
        planned.setup(**shapes)
    expected = {name: tuple(t.shape) for name, t in planned.state_dict().items()}
    if expected != stored:
        wrong = sorted(set(expected) ^ set(stored)) or [n for n in sorted(expected) if expected[n] != stored[n]]
        raise ClipCacheError(f"{str(folder)!r}: head.json and head.safetensors do not belong together (tensor "
                             f"{wrong[0]!r}: head.json implies {expected.get(wrong[0])}, the weights hold "
                             f"{stored.get(wrong[0])})")
    if meta.get("weights_checksum") != file_checksum(folder / HEAD_WEIGHTS):
        why = "records no checksum of its weights (fitted by an older clipcache)" if "weights_checksum" not in meta \
            else "does not match its weights: head.safetensors is damaged or from another fit"
        raise ClipCacheError(f"{str(folder / HEAD_META)!r} {why}; fit the head again")
    tensors = load_file(str(folder / HEAD_WEIGHTS), device=str(device))
    head = create_head(meta["head"], meta["params"])
    head.setup(**shapes)
    head.load_state_dict(tensors)
    head.load_extra_state(meta)
    return head.to(device).eval(), meta

"""Save and load fitted heads: weights as safetensors (no pickle), params/shapes/selection/provenance as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from pipeline.errors import ClipCacheError
from pipeline.heads.base import Head
from pipeline.heads.registry import create_head
from pipeline.params import as_dict
from pipeline.store.atomic import TMP_MARK, unique_token, write_json_atomic

WEIGHTS, META = "head.safetensors", "head.json"


def save_head(head: Head, folder: Path, provenance: dict[str, Any]) -> dict[str, Any]:
    """Write folder/head.safetensors and folder/head.json (each replaced atomically); return head.json's record.

    The two files are one unit only inside a folder that is itself renamed into place (a run's temporary folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    tmp = folder / f"{WEIGHTS}{TMP_MARK}{unique_token()}"  # never shared by two writers
    try:
        save_file(tensors, str(tmp))
        tmp.replace(folder / WEIGHTS)
    finally:
        tmp.unlink(missing_ok=True)
    record = {"head": head.name, "params": as_dict(head.params), **head.extra_state(), "provenance": provenance}
    write_json_atomic(folder / META, record)
    return record


def load_head(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Head, dict[str, Any]]:
    """The fitted head saved in `folder`, and its JSON record."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / META).read_text())
        tensors = load_file(str(folder / WEIGHTS), device=str(device))
    except (OSError, ValueError) as exc:
        raise ClipCacheError(f"no readable fitted head in {str(folder)!r}: {exc}") from exc
    head = create_head(meta["head"], meta["params"])
    head.setup(**meta["shapes"])
    head.load_state_dict(tensors)
    head.load_extra_state(meta)
    return head.to(device).eval(), meta

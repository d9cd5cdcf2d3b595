"""What `clipcache models` lists: open_clip architectures with their pretrained tags, and local checkpoints."""

from __future__ import annotations

from pathlib import Path

import open_clip

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def architectures(contains: str | None = None) -> dict[str, list[str]]:
    """Architecture -> its pretrained tags ('none' is always accepted too)."""
    tags: dict[str, list[str]] = {name: [] for name in open_clip.list_models()}
    for name, tag in open_clip.list_pretrained():
        tags.setdefault(name, []).append(tag)
    return {k: v for k, v in sorted(tags.items()) if contains is None or contains.lower() in k.lower()}


def local_checkpoints(folder: str | Path) -> list[tuple[Path, int]]:
    """(path, size in bytes) of checkpoint files under `folder`."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return [(p, p.stat().st_size) for p in sorted(root.rglob("*")) if p.suffix in CHECKPOINT_SUFFIXES and p.is_file()]

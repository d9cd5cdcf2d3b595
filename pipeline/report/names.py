"""File names of the report's outputs, built from the names in the records (never from the results layout)."""

from __future__ import annotations

import re


def slug(*names: str) -> str:
    """Names joined by '__' with anything but letters, digits, '_', '.', '-' replaced by '-'.

    A local checkpoint's pretrained name is an absolute path: only its file name is kept.
    """
    parts = [name.rstrip("/").rsplit("/", 1)[-1] if "/" in name else name for name in names]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "__".join(parts)).strip("-")


def curve_name(head: str, model: str, pretrained: str, several_models: bool) -> str:
    """curves/<head>.csv with one (model, pretrained) in the results, <head>__<model>__<pretrained>.csv with several."""
    return f"{slug(head, model, pretrained) if several_models else slug(head)}.csv"

"""A folder or manifest data set's own class names and prompt templates, from files (no code to write), the way
CLIP_benchmark's --custom_classname_file / --custom_template_file work.

- `classnames_file`: one class name per line, in class-index order (the sorted class folders or manifest labels);
  it must have exactly one line per class.
- `templates_file`: one prompt template per line, each holding the class name's place as `{}` (or CLIP_benchmark's
  `{c}`). They become the data set's own set, `coop` (CoOp's per-data-set template, which heads use by default).

A path is relative to the data set's root unless absolute. Blank lines and lines starting with '#' are skipped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipeline.data.registry import DataSet
from pipeline.errors import ClipCacheError

CUSTOM_DEFAULTS: dict[str, Any] = {"classnames_file": None, "templates_file": None}


def read_lines(root: Path, name: str, option: str) -> tuple[Path, list[str]]:
    path = Path(name).expanduser()
    path = path if path.is_absolute() else root / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ClipCacheError(f"{option} {str(path)!r} cannot be read: {why}") from None
    return path, [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def with_custom_text(dataset: DataSet, custom: dict[str, Any]) -> DataSet:
    """The data set with the class names and templates of the files its options name (the options recorded)."""
    classnames, templates = dataset.classnames, dataset.templates
    if custom.get("classnames_file"):
        path, names = read_lines(dataset.root, str(custom["classnames_file"]), "classnames_file")
        if len(names) != len(classnames):
            raise ClipCacheError(f"classnames_file {str(path)!r} has {len(names)} names for the {len(classnames)} "
                                 f"classes of {str(dataset.root)!r} (one per line, in order: "
                                 f"{', '.join(classnames[:3])}"
                                 f"{', ...' if len(classnames) > 3 else ''})")
        classnames = tuple(names)
    if custom.get("templates_file"):
        path, lines = read_lines(dataset.root, str(custom["templates_file"]), "templates_file")
        lines = [line.replace("{c}", "{}") for line in lines]
        wrong = [number for number, line in enumerate(lines, start=1) if line.count("{}") != 1]
        if not lines or wrong:
            raise ClipCacheError(f"templates_file {str(path)!r}: " + (f"template {wrong[0]} must hold the class "
                                 "name's place once, as {} or {c}" if wrong else "holds no template"))
        templates = tuple(lines)
    options = {**dataset.options, **{k: v for k, v in custom.items() if v is not None}}
    return dataclasses.replace(dataset, classnames=classnames, templates=templates, options=options)

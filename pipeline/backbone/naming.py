"""How a (model, pretrained) pair is named in cache paths and provenance; imports no model code."""

from __future__ import annotations

from pathlib import Path

from pipeline.store.checksum import sha256_file


def model_label(name: str) -> str:
    """The architecture's name; a model-config JSON is named by its file stem and its content, <stem>-<sha256[:8]>,
    so that two configs of the same file name are two models, and a moved config is the same one (a missing file
    keeps its stem: loading it then names the file)."""
    if not name.endswith(".json"):
        return name
    path = Path(name).expanduser()
    return f"{path.stem}-{sha256_file(path)[:8]}" if path.is_file() else path.stem


def pretrained_label(pretrained: str | None) -> str:
    """'none', the tag, or file-<sha256[:12]> for a local checkpoint (named by its content, never its path)."""
    if pretrained in (None, "", "none"):
        return "none"
    path = Path(pretrained).expanduser()
    return f"file-{sha256_file(path)[:12]}" if path.is_file() else pretrained

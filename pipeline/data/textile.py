"""The embedded default: the conformal-clip-data textile images (nominal, local defect, global defect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.data.folder import build_folder
from pipeline.data.registry import DataSet, load_resource, register_dataset
from pipeline.errors import ClipCacheError


def packaged_root() -> Path:
    """The folder of class sub-folders that the conformal-clip-data package installs."""
    try:
        import conformal_clip_data
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise ClipCacheError("data set 'textile' needs the package conformal-clip-data (pip install it)") from exc
    return Path(conformal_clip_data.textile_simulated_root())


@register_dataset("textile")
def textile(root: Path | None, options: dict[str, Any]) -> DataSet:
    """2,000 simulated 250x250 textile textures (spc4sts; 1,000 nominal, 500 local-defect, 500 global-defect), as
    conformal-clip-data describes them, partitioned with a fixed seed."""
    spec = load_resource("datasets/textile.json")
    return build_folder("textile", root or packaged_root(), options, spec["classnames"], spec["coop_template"])

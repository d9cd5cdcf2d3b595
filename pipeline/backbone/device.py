"""Device choice: the runtime picks cuda, then mps, then cpu, unless told."""

from __future__ import annotations

import torch

from pipeline.errors import ClipCacheError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> the best available accelerator; otherwise the named device, checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ClipCacheError(f"unknown device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ClipCacheError(f"device {name!r} asked for, but CUDA is not available here")
    return device

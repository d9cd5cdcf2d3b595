"""Load a frozen open_clip (model, pretrained) pair: a pretrained tag, a local checkpoint file, or 'none'."""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import open_clip
import torch

from pipeline.errors import ClipCacheError
from pipeline.encoders.naming import model_label
from pipeline.store.checksum import sha256_file

log = logging.getLogger(__name__)
RANDOM_INIT_SEED = 0  # 'none' weights are drawn under this seed, so every process builds the same random model


@dataclass
class Encoder:
    """A frozen open_clip model with its preprocessing, tokenizer and where its weights came from."""

    model: torch.nn.Module  # eval mode, on `device`, no grad
    preprocess: Callable  # open_clip's evaluation transform for this pair (PIL image -> [3, S, S])
    tokenizer: Callable  # open_clip's tokenizer for this architecture
    device: torch.device
    provenance: dict[str, Any] = field(default_factory=dict)  # model, pretrained, checksums, versions, preprocess

    @property
    def image_size(self) -> int:
        """Side of the square input image."""
        size = self.provenance["preprocess"]["size"]
        return int(size[0] if isinstance(size, (list, tuple)) else size)


def resolve_architecture(name: str) -> tuple[str, dict[str, Any]]:
    """An open_clip architecture name; a path to a model-config JSON is registered first (custom/tiny models)."""
    extra: dict[str, Any] = {}
    if name.endswith(".json"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise ClipCacheError(f"model config file {str(path)!r} does not exist")
        open_clip.add_model_config(path)
        name, extra = model_label(name), {"model_config": str(path), "model_config_sha256": sha256_file(path)}
    if name not in open_clip.list_models():
        close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `clipcache models`"
        raise ClipCacheError(f"unknown open_clip model {name!r}{hint}")
    return name, extra


def resolve_pretrained(arch: str, pretrained: str | None) -> dict[str, Any]:
    """Classify `pretrained` as 'none', a local file (hashed) or a tag open_clip knows for `arch`."""
    if pretrained in (None, "", "none"):
        return {"pretrained": "none", "pretrained_kind": "none", "random_weights": True}
    path = Path(pretrained).expanduser()
    if path.is_file():
        return {"pretrained": str(path.resolve()), "pretrained_kind": "file", "random_weights": False,
                "checkpoint_sha256": sha256_file(path)}
    if any(sep in pretrained for sep in ("/", "\\")) or path.suffix in (".pt", ".pth", ".bin", ".safetensors"):
        raise ClipCacheError(f"checkpoint file {str(path)!r} does not exist")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if pretrained not in tags:
        raise ClipCacheError(f"unknown pretrained tag {pretrained!r} for {arch!r}; known: {', '.join(tags) or 'none'}")
    return {"pretrained": pretrained, "pretrained_kind": "tag", "random_weights": False}


def load_encoder(name: str, pretrained: str | None, device: torch.device) -> Encoder:
    """Build the frozen pair; errors (unknown name, unreachable hub, bad checkpoint) name the culprit."""
    arch, extra = resolve_architecture(name)
    weights = resolve_pretrained(arch, pretrained)
    if weights["random_weights"]:
        log.warning("RANDOM WEIGHTS: %s is built with pretrained='none'; features carry no meaning", arch)
        torch.manual_seed(RANDOM_INIT_SEED)
    source = None if weights["random_weights"] else weights["pretrained"]
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=source, device=device, pretrained_text=not weights["random_weights"]
        )
    except Exception as exc:  # open_clip raises many types; the user needs one line naming the pair
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClipCacheError(
            f"cannot build open_clip model {arch!r} with pretrained {weights['pretrained']!r}: {reason} "
            "(without internet, give a local checkpoint file as pretrained)"
        ) from exc
    model.eval().requires_grad_(False)
    provenance = {
        "model": arch, **extra, **weights,
        "random_init_seed": RANDOM_INIT_SEED if weights["random_weights"] else None,
        "open_clip_version": open_clip.__version__, "torch_version": torch.__version__,
        "preprocess": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in open_clip.get_model_preprocess_cfg(model).items()},
        "embed_dim": int(model.text_projection.shape[-1]) if getattr(model, "text_projection", None) is not None
        else None,
        "logit_scale": float(model.logit_scale.exp()) if hasattr(model, "logit_scale") else None,
    }
    return Encoder(model, preprocess, open_clip.get_tokenizer(arch), device, provenance)

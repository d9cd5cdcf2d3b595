"""Load a frozen open_clip (model, pretrained) pair: a pretrained tag, a local checkpoint file, or 'none'."""

from __future__ import annotations

import atexit
import difflib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import open_clip
import torch

from pipeline.backbone.naming import model_label
from pipeline.errors import ClipCacheError
from pipeline.store.checksum import path_of, sha256_file

log = logging.getLogger(__name__)
RANDOM_INIT_SEED = 0  # 'none' weights are drawn under this seed, so every process builds the same random model
# An open_clip model (CLIP, CustomTextCLIP, CoCa...). open_clip ships no type information, so to mypy it is Any; its
# towers and their parts are reached by attribute (`.visual`, `.encode_text`, `.token_embedding`), as open_clip does.
ClipModel: TypeAlias = Any


@dataclass
class Encoder:
    """A frozen open_clip model with its preprocessing, tokenizer and where its weights came from."""

    model: ClipModel  # eval mode, on `device`, no grad
    preprocess: Callable  # open_clip's evaluation transform for this pair (PIL image -> [3, S, S])
    tokenizer: Callable  # open_clip's tokenizer for this architecture
    device: torch.device
    provenance: dict[str, Any] = field(default_factory=dict)  # model, pretrained, checksums, versions, preprocess
    # where the config / checkpoint files were read (not identity)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        """Side of the square input image."""
        size = self.provenance["preprocess"]["size"]
        return int(size[0] if isinstance(size, (list, tuple)) else size)


_CONFIGS: list[Path] = []  # this process's folder of registered model configs, named by content


def register_config(path: Path, label: str) -> None:
    """Make a model-config JSON known to open_clip as `label` (<stem>-<sha[:8]>): open_clip keys configs by file
    stem, so a copy under the content label keeps two configs of one file name apart in a long-lived worker."""
    if not _CONFIGS:
        _CONFIGS.append(Path(tempfile.mkdtemp(prefix="clipcache-configs-")))
        atexit.register(shutil.rmtree, _CONFIGS[0], True)
    target = _CONFIGS[0] / f"{label}.json"
    if target.is_file():
        return
    try:
        json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClipCacheError(f"model config file {str(path)!r} is not valid JSON: {exc}") from None
    shutil.copyfile(path, target)
    open_clip.add_model_config(target)


def resolve_architecture(name: str) -> tuple[str, dict[str, Any]]:
    """An open_clip architecture name; a model-config JSON (custom/tiny models) is registered under its content
    label and recorded by its sha256 (its path is where it was read, not what it is: see `config_source`)."""
    extra: dict[str, Any] = {}
    if name.endswith(".json"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise ClipCacheError(f"model config file {str(path)!r} does not exist")
        name, extra = model_label(str(path)), {"model_config_sha256": sha256_file(path)}
        register_config(path, name)
    if name not in open_clip.list_models():
        close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `clipcache models`"
        raise ClipCacheError(f"unknown open_clip model {name!r}{hint}")
    return name, extra


def resolve_pretrained(arch: str, pretrained: str | None) -> dict[str, Any]:
    """Classify `pretrained` as 'none', a local file or a tag open_clip knows for `arch`; a file is identified by its
    sha256 ('file-<sha[:12]>'), so that moving it changes nothing."""
    if pretrained in (None, "", "none"):
        return {"pretrained": "none", "pretrained_kind": "none", "random_weights": True}
    path = Path(pretrained).expanduser()
    if path.is_file():
        digest = sha256_file(path)
        return {"pretrained": f"file-{digest[:12]}", "pretrained_kind": "file", "random_weights": False,
                "checkpoint_sha256": digest}
    if any(sep in pretrained for sep in ("/", "\\")) or path.suffix in (".pt", ".pth", ".bin", ".safetensors"):
        raise ClipCacheError(f"checkpoint file {str(path)!r} does not exist")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if pretrained not in tags:
        raise ClipCacheError(f"unknown pretrained tag {pretrained!r} for {arch!r}; known: {', '.join(tags) or 'none'}")
    return {"pretrained": pretrained, "pretrained_kind": "tag", "random_weights": False}


def check_names(dataset: str, model: str, pretrained: str | None) -> None:
    """The names of a (data set, model, pretrained) request, before any of its files is listed, opened or built: the
    data set is registered, the model is an open_clip architecture (or an existing config file), the tag is one
    open_clip knows for it (or an existing checkpoint file)."""
    from pipeline.data import list_datasets

    if dataset not in list_datasets():
        raise ClipCacheError(f"unknown data set {dataset!r}; known: {', '.join(list_datasets())}")
    arch, _ = resolve_architecture(model)
    resolve_pretrained(arch, pretrained)


def sources_of(name: str, pretrained: str | None) -> dict[str, str]:
    """Where the pair's files are (absolute paths), for the build record and for rebuilding the model later."""
    out = {}
    if name.endswith(".json"):
        out["model_config"] = str(Path(name).expanduser().resolve())
    if pretrained not in (None, "", "none") and Path(pretrained).expanduser().is_file():
        out["checkpoint"] = str(Path(pretrained).expanduser().resolve())
    return out


def locate(sha256: str, last_known: str | None, what: str) -> str:
    """The path of a file known by its sha256: a file hashed in this process (the params' current path) or the last
    known path if it still holds those bytes; otherwise one line naming the sha and the last known path."""
    found = path_of(sha256)
    if found is None and last_known and Path(last_known).is_file() and sha256_file(Path(last_known)) == sha256:
        found = last_known
    if found is None:
        raise ClipCacheError(f"{what} with sha256 {sha256} is not found (last known at {last_known!r}); give its "
                             "current path in params.yaml (encode.model)")
    return found


def load_encoder(name: str, pretrained: str | None, device: torch.device) -> Encoder:
    """Build the frozen pair; errors (unknown name, unreachable hub, bad checkpoint) name the culprit."""
    arch, extra = resolve_architecture(name)
    weights = resolve_pretrained(arch, pretrained)
    if weights["random_weights"]:
        log.warning("RANDOM WEIGHTS: %s is built with pretrained='none'; features carry no meaning", arch)
        torch.manual_seed(RANDOM_INIT_SEED)
    sources = sources_of(name, pretrained)
    source = None if weights["random_weights"] else sources.get("checkpoint", weights["pretrained"])
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=source, device=device, pretrained_text=not weights["random_weights"]
        )
    except Exception as exc:  # open_clip raises many types; the user needs one line naming the pair
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClipCacheError(
            f"cannot build open_clip model {arch!r} with pretrained {source or 'none'!r}: {reason} "
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
    try:  # SigLIP's and the Hugging Face towers' tokenizers are files from the hub
        tokenizer = open_clip.get_tokenizer(arch)
    except Exception as exc:  # fsspec, huggingface_hub and sentencepiece raise their own types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClipCacheError(f"cannot load the tokenizer of open_clip model {arch!r}: {type(exc).__name__}: {reason} "
                             "(without internet, the tokenizer's files must be in the Hugging Face cache)") from exc
    return Encoder(model, preprocess, tokenizer, device, provenance, sources)

"""What a model's image tower gives of the features a grid asks for.

Every tower has its global feature. Spatial maps, the pooled feature and late tokens are defined for open_clip's CLIP
ViTs, its ModifiedResNets (no late tokens) and timm ViT / Eva towers (SigLIP, PE-Core, EVA-CLIP); a grid that asks
for them and holds another tower (a ResNet for late tokens, a timm ConvNeXt, CoCa's pools) still encodes: the
feature is skipped, logged, and noted in the files' provenance with the reason, so that the heads that need it are
'not applicable' on that model rather than failures. Timm towers are noted too (`tower`), as the heads that run the
CLIP ViT's own blocks (prompt and LoRA learners) do not apply to them; CLIP ViT and ResNet files record no note, so
their fingerprints are those they always had.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from pipeline.backbone import Encoder
from pipeline.backbone.image import lacks, require_late_tokens, tower_kind, tower_name
from pipeline.encode.forward import with_precision
from pipeline.params import EncodeParams

log = logging.getLogger(__name__)


def features_for(params: EncodeParams, encoder: Encoder, arch: str) -> tuple[EncodeParams, dict[str, Any]]:
    """The params as this model takes them on its device ('auto' precision resolved, what the tower lacks switched
    off) and the notes for the files' provenance."""
    params = with_precision(params, encoder.device)
    visual, features, notes = encoder.model.visual, params.features, {}
    if tower_kind(visual) in ("timm", "other"):
        notes["tower"] = tower_name(visual)
    if (features.spatial or features.spatial_raw) and (reason := lacks(visual, "spatial")):
        log.warning("model %s: no spatial maps are kept (%s); the heads that read them do not apply to it", arch,
                    reason)
        features = dataclasses.replace(features, spatial=False, spatial_raw=False)
        notes["spatial_skipped"] = reason
    if features.pooled and (reason := lacks(visual, "pooled")):
        log.warning("model %s: no pooled features are kept (%s); the heads that read them do not apply to it", arch,
                    reason)
        features = dataclasses.replace(features, pooled=False)
        notes["pooled_skipped"] = reason
    if features.late_tokens and lacks(visual, "late_tokens"):
        log.warning("model %s has a %s image tower: no late tokens are kept (encode.features.late_tokens applies to "
                    "ViTs); vpt_late and cavpt do not apply to it", arch, tower_name(visual))
        features = dataclasses.replace(features, late_tokens=0)
        # a ResNet's note is its class name, as it always was (its files keep their fingerprints)
        notes["late_tokens_skipped"] = type(visual).__name__ if tower_kind(visual) == "resnet" else tower_name(visual)
    elif features.late_tokens:
        require_late_tokens(visual, arch, features.late_tokens)  # k within the blocks
    return dataclasses.replace(params, features=features), notes

"""Per-class text features: every template [C, T, D] and the normalised template mean [C, D]."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pipeline.backbone.model import ClipModel


def encode_classes(
    model: ClipModel, tokenizer: Callable, classnames: list[str], templates: list[str],
    device: torch.device, batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text embeddings of every (class, template) prompt, before normalisation, and CLIP's class weights.

    Returns:
        per_template: [C, T, D] raw `encode_text` outputs.
        mean: [C, D] the mean of the L2-normalised per-template embeddings, L2-normalised again (CLIP's
            prompt-ensemble classifier).
    """
    prompts = [template.format(name) for name in classnames for template in templates]  # C*T, class-major
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            tokens = tokenizer(prompts[start : start + batch_size]).to(device)  # [b, L]
            chunks.append(model.encode_text(tokens).float().cpu())  # [b, D]
    per_template = torch.cat(chunks).reshape(len(classnames), len(templates), -1)  # [C*T, D] -> [C, T, D]
    mean = F.normalize(F.normalize(per_template, dim=-1).mean(dim=1), dim=-1)  # [C, D]
    return per_template, mean

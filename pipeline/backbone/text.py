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
    flat = encode_sentences(model, tokenizer, prompts, device, batch_size)  # [C*T, D]
    per_template = flat.reshape(len(classnames), len(templates), -1)  # [C*T, D] -> [C, T, D]
    mean = F.normalize(F.normalize(per_template, dim=-1).mean(dim=1), dim=-1)  # [C, D]
    return per_template, mean


def encode_sentences(model: ClipModel, tokenizer: Callable, sentences: list[str], device: torch.device,
                     batch_size: int = 256) -> torch.Tensor:
    """[S, D] raw `encode_text` outputs of free sentences (class descriptions), in order; the tokenizer truncates
    a sentence longer than the model's context, as CLIP's `tokenize(truncate=True)` does."""
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(sentences), batch_size):
            tokens = tokenizer(sentences[start : start + batch_size]).to(device)  # [b, L]
            chunks.append(model.encode_text(tokens).float().cpu())  # [b, D]
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)  # [S, D]

"""Multi-Modal Adapter (MMA): one small attention adapter over the class text features and the image feature.

Paper: Seputis et al., "Multi-Modal Adapter for Vision-Language Models", arXiv 2409.02958. As the authors' code does
(github dqmis/clip-mma at 1287cb5, `fomo/models/clip/clip_transformer_adapter_text.py` and
`modules/masked_multi_head_attention_downsampled.py`):
- per image, the sequence [t_1 .. t_C, f] (normalised class text features, then the image's feature) goes through
  A = Linear(D, 32) -> Linear(32, 128) -> 4-head attention (width 128) -> Linear(128, 32) -> GELU -> Linear(32, D),
  every layer with bias and PyTorch's default initialisation (no zero start);
- the attention mask is the authors' float mask: +1 added to the scores of cross-modal pairs (text -> image,
  image -> text), 0 elsewhere. A float mask is added, not blocking, so text -> text attention stays on; the paper's
  prose describes cross-modal-only attention, which `mask: block` gives (and `mask: none` drops the bias);
- blend at ratio r = 0.2 for both modalities: x' = normalise(r normalise(A(x)) + (1 - r) x); logits = the model's
  logit scale * cos(f', t'_c). Text features are adapted per image (one sequence of C + 1 tokens per image).
- Adam (L2 weight decay 1e-4 added to the gradient) at a constant lr 5e-3, batch 256, up to 200 epochs, early
  stopping after 20 epochs without a better validation accuracy, the best-validation epoch kept; no augmentation
  (the un-augmented cached features, `augment: true` draws a random view per image per step instead).
Where we depart: the authors draw their validation images (16 per class) from the training split; ours is the
cache's validation split. Their K-shot draw is a stratified sample of 16 C images; ours is exactly K per class.
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import nn

from pipeline.errors import ClipCacheError
from pipeline.head_params.mm_adapter import REQUIRES, MMAdapterParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.inputs import FitData
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import normalize
from pipeline.heads.registry import register_head

MASKS = ("authors", "block", "none")


def cross_modal_mask(classes: int, kind: str, device: torch.device) -> torch.Tensor | None:
    """The [C+1, C+1] attention mask of a sequence [t_1 .. t_C, f] (rows: queries, columns: keys)."""
    if kind == "none":
        return None
    cross = torch.zeros(classes + 1, classes + 1, dtype=torch.bool, device=device)
    cross[:classes, classes] = True  # text queries -> the image key
    cross[classes, :classes] = True  # the image query -> text keys
    if kind == "authors":
        return cross.float()  # added to the scores: +1 on cross-modal pairs, nothing blocked
    return ~cross  # True = not allowed: only cross-modal pairs remain


class MaskedAdapter(nn.Module):
    """The authors' adapter: down-project, masked multi-head attention, up-project."""

    def __init__(self, dim: int, bottleneck: int, width: int, heads: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Linear(dim, bottleneck), nn.Linear(bottleneck, width))
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.up = nn.Sequential(nn.Linear(width, bottleneck), nn.GELU(), nn.Linear(bottleneck, dim))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """tokens [B, C+1, D] -> adapter outputs [B, C+1, D]."""
        z = self.down(tokens)  # [B, C+1, W]
        return self.up(self.attn(z, z, z, attn_mask=mask, need_weights=False)[0])  # [B, C+1, D]


@register_head("mm_adapter")
class MMAdapter(Head):
    Params = MMAdapterParams
    requires = REQUIRES
    novel_classes = True  # its classes enter only through the text features (base-to-novel)

    def __init__(self, params: MMAdapterParams) -> None:
        super().__init__(params)
        self.requires = frozenset({"global", "views"} if params.augment else {"global"})  # views only to augment

    adapter: MaskedAdapter

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes = shapes["dim"], shapes["classes"]
        p = self.params
        if p.mask not in MASKS:
            raise ClipCacheError(f"heads.mm_adapter.mask must be one of {', '.join(MASKS)}, got {p.mask!r}")
        if p.width % p.n_heads:
            raise ClipCacheError(f"heads.mm_adapter.n_heads={p.n_heads} must divide width={p.width}")
        self.text_buffers(classes, dim)
        self.adapter = MaskedAdapter(dim, p.bottleneck, p.width, p.n_heads)

    def fit(self, data: FitData) -> MMAdapter:
        p = self.params
        self.prepare(data, p.template_set, dim=data.train.array("global").shape[1], classes=data.n_classes)
        train(self, data, Schedule("adam", p.lr, p.weight_decay, p.epochs, p.batch_size, keep=p.keep,
                                   min_steps=p.min_steps, lr_schedule="constant", patience=p.patience,
                                   views=p.augment))
        return self

    def blend(self, x: torch.Tensor, adapted: torch.Tensor) -> torch.Tensor:
        r = self.params.ratio
        return normalize(r * normalize(adapted) + (1 - r) * x)

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = batch["global"]  # [B, D]
        classes = self.class_weights.shape[0]
        tokens = torch.cat([self.class_weights.expand(image.shape[0], -1, -1), image[:, None]], dim=1)  # [B, C+1, D]
        adapted = self.blend(tokens, self.adapter(tokens, cross_modal_mask(classes, self.params.mask, image.device)))
        return self.logit_scale * torch.einsum("bd,bcd->bc", adapted[:, classes], adapted[:, :classes])  # [B, C]

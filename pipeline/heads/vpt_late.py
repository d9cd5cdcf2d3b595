"""VPT-deep restricted to the last k blocks of the ViT, trained on cached late tokens (VPT-CLIP-Deep made cacheable).

Paper: Xing et al., "Dual Modality Prompt Tuning for Vision-Language Pre-Trained Model" (../shared/papers/cavpt.txt),
eq. 6: P learnable prompt tokens enter every block after the class token, [s, P_l, E] -> block -> drop the prompt
outputs. The paper prompts all 12 blocks of ViT-B/32 and so must run the whole image encoder at every step; here stage
1 caches the sequence entering block L-K (`encode.features.late_tokens: K`) for every view, val and test image, and
stage 2 runs only the last k <= K blocks, the final norm and the projection. k = 1 by default: the paper puts its
class-aware module in the last layer only ("VPT-CLIP-CAVPT ... into the last layer"), the cheapest cacheable choice;
raise it (with K >= k) for deeper prompting.
Defaults from the paper and its released configs: P = 10 prompts per block, N(0, 0.02) init, SGD lr 0.01, batch 32,
cosine schedule with a 10-epoch warm-up at 1e-5; epochs by shots as in CoOp (the paper's 200 at 16 shots). The
classifier is the frozen hand-crafted one (`template_set`), or, with `text_prompts: true`, CoOp's learned context
trained jointly (the paper's VLP-CLIP; the text context's rate is lr x text_lr_scale = CoOp's 0.002).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.heads.base import val_accuracy
from pipeline.heads.data import FitData
from pipeline.heads.maths import normalize
from pipeline.heads.prompted import (
    EncoderHead,
    TextContext,
    context_shapes,
    epochs_by_shots,
    init_context,
    stored_late_tokens,
)
from pipeline.heads.registry import register_head
from pipeline.prompts.text import TextTower
from pipeline.prompts.vision import LateViT, PromptFn
from pipeline.train.loop import Schedule, train


@dataclass(frozen=True)
class VPTLateParams:
    k: int = 1  # prompted last blocks; the cache must hold late tokens of at least this depth
    n_prompts: int = 10  # P prompt tokens per prompted block
    init_std: float = 0.02
    template_set: str = "coop"  # the frozen classifier's prompt (when text_prompts is false)
    text_prompts: bool = False  # also learn CoOp's text context (dual modality, VLP-CLIP)
    n_ctx: int = 16  # CoOp context length (text_prompts only)
    ctx_init: str = ""
    class_token_position: str = "end"
    text_lr_scale: float = 0.2  # text context lr = lr x this (CoOp's 0.002 against the visual 0.01)
    lr: float = 0.01
    weight_decay: float = 5e-4
    batch_size: int = 32
    epochs: int = 0  # 0: by shots (50 / 100 / 200)
    warmup_epochs: int = 10
    warmup_lr: float = 1e-5


@register_head("vpt_late")
class VPTLate(EncoderHead):
    Params = VPTLateParams
    requires = frozenset({"global", "views", "late_tokens", "late_token_views"})
    runs = ("last k ViT blocks",)
    block_rows = 256  # token sequences are large: score 256 images at a time

    def setup(self, dim: int, classes: int, width: int, stored: int, n_ctx: int = 0, text_width: int = 0,
              length: int = 0) -> None:
        super().setup(dim=dim, classes=classes, width=width, stored=stored, n_ctx=n_ctx, text_width=text_width,
                      length=length)
        self.text_buffers(classes, dim)
        self.prompts = nn.Parameter(torch.zeros(self.params.k, self.params.n_prompts, width))  # [k, P, W]
        if self.params.text_prompts:
            self.context = TextContext(classes, n_ctx, text_width, length, csc=False)

    def late(self) -> LateViT:
        return LateViT(self.encoder(self.device()).visual, self.shapes["stored"], self.params.k)

    def fit(self, data: FitData) -> VPTLate:
        p = self.params
        self.bind(data.train.provenance["encoder"])
        model, tokenizer = self.encoder(data.device), self.tokenizer(data.device)
        stored = stored_late_tokens(data.train)
        LateViT(model.visual, stored, p.k)  # checks the tower and k against the cache before anything is built
        dim = data.train.array("global").shape[1]
        text: dict[str, int] = {}
        if p.text_prompts:
            shapes = context_shapes(TextTower(model), tokenizer, p.n_ctx, p.ctx_init)
            text = {"n_ctx": shapes["n_ctx"], "text_width": shapes["width"], "length": shapes["length"]}
        self.prepare(data, p.template_set, dim=dim, classes=data.n_classes, width=int(model.visual.transformer.width),
                     stored=stored, **text)
        with torch.no_grad():
            nn.init.normal_(self.prompts, std=p.init_std)
        if p.text_prompts:
            init_context(self.context, TextTower(model), tokenizer, list(data.text.classnames),
                         p.class_token_position, p.ctx_init, 0.02)
        epochs = p.epochs or epochs_by_shots(data.train.provenance["split"]["shots"])
        schedule = Schedule("sgd", p.lr, p.weight_decay, epochs, p.batch_size, p.warmup_epochs, p.warmup_lr)
        if any(p.numel() for group in self.param_groups() for p in group["params"]):
            train(self, data, schedule, ("global", "late_tokens"), self.loss)
        else:  # n_prompts 0 and no text context: nothing to learn (the cached-token path of zero-shot CLIP)
            self.selected.update({"epoch": 0, "val_acc": val_accuracy(self, data.val)})
        return self

    def param_groups(self) -> list[dict[str, Any]]:
        text = [p for n, p in self.named_parameters() if n.startswith("context.")]
        rest = [p for n, p in self.named_parameters() if not n.startswith("context.") and p.requires_grad]
        return [{"params": rest}] + ([{"params": text, "lr_scale": self.params.text_lr_scale}] if text else [])

    def classifier(self) -> torch.Tensor:
        """Normalised class weights [C, D]: frozen hand-crafted, or from the learned text context."""
        if self.params.text_prompts:
            return self.context.features(TextTower(self.encoder(self.device())))
        return self.class_weights

    def block_prompts(self, block: dict[str, torch.Tensor]) -> PromptFn:
        """The prompt function LateViT calls at each prompted block: the block's P prompts for every image."""
        batch = block["late_tokens"].shape[0]
        return lambda i, _x: self.prompts[i].unsqueeze(0).expand(batch, -1, -1)  # [P, W] -> [B, P, W]

    def image_features(self, block: dict[str, torch.Tensor]) -> torch.Tensor:
        return normalize(self.late()(block["late_tokens"], self.block_prompts(block)))  # [B, D]

    def block_names(self) -> tuple[str, ...]:
        return ("global", "late_tokens")

    def block_logits(self, block: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.logit_scale * self.image_features(block) @ self.classifier().T  # [B, D] x [D, C] -> [B, C]

    def loss(self, block: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self.block_logits(block), block["labels"])

"""VPT on a frozen CLIP ViT trained on cached tokens (VPT-CLIP-Deep, and VPT-CLIP-Shallow, made cacheable).

Paper: Xing et al., "Dual Modality Prompt Tuning for Vision-Language Pre-Trained Model" (docs/papers/cavpt.txt),
eq. 6: P learnable prompt tokens enter every block after the class token, [s, P_l, E] -> block -> drop the prompt
outputs (VPT-deep); eqs. 4-5: prompts enter the first block only and their outputs flow through (VPT-shallow,
`depth: shallow`). Stage 1 caches the sequence entering block L-K (`encode.features.late_tokens: K`) for every view,
val and test image, and stage 2 runs only the last k <= K blocks, the final norm and the projection.
Default k = 0: every block, the paper's VPT-deep and the authors' code (github fanrena/DPT at 11fef90, `VPT.py`:
prompts in blocks 1..12 after ln_pre); it needs `late_tokens` = L (12 for ViT-B), the tokens right after the patch
embedding, and runs the whole tower per step. k = 1..L prompts the last k blocks only (cheaper, not a paper variant).
Defaults from the paper and the authors' configs: P = 10 prompts per block, N(0, 0.02) init, SGD lr 0.01 (momentum
0.9, weight decay 5e-4), batch 32, cosine schedule with a 10-epoch warm-up at 1e-5; epochs by shots as in CoOp (the
paper's 200 at 16 shots); the last epoch is kept (Dassl's default, which the authors' scripts use). The classifier is
the frozen hand-crafted one (`template_set`), or, with `text_prompts: true`, CoOp's learned context trained jointly
(the paper's VLP-CLIP; the text context's rate is lr x text_lr_scale = CoOp's 0.002).
Where we depart: the authors append the prompts after the patch tokens; we insert them after the class token as the
paper writes it (without position embeddings the two orders give the same class token).
"""

from __future__ import annotations

from typing import Any, Unpack

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.backbone.blocks import n_blocks
from pipeline.errors import ClipCacheError
from pipeline.head_params.vpt_late import REQUIRES, RUNS, VPTLateParams
from pipeline.heads.base import Shapes, recorded_val_accuracy
from pipeline.heads.inputs import FitData, TextReader
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import clip_logits, normalize
from pipeline.heads.prompted import (
    EncoderHead,
    TextContext,
    context_shapes,
    epochs_by_shots,
    init_context,
    relayout,
    stored_late_tokens,
)
from pipeline.heads.registry import register_head
from pipeline.prompts.text import TextTower
from pipeline.prompts.vision import LateViT, PromptFn

DEPTHS = ("deep", "shallow")


def prompted_blocks(visual: nn.Module, k: int) -> int:
    """The number of prompted blocks a head's k names: k itself, or every block of the tower for k = 0."""
    if k < 0:
        raise ClipCacheError(f"heads.vpt_late/cavpt k must be >= 0 (0: every block), got {k}")
    transformer = getattr(visual, "transformer", None)
    return k or (n_blocks(transformer) if transformer is not None else 1)


@register_head("vpt_late")
class VPTLate(EncoderHead):
    Params = VPTLateParams
    validation_free = (("keep", "last"),)  # its authors' choice without val
    requires = REQUIRES
    runs = RUNS
    batch_rows = 256  # token sequences are large: score 256 images at a time
    novel_classes = True  # prompts are class-agnostic; classes enter through the text features
    prompts: torch.Tensor  # [k or 1, P, W] the visual prompts of each prompted block (one row: shallow)
    context: TextContext  # CoOp's learned text context (text_prompts only)

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        dim, classes, width = shapes["dim"], shapes["classes"], shapes["width"]
        n_ctx, text_width, length = shapes.get("n_ctx", 0), shapes.get("text_width", 0), shapes.get("length", 0)
        blocks = shapes.get("blocks") or self.params.k  # the resolved k of fit (k = 0 -> every block)
        super().setup(dim=dim, classes=classes, width=width, stored=shapes["stored"], n_ctx=n_ctx,
                      text_width=text_width, length=length, blocks=blocks)
        self.text_buffers(classes, dim)
        rows = 1 if self.params.depth == "shallow" else blocks
        self.prompts = nn.Parameter(torch.zeros(rows, self.params.n_prompts, width))  # [k or 1, P, W]
        if self.params.text_prompts:
            self.context = TextContext(classes, n_ctx, text_width, length, csc=False)

    def late(self) -> LateViT:
        return LateViT(self.encoder(self.device()).visual, self.shapes["stored"], self.shapes["blocks"],
                       self.params.depth == "shallow")

    def fit(self, data: FitData) -> VPTLate:
        p = self.params
        self.bind(data.train.provenance["encoder"], data.train.build.get("sources"))
        model, tokenizer = self.encoder(data.device), self.tokenizer(data.device)
        stored = stored_late_tokens(data.train)
        if p.depth not in DEPTHS:
            raise ClipCacheError(f"heads.{self.name}.depth must be one of {', '.join(DEPTHS)}, got {p.depth!r}")
        blocks = prompted_blocks(model.visual, p.k)
        if p.k == 0 and stored < blocks:
            raise ClipCacheError(f"heads.{self.name}.k=0 prompts every one of the {blocks} blocks (VPT-deep) and needs "
                                 f"encode.features.late_tokens: {blocks} (the cache holds {stored}); or set "
                                 f"heads.{self.name}.k <= {stored}")
        LateViT(model.visual, stored, blocks)  # checks the tower and k against the cache before anything is built
        dim = data.train.array("global").shape[1]
        text: dict[str, int] = {}
        if p.text_prompts:
            shapes = context_shapes(TextTower(model), tokenizer, p.n_ctx, p.ctx_init)
            text = {"n_ctx": shapes["n_ctx"], "text_width": shapes["width"], "length": shapes["length"]}
        self.prepare(data, p.template_set, dim=dim, classes=data.n_classes, width=int(model.visual.transformer.width),
                     stored=stored, blocks=blocks, **text)
        with torch.no_grad():
            nn.init.normal_(self.prompts, std=p.init_std)
        if p.text_prompts:
            init_context(self.context, TextTower(model), tokenizer, list(data.text.classnames),
                         p.class_token_position, p.ctx_init, 0.02)
        epochs = p.epochs or epochs_by_shots(data.train.provenance["split"]["shots"], data.dataset_layout)
        schedule = Schedule("sgd", p.lr, p.weight_decay, epochs, p.batch_size, p.warmup_epochs, p.warmup_lr,
                            keep=p.keep, min_steps=p.min_steps, lr_schedule="dassl")
        if any(p.numel() for group in self.param_groups() for p in group["params"]):
            train(self, data, schedule, ("global", "late_tokens"), self.loss)
        else:  # n_prompts 0 and no text context: nothing to learn (the cached-token path of zero-shot CLIP)
            self.selected.update({"epoch": 0, "val_acc": recorded_val_accuracy(self, data.val)})
        return self

    def retarget(self, text: TextReader) -> None:
        """Other classes: the frozen classifier of their text features, or the learned context in their prompts."""
        if self.params.text_prompts:
            relayout(self.context, self.tokenizer(self.device()), list(text.classnames),
                     self.params.class_token_position)
        super().retarget(text)

    def param_groups(self) -> list[dict[str, Any]]:
        text = [p for n, p in self.named_parameters() if n.startswith("context.")]
        rest = [p for n, p in self.named_parameters() if not n.startswith("context.") and p.requires_grad]
        return [{"params": rest}] + ([{"params": text, "lr_scale": self.params.text_lr_scale}] if text else [])

    def classifier(self) -> torch.Tensor:
        """Normalised class weights [C, D]: frozen hand-crafted, or from the learned text context."""
        if self.params.text_prompts:
            return self.context.features(TextTower(self.encoder(self.device())))
        return self.class_weights

    def batch_prompts(self, batch: dict[str, torch.Tensor]) -> PromptFn:
        """The prompt function LateViT calls at each prompted block: the block's P prompts for every image."""
        size = batch["late_tokens"].shape[0]
        return lambda i, _x: self.prompts[i].unsqueeze(0).expand(size, -1, -1)  # [P, W] -> [B, P, W]

    def prompted_features(self, tokens: torch.Tensor, prompts: PromptFn) -> torch.Tensor:
        """Normalised image features [B, D] of cached late tokens [B, 1+HW, W] run through the prompted blocks."""
        return normalize(self.late()(tokens, prompts))

    def image_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.prompted_features(batch["late_tokens"], self.batch_prompts(batch))  # [B, D]

    def class_logits(self, image_feats: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] of normalised image features [B, D] against the classifier."""
        return clip_logits(image_feats, self.classifier(), self.logit_scale)

    def batch_inputs(self) -> tuple[str, ...]:
        return ("global", "late_tokens")

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.class_logits(self.image_features(batch))

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self.batch_scores(batch), batch["labels"])

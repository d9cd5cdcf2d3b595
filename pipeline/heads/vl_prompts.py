"""Deep vision-language prompts (IVLP, MaPLe): learned tokens in both towers, the image tower run from cached tokens.

What both heads share, as in github muzairkhattak/multimodal-prompt-learning at
69bce21ae8eda80ad6187534b2dce09cf6c59e17 (clip/model.py: ResidualAttentionBlock_IVLP / _MaPLe, VisionTransformer*,
trainers/independentVL.py, trainers/maple.py):
- text: the prompt "<ctx_init> <name>." whose first n_ctx tokens are learned (initialised from the phrase's own
  embeddings; random N(0, 0.02) on "X .. X <name>." without a phrase or with n_ctx > 4); before each block i in
  1..depth_text-1 the n_ctx tokens after the start token are replaced by that block's deep text prompts;
- image: n_ctx_vision prompt tokens appended after the patch tokens, before ln_pre (a per-token norm: here ln_pre is
  applied to them alone and they are appended to the cached tokens, which stage 1 stored after ln_pre); before each
  block i in 1..depth_vision-1 the last n_ctx_vision tokens are replaced by that block's deep prompts (no ln_pre);
  the tower pools its class token (ln_post, proj) and the prompt outputs stay in the sequence to the end;
- logits = the model's logit scale x cos(image, class); cross-entropy; Dassl's SGD (lr 0.0035, momentum 0.9, weight
  decay 5e-4), batch 4, 5 epochs with one constant warm-up epoch at 1e-5 inside them, per-epoch cosine, the last epoch.
Departures: a cached augmented view per image per step (they crop and flip every step); float32 (they train in fp16);
the parameters' random draws follow our seeded creation order.
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import nn

from pipeline.backbone.blocks import n_blocks, run_hooked
from pipeline.backbone.image import tower_kind
from pipeline.errors import ClipCacheError, NotApplicable
from pipeline.heads.base import Shapes
from pipeline.heads.inputs import FitData, TextReader
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import normalize
from pipeline.heads.prompted import TextContext, TowerTextHead, stored_late_tokens
from pipeline.prompts.text import PromptLayout, TextTower, leading_layout, prompt_layout


class VLPrompts(TowerTextHead):
    """The shared machinery; a subclass says where each block's prompts come from."""

    requires = frozenset({"global", "views", "late_tokens", "late_token_views"})
    validation_free = (("keep", "last"),)  # its authors' choice without val
    runs = ("text tower", "every ViT block")
    batch_rows = 256  # token sequences are large
    novel_classes = True  # the prompts are class-agnostic: other names get the same context

    context: TextContext  # the learned first n_ctx tokens of the text prompt, and the prompts' ids and slots
    logit_scale: torch.Tensor

    def text_deep(self, block: int) -> torch.Tensor | None:
        """[n_ctx, W_text] replacing the context tokens entering text block `block`, or None."""
        raise NotImplementedError

    def vision_shallow(self) -> torch.Tensor:
        """[n_ctx_vision, W_vision] appended to the image tokens before ln_pre."""
        raise NotImplementedError

    def vision_deep(self, block: int) -> torch.Tensor | None:
        """[n_ctx_vision, W_vision] replacing the prompt tokens entering image block `block`, or None."""
        raise NotImplementedError

    def vision_tokens(self) -> int:
        raise NotImplementedError

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        self.context = TextContext(shapes["classes"], shapes["n_ctx"], shapes["text_width"], shapes["length"], False)
        self.register_buffer("logit_scale", torch.zeros(()))

    def phrase(self) -> str:
        """Their rule: the words initialise the context when given and n_ctx <= 4."""
        p = self.params
        return p.ctx_init.replace("_", " ") if p.ctx_init and p.n_ctx <= 4 else ""

    def layout(self, classnames: list[str]) -> PromptLayout:
        tokenizer = self.tokenizer(self.device())
        phrase = self.phrase()
        return (leading_layout(tokenizer, classnames, self.params.n_ctx, phrase) if phrase
                else prompt_layout(tokenizer, classnames, self.params.n_ctx, "end"))

    def fit(self, data: FitData) -> VLPrompts:
        p = self.params
        self.bind(data.train.provenance["encoder"], data.train.build.get("sources"))
        model, tokenizer = self.encoder(data.device), self.tokenizer(data.device)
        visual, tower = model.visual, TextTower(model)
        if tower_kind(visual) != "vit":
            raise NotApplicable(f"{self.name} prompts every ViT block; model "
                                f"{data.train.provenance['encoder']['model']!r} has a {type(visual).__name__} tower")
        if getattr(visual, "pool_type", "tok") != "tok" or tower.kind != "clip":
            raise ClipCacheError(f"{self.name} needs a class-token ViT and an open_clip text transformer (their CLIP)")
        blocks, stored = n_blocks(visual.transformer), stored_late_tokens(data.train)
        if stored < blocks:
            raise ClipCacheError(f"heads.{self.name} prompts the image tower from its first block and needs "
                                 f"encode.features.late_tokens: {blocks} (the cache holds {stored})")
        torch.manual_seed(data.seed)
        self.setup(classes=data.n_classes, dim=int(data.train.array("global").shape[1]), n_ctx=p.n_ctx,
                   width=int(visual.transformer.width), text_width=tower.width, length=int(tokenizer(["x"]).shape[1]),
                   blocks=blocks, text_blocks=n_blocks(tower.src.transformer), stored=stored)
        self.to(data.device)
        self.context.lay_out(self.layout(list(data.text.classnames)))
        with torch.no_grad():
            if self.phrase():
                self.context.ctx.copy_(self.context.slot_words(tower))  # [n_ctx, W]
            else:
                nn.init.normal_(self.context.ctx, std=0.02)
        self.logit_scale.fill_(data.text.logit_scale)
        self.run_training(data, Schedule("sgd", p.lr, p.weight_decay, p.epochs, p.batch_size, p.warmup_epochs,
                                         p.warmup_lr, keep=p.keep, lr_schedule="dassl"))
        return self

    def run_training(self, data: FitData, schedule: Schedule) -> None:
        """Cross-entropy of the prompted logits, minibatches of cached tokens (PromptSRC adds its terms)."""
        train(self, data, schedule, ("late_tokens",))

    def compute_text(self) -> torch.Tensor:
        """Normalised class features [C, D] of the prompts with their shallow and deep text prompts."""
        context = self.context
        tower = TextTower(self.encoder(self.device()))
        classes, n_ctx = context.slots.shape
        prompts = context.prompts(context.words(tower))  # [C, L, W]
        start = int(context.slots[0, 0])

        def before(i: int, x: torch.Tensor) -> torch.Tensor:
            deep = self.text_deep(i)
            if deep is None:
                return x
            return torch.cat([x[:, :start], deep.unsqueeze(0).expand(classes, -1, -1), x[:, start + n_ctx :]], 1)

        return normalize(tower.encode(prompts, context.ids,
                                      lambda x, mask: run_hooked(tower.src.transformer, x, before, mask)))

    def image_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Normalised image features [B, D] of the cached tokens entering block 0 [B, 1+HW, W] with the prompts."""
        visual = self.encoder(self.device()).visual
        b, n = tokens.shape[0], self.vision_tokens()
        shallow = visual.ln_pre(self.vision_shallow())  # [n_v, W]: ln_pre acts per token
        x = torch.cat([tokens, shallow.unsqueeze(0).expand(b, -1, -1)], 1)  # [B, 1+HW+n_v, W]

        def before(i: int, x: torch.Tensor) -> torch.Tensor:
            deep = self.vision_deep(i)
            if deep is None:
                return x
            return torch.cat([x[:, : x.shape[1] - n], deep.unsqueeze(0).expand(b, -1, -1)], 1)

        x = run_hooked(visual.transformer, x, before)
        pooled, _ = visual._pool(x)  # [B, W]: the class token after ln_post
        return normalize(pooled @ visual.proj)  # [B, W] x [W, D] -> [B, D]

    def batch_inputs(self) -> tuple[str, ...]:
        return ("late_tokens",)

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self.image_features(batch["late_tokens"])  # [B, D]
        return self.logit_scale * image @ self.text_features().T  # [B, D] x [D, C] -> [B, C]

    def retarget(self, text: TextReader) -> None:
        """Other class names in the same prompt layout, the same learned tokens."""
        self.context.lay_out(self.layout(list(text.classnames)))
        self.shapes["classes"] = len(text.classnames)


def check_depth(head: str, name: str, depth: int, blocks: int | None = None) -> None:
    """A prompt depth counts blocks from the first: at least 1, at most the tower's blocks."""
    if depth < 1 or (blocks is not None and depth > blocks):
        limit = f" and at most the tower's {blocks} blocks" if blocks is not None else ""
        raise ClipCacheError(f"heads.{head}.{name} must be at least 1{limit}, got {depth!r}")

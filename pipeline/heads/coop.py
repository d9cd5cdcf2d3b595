"""CoOp: context optimisation, trained with the image side read from the cache.

Paper: Zhou et al., "Learning to Prompt for Vision-Language Models" (IJCV 2022); with OpenCLIP towers as in
docs/papers/coop-with-openclip.txt. n_ctx learnable vectors in the token-embedding space replace the hand-written
words of the prompt: "[SOS] v_1 .. v_M [CLASS] ." (class token at the end) or with the class in the middle; one shared
context or class-specific contexts (csc); random init N(0, 0.02) or a phrase's embeddings ("a photo of a").
Each step runs the frozen text tower forward and backward once for all C prompts; the image features of the step are
a random cached augmented view per image (`views/global`). No image encoder is built.
Defaults from the paper: SGD lr 0.002 (momentum 0.9, weight decay 5e-4), batch 32, cosine schedule after one warm-up
epoch at a constant 1e-5, epochs by shots (50 for 1 shot, 100 for 2-4, 200 for 8-16; 50 at every shot count on
ImageNet; `epochs` > 0 overrides), Dassl's cosine stepped once per epoch, the
model's logit scale; the last epoch is kept (Dassl's default, which CoOp's scripts use).
"""

from __future__ import annotations

from typing import Any, Unpack

import torch

from pipeline.head_params.coop import REQUIRES, RUNS, CoOpParams
from pipeline.heads.base import Shapes
from pipeline.heads.inputs import FitData, TextReader
from pipeline.heads.loop import Schedule, train
from pipeline.heads.prompted import EncoderHead, TextContext, context_shapes, epochs_by_shots, init_context, relayout
from pipeline.heads.registry import register_head
from pipeline.prompts.text import TextTower


@register_head("coop")
class CoOp(EncoderHead):
    Params = CoOpParams
    validation_free = (("keep", "last"),)  # its authors' choice without val
    requires = REQUIRES
    runs = RUNS
    novel_classes = True  # a shared context fits any class name (csc cannot)

    context: TextContext

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        self.context = TextContext(shapes["classes"], shapes["n_ctx"], shapes["width"], shapes["length"],
                                   self.params.csc)
        self.register_buffer("logit_scale", torch.zeros(()))

    def tower(self) -> TextTower:
        return TextTower(self.encoder(self.device()))

    def fit(self, data: FitData) -> CoOp:
        self.start(data)
        train(self, data, self.schedule(data))
        return self

    def start(self, data: FitData, dim: int | None = None) -> TextTower:
        """Bind the cache's encoder, seed, lay out the prompts and initialise the context (no training yet); `dim`,
        the image feature size, for a subclass whose setup needs it."""
        self.bind(data.train.provenance["encoder"], data.train.build.get("sources"))
        tower, tokenizer = TextTower(self.encoder(data.device)), self.tokenizer(data.device)
        torch.manual_seed(data.seed)
        self.initial_context(data, tower, tokenizer, dim)
        self.logit_scale.fill_(data.text.logit_scale)
        return tower

    def initial_context(self, data: FitData, tower: TextTower, tokenizer: Any, dim: int | None) -> None:
        """Set the head up on the data's device with CoOp's prompt layout and initial context (ProGrad: its own)."""
        p = self.params
        sizes = context_shapes(tower, tokenizer, p.n_ctx, p.ctx_init)
        sizes["classes"] = data.n_classes
        if dim is not None:
            sizes["dim"] = dim
        self.setup(**sizes)
        self.to(data.device)
        init_context(self.context, tower, tokenizer, list(data.text.classnames), p.class_token_position, p.ctx_init,
                     p.init_std)

    def schedule(self, data: FitData) -> Schedule:
        """Dassl's SGD: one constant warm-up epoch, cosine stepped per epoch, epochs by shots unless set."""
        p = self.params
        epochs = p.epochs or epochs_by_shots(data.train.provenance["split"]["shots"], data.dataset_layout)
        return Schedule("sgd", p.lr, p.weight_decay, epochs, p.batch_size, p.warmup_epochs, p.warmup_lr,
                        keep=p.keep, min_steps=p.min_steps, lr_schedule="dassl")

    def retarget(self, text: TextReader) -> None:
        """The learned context in the prompts of other class names (CoCoOp's base-to-novel for CoOp)."""
        relayout(self.context, self.tokenizer(self.device()), list(text.classnames), self.params.class_token_position)
        self.shapes["classes"] = len(text.classnames)

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        text = self.context.features(self.tower())  # [C, D]
        return self.logit_scale * batch["global"] @ text.T  # [B, D] x [D, C] -> [B, C]

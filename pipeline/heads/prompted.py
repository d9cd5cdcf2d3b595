"""What prompt learners share: the frozen encoder they run in stage 2, rebuilt from the cache's provenance, and
CoOp's learnable text context.

A prompt learner saves only its prompts and small modules; the frozen encoder is rebuilt (same weights, checked by
`rebuild_encoder`) from the source recorded in head.json when the head is loaded for stage 3.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.backbone.frozen import encoder_source, rebuild_encoder
from pipeline.backbone.model import ClipModel, Encoder
from pipeline.errors import NotApplicable
from pipeline.heads.base import Head, Shapes
from pipeline.heads.inputs import SplitReader
from pipeline.heads.loop import epochs_by_shots  # noqa: F401  (the prompt learners' schedule, re-exported)
from pipeline.heads.maths import normalize
from pipeline.prompts.text import PromptLayout, TextTower, phrase_embedding, prompt_layout


class EncoderHead(Head):
    """A head that runs frozen encoder parts; `encoder(device)` builds them once per process."""

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.source: dict[str, Any] = {}  # encoder_source() of the cache the head was fitted on

    def bind(self, provenance: dict[str, Any], sources: dict[str, str] | None = None,
             encoder: Encoder | None = None) -> None:
        """Record the encoder a cache was made with (its `encoder` provenance and the files' last known paths, from
        its build record; called at the start of fit). An already built `encoder` of that source may be handed over
        (benchmarks) instead of being rebuilt on first use."""
        self.source = encoder_source(provenance, sources)
        self.__dict__["_encoder"] = encoder

    def encoder(self, device: torch.device) -> ClipModel:
        """The frozen open_clip model (eval, no grad) on `device`."""
        model = self.__dict__.get("_encoder")
        if model is None:
            model = rebuild_encoder(self.source, device)
            self.__dict__["_encoder"] = model
        return model.model.to(device)

    def tokenizer(self, device: torch.device) -> Any:
        self.encoder(device)
        return self.__dict__["_encoder"].tokenizer

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "encoder": self.source}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.source = dict(state["encoder"])


class TowerTextHead(EncoderHead):
    """A head whose class features come out of the text tower with learned parts inside it (prompts, adapters):
    `scores` runs the tower once per split instead of once per row batch."""

    def compute_text(self) -> torch.Tensor:
        """Normalised class features [C, D]."""
        raise NotImplementedError

    def text_features(self) -> torch.Tensor:
        kept = self.__dict__.get("_text")
        return kept if kept is not None else self.compute_text()

    @torch.no_grad()
    def scores(self, split: SplitReader) -> torch.Tensor:
        self.eval()
        self.__dict__["_text"] = self.compute_text()
        try:
            return super().scores(split)
        finally:
            self.__dict__.pop("_text", None)


def stored_late_tokens(split: SplitReader) -> int:
    """The k of the late tokens a cache file holds (encode.features.late_tokens)."""
    return int(split.provenance["features"].get("late_tokens", 0))


class TextContext(nn.Module):
    """CoOp's context: n_ctx learnable vectors (shared, or one set per class) placed in every class prompt."""

    ctx: torch.Tensor  # [n_ctx, W] shared, or [C, n_ctx, W] class-specific
    ids: torch.Tensor  # [C, L] prompt token ids
    slots: torch.Tensor  # [C, n_ctx] positions of the context in each prompt

    def __init__(self, classes: int, n_ctx: int, width: int, length: int, csc: bool) -> None:
        super().__init__()
        self.ctx = nn.Parameter(torch.zeros(classes, n_ctx, width) if csc else torch.zeros(n_ctx, width))
        self.register_buffer("ids", torch.zeros(classes, length, dtype=torch.long))  # [C, L] prompt token ids
        self.register_buffer("slots", torch.zeros(classes, n_ctx, dtype=torch.long))  # [C, n_ctx] context positions

    def features(self, tower: TextTower) -> torch.Tensor:
        """Normalised class features [C, D] of the prompts with the current context.

        Without grad (validation, scoring) the result is kept until the context changes (its version counter moves
        with every optimiser step and load), so scoring a split runs the text tower once, not once per row batch.
        """
        if not torch.is_grad_enabled():
            key = (self.ctx._version, self.ctx.device)
            kept = self.__dict__.get("_kept")
            if kept is None or kept[0] != key:
                self.__dict__["_kept"] = kept = (key, self._features(tower))
            return kept[1]
        return self._features(tower)

    def _features(self, tower: TextTower) -> torch.Tensor:
        return normalize(tower.encode(self.prompts(self.words(tower)), self.ids))  # [C, D]

    def lay_out(self, layout: PromptLayout) -> None:
        """Use these prompts (their ids and context slots: other class names, say); the learned vectors stay."""
        self.ids = layout.ids.to(self.ids.device)  # [C', L]
        self.slots = layout.slots.to(self.slots.device)  # [C', n_ctx]
        self.__dict__.pop("_kept", None)

    def slot_words(self, tower: TextTower) -> torch.Tensor:
        """The word embeddings [n_ctx, W] the first prompt holds in its slots (a phrase's own, to start from)."""
        return self.words(tower)[0, self.slots[0]]

    def words(self, tower: TextTower) -> torch.Tensor:
        """The frozen word embeddings [C, L, W] of the prompts (the slots hold the filler's)."""
        with torch.no_grad():
            return tower.embed(self.ids)

    def prompts(self, words: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """The prompt embeddings [C, L, W]: `words` with a context in its slots, the learned one by default (`ctx`:
        [n_ctx, W] shared, or [C, n_ctx, W] one per class)."""
        ctx = self.ctx if ctx is None else ctx
        classes, n_ctx = self.slots.shape
        ctx = ctx if ctx.dim() == 3 else ctx.unsqueeze(0).expand(classes, -1, -1)  # [C, n_ctx, W]
        rows = torch.arange(classes, device=words.device).repeat_interleave(n_ctx)  # [C*n_ctx]
        values = ctx.reshape(-1, ctx.shape[-1]).to(words.dtype)  # [C, n_ctx, W] -> [C*n_ctx, W]
        return words.index_put((rows, self.slots.flatten()), values)  # [C, L, W], context in its slots


def relayout(context: TextContext, tokenizer: Any, classnames: list[str], position: str) -> None:
    """Point a shared context at other class names (base-to-novel): new prompt ids and slots, the same vectors."""
    if context.ctx.dim() == 3:
        raise NotApplicable("class-specific contexts (csc) cannot score classes they were not fitted on")
    context.lay_out(prompt_layout(tokenizer, classnames, context.slots.shape[1], position))


def context_shapes(tower: TextTower, tokenizer: Any, n_ctx: int, ctx_init: str) -> Shapes:
    """n_ctx (the phrase's token count when initialised from words), token width and context length."""
    if ctx_init:
        n_ctx = int(phrase_embedding(tower, tokenizer, ctx_init).shape[0])
    return {"n_ctx": n_ctx, "width": tower.width, "length": int(tokenizer(["x"]).shape[1])}


def init_context(context: TextContext, tower: TextTower, tokenizer: Any, classnames: list[str], position: str,
                 ctx_init: str, std: float) -> None:
    """Fill the prompt layout and the initial context: N(0, std) (CoOp's random init) or the phrase's embeddings."""
    n_ctx = context.slots.shape[1]
    context.lay_out(prompt_layout(tokenizer, classnames, n_ctx, position))
    with torch.no_grad():
        if ctx_init:
            phrase = phrase_embedding(tower, tokenizer, ctx_init)  # [n_ctx, W]
            context.ctx.copy_(phrase if context.ctx.dim() == 2 else phrase.expand_as(context.ctx))
        else:
            nn.init.normal_(context.ctx, std=std)

"""The frozen text tower fed token embeddings, and where CoOp's learnable context goes in each class prompt.

Three kinds of open_clip text tower take embeddings:
- `CLIP` (the model owns token_embedding / transformer / ln_final / text_projection) and `CustomTextCLIP` with a
  `TextTransformer`: we add the positional embedding, run the blocks with the model's causal (and pad) mask, the final
  norm, the model's own pool (argmax / eos / first / last) on the token ids, and the projection, exactly as
  `encode_text` does for ids;
- `CustomTextCLIP` with an `HFTextEncoder` (roberta-ViT-B-32, xlm-roberta-base-ViT-B-32...): the Hugging Face model
  takes `inputs_embeds` (it adds its own positions), then open_clip's pooler and projection.
Towers that append a class token (CoCa's `cls_emb`) cannot take a context this way and are refused with a clear error.

Prompt layout, tokenizer-agnostic: we tokenize "<name>." with the model's own tokenizer, find how many special tokens
open it (by comparing "" with "."), and insert n_ctx slots after them (class token at the end: "[SOS] X..X name .")
or around the name ("middle": half before, half after). Slots hold a filler id (the token of "X", never padding, end
or a maximal id) so id-based pools and pad masks behave as for the hand-written prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from open_clip.transformer import TextTransformer, text_global_pool
from torch import nn

from pipeline.backbone.model import ClipModel
from pipeline.errors import ClipCacheError


@dataclass(frozen=True)
class PromptLayout:
    ids: torch.Tensor  # [C, L] token ids of each class prompt, context slots holding a filler id
    slots: torch.Tensor  # [C, n_ctx] positions of the context slots in each prompt


def _used(row: torch.Tensor) -> int:
    """Tokens before the trailing padding of one tokenized row [L]."""
    pad = row[-1]
    n = row.shape[0]
    while n > 0 and row[n - 1] == pad:
        n -= 1
    return n


def _prefix(empty: torch.Tensor, dot: torch.Tensor) -> int:
    """How many special tokens open every prompt: where the tokens of "" and "." first differ."""
    return int(next(i for i in range(empty.shape[0]) if empty[i] != dot[i]))


def prompt_layout(tokenizer: Callable, classnames: list[str], n_ctx: int, position: str) -> PromptLayout:
    """Token ids of "[prefix] ctx name ." ('end') or "[prefix] ctx/2 name ctx/2 ." ('middle') for every class."""
    if position not in ("end", "middle"):
        raise ClipCacheError(f"class_token_position must be 'end' or 'middle', got {position!r}")
    empty, dot, filler_row = tokenizer(["", ".", "X"])  # each [L]
    length, prefix = empty.shape[0], _prefix(empty, dot)
    filler = filler_row[prefix]
    rows, slots = [], []
    for name, row in zip(classnames, tokenizer([f"{name.replace('_', ' ')}." for name in classnames]), strict=True):
        used = _used(row)
        name_len = used - _used(dot)  # tokens of the name alone ('.' and the specials cancel)
        if used + n_ctx > length:
            raise ClipCacheError(f"class name {name!r} with n_ctx={n_ctx} does not fit the text context of {length} "
                                 "tokens")
        before = n_ctx if position == "end" else n_ctx // 2
        content = row[prefix:used]  # name tokens, '.', closing specials
        pieces = [row[:prefix], filler.repeat(before), content[:name_len], filler.repeat(n_ctx - before),
                  content[name_len:]] if position == "middle" else [row[:prefix], filler.repeat(n_ctx), content]
        ids = torch.cat(pieces)
        rows.append(torch.cat([ids, row[used:][: length - ids.shape[0]]]))  # pad back to L
        first = list(range(prefix, prefix + before))
        second = list(range(prefix + before + name_len, prefix + n_ctx + name_len)) if position == "middle" else []
        slots.append(first + second)
    return PromptLayout(torch.stack(rows).long(), torch.tensor(slots, dtype=torch.long))


def leading_layout(tokenizer: Callable, classnames: list[str], n_ctx: int, phrase: str) -> PromptLayout:
    """MaPLe's and IVLP's prompts: "<phrase> <name>." whose first n_ctx tokens are the context slots (the rest of the
    phrase stays fixed words), as their PromptLearner with CTX_INIT and N_CTX <= 4."""
    empty, row = tokenizer(["", phrase])
    if _used(row) - _used(empty) < n_ctx:
        raise ClipCacheError(f"the initial phrase {phrase!r} has fewer than n_ctx={n_ctx} tokens")
    return written_layout(tokenizer, classnames, n_ctx, phrase, phrase)


def phrase_layout(tokenizer: Callable, classnames: list[str], n_ctx: int, phrase: str) -> PromptLayout:
    """ProGrad's prompts: "X .. X <phrase> <name>." with n_ctx minus the phrase's word count X's in front; the first
    n_ctx tokens after the opening specials are the context slots. Where the phrase has more tokens than words
    ("pet," is two), its last tokens fall after the slots and stay fixed words, as in their code."""
    words = len(phrase.split(" "))
    if words > n_ctx:
        raise ClipCacheError(f"n_ctx={n_ctx} is fewer than the {words} words of the initial phrase {phrase!r}")
    return written_layout(tokenizer, classnames, n_ctx, " ".join(["X"] * (n_ctx - words) + [phrase]), phrase)


def written_layout(tokenizer: Callable, classnames: list[str], n_ctx: int, head: str, phrase: str) -> PromptLayout:
    """Prompts "<head> <name>." whose first n_ctx tokens after the opening specials are the context slots."""
    empty, dot = tokenizer(["", "."])
    length, prefix = empty.shape[0], _prefix(empty, dot)
    ids = tokenizer([f"{head} {name.replace('_', ' ')}." for name in classnames])  # [C, L]
    for name, row in zip(classnames, ids, strict=True):
        if _used(row) >= length:
            raise ClipCacheError(f"class name {name!r} with the phrase {phrase!r} and n_ctx={n_ctx} does not fit the "
                                 f"text context of {length} tokens")
    slots = torch.arange(prefix, prefix + n_ctx).repeat(len(classnames), 1)  # [C, n_ctx]
    return PromptLayout(ids.long(), slots)


def phrase_embedding(tower: TextTower, tokenizer: Callable, phrase: str) -> torch.Tensor:
    """Token embeddings [m, W] of a phrase's own tokens (CoOp's context initialised from words)."""
    empty, dot, row = tokenizer(["", ".", phrase])
    prefix = _prefix(empty, dot)
    m = _used(row) - _used(empty)
    if m < 1:
        raise ClipCacheError(f"ctx_init {phrase!r} has no tokens")
    return tower.embed(row[prefix : prefix + m].unsqueeze(0).to(tower.device))[0]  # [1, m, W] -> [m, W]


class TextTower:
    """A frozen open_clip text tower that encodes prompts given as token embeddings (not an nn.Module on purpose:
    its weights are the frozen model's, never saved with a head)."""

    def __init__(self, model: ClipModel) -> None:
        text = getattr(model, "text", None)
        self.kind = "hf" if text is not None and hasattr(text, "transformer") and hasattr(text, "pooler") else "clip"
        # the part that owns the tower: open_clip's TextTransformer or HFTextEncoder, or the CLIP model itself
        self.src: Any = text if text is not None else model
        if self.kind == "clip" and isinstance(self.src, TextTransformer) and self.src.cls_emb is not None:
            raise ClipCacheError(f"the text tower of {type(model).__name__} appends a class token (CoCa style); "
                                 "CoOp's context cannot be fed to it")
        if self.kind == "clip" and not hasattr(self.src, "token_embedding"):
            raise ClipCacheError(f"text tower {type(self.src).__name__} does not take token embeddings; CoOp needs an "
                                 "open_clip TextTransformer or a Hugging Face text tower")
        self.device = next(model.parameters()).device

    @property
    def width(self) -> int:
        return int(self.embed(torch.zeros(1, 1, dtype=torch.long, device=self.device)).shape[-1])

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings [C, L, W] of ids [C, L] (no positions)."""
        if self.kind == "hf":
            return self.src.transformer.get_input_embeddings()(ids)
        return self.src.token_embedding(ids)

    def encode(self, embeds: torch.Tensor, ids: torch.Tensor,
               blocks: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] | None = None) -> torch.Tensor:
        """Text features [C, D] (not normalised) of prompts given as embeddings [C, L, W] with their ids [C, L].

        `blocks(x, mask)`, where given, replaces the tower's transformer (x [C, L, W] batch first): adapters."""
        src = self.src
        if blocks is not None and self.kind == "hf":
            raise ClipCacheError("adapters inside the text tower need an open_clip text transformer, not a Hugging "
                                 "Face tower")
        if self.kind == "hf":
            mask = (ids != src.config.pad_token_id).long()  # [C, L]
            out = src.transformer(inputs_embeds=embeds, attention_mask=mask)
            return src.proj(src.pooler(out, mask))  # [C, width] -> [C, D]
        length = ids.shape[1]
        x = embeds + src.positional_embedding[:length].to(embeds.dtype)  # [C, L, W]
        mask = src.attn_mask
        if getattr(src, "use_pad_mask", False):
            mask = src._build_additive_mask(ids, length, x.dtype)
            mask = mask if src.attn_mask is None else src.attn_mask[:length, :length].unsqueeze(0) + mask
        x = src.ln_final(blocks(x, mask) if blocks is not None else src.transformer(x, attn_mask=mask))  # [C, L, W]
        pool = getattr(src, "text_pool_type", None) or getattr(src, "pool_type", "argmax")
        eos = getattr(src, "text_eos_id", None) or getattr(src, "eos_id", None)
        pooled = text_global_pool(x, ids, pool, eos_token_id=eos)  # [C, W]
        proj = src.text_projection
        if proj is None:
            return pooled
        return proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj  # [C, W] x [W, D] -> [C, D]

"""ProGrad: CoOp whose gradient step never goes against zero-shot CLIP's knowledge (prompt-aligned gradient).

Paper: Zhu, Niu, Han, Wu, Zhang, "Prompt-aligned Gradient for Prompt Tuning", ICCV 2023, arXiv 2205.14865. Code:
github BeierZhu/Prompt-align at 1b762036cbe97ecf504e17bb94d89191679e4e6e: ProGrad.public/trainers/prograd.py
(PromptLearner, CUSTOM_TEMPLATES, ProGradLoss, ProGrad.forward_backward), Dassl.ProGrad.pytorch/dassl/engine/
trainer.py (`prograd_backward_and_update`), configs/trainers/ProGrad/rn50*.yaml, scripts/prograd.sh and the README.
Per minibatch: the cross-entropy G_xe of the prompted logits and the "KL" term G_kl = -sum_c p0_c log p_c * T^2
(p0: softmax of zero-shot CLIP's logits / T with the data set's hand-crafted prompt; p: the prompted logits / T;
T = 1). Each parameter's gradient of G_xe, g, is projected where it conflicts with G_kl's gradient h:
if cos(g, h) < 0, g <- g - lambda (g . h/|h|) h/|h|; then the optimiser steps on g alone.
Prompts as their PromptLearner with CTX_INIT: the data set's template without " {}." is the initial phrase; the
prompt is "X .. X <phrase> <name>." with n_ctx minus the phrase's word count X's; the first n_ctx tokens are the
learned context, initialised with zeros at the X's and the phrase's token embeddings after them.
Defaults (their few-shot scripts and configs): n_ctx 16, the class token at the end, one shared context, lambda 1.0
(the README: 0.8 at 8 and 16 shots on Flowers102, DTD and EuroSAT), SGD lr 0.002 (momentum 0.9, weight decay 5e-4),
batch 32, epochs by shots as CoOp (rn50_ep50 at 1 shot, rn50_ep100 at 2-4, rn50 = 200 at 8-16), one constant
warm-up epoch at 1e-5, Dassl's cosine, the last epoch kept.
Departures: a cached augmented view per image (CoOp's rule here); float32 (their default precision is fp16); the
zero-shot teacher reads the same cached view as the student (theirs encodes the same augmented image with the same
frozen tower); the history's train loss is G_xe. A data set outside their table (textile, folders) uses their
generic template "a photo of a {}.".
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pipeline.errors import ClipCacheError
from pipeline.head_params.prograd import TEMPLATE_INIT, ProGradParams
from pipeline.heads.coop import CoOp
from pipeline.heads.inputs import FitData, TextReader
from pipeline.heads.loop import train
from pipeline.heads.maths import normalize
from pipeline.heads.registry import register_head
from pipeline.prompts.text import TextTower, phrase_layout

# their CUSTOM_TEMPLATES (trainers/prograd.py) by our layout name; five differ from CoOp's
TEMPLATES = {"oxford_pets": "a type of pet, a photo of a {}.", "oxford_flowers": "a type of flower, a photo of a {}.",
             "fgvc_aircraft": "a type of aircraft, a photo of a {}.", "dtd": "a texture of {}.",
             "eurosat": "a centered satellite photo of {}.", "stanford_cars": "a photo of a {}.",
             "food101": "a type of food, a photo of {}.", "sun397": "a photo of a {}.",
             "caltech101": "a photo of a {}.", "ucf101": "a photo of a person doing {}.",
             "imagenet": "a photo of a {}."}
GENERIC = "a photo of a {}."


def template_of(layout: str) -> str:
    return TEMPLATES.get(layout, GENERIC)


@register_head("prograd")
class ProGrad(CoOp):
    Params = ProGradParams

    def __init__(self, params: ProGradParams) -> None:
        super().__init__(params)
        if params.class_token_position != "end" and params.ctx_init:
            raise ClipCacheError("heads.prograd.class_token_position must be 'end' with a phrase ctx_init (their "
                                 f"phrase prompts end with the class name), got {params.class_token_position!r}")
        self.phrase = ""  # the initial phrase the prompts were laid out with ('' for CoOp's layout)

    def fit(self, data: FitData) -> ProGrad:
        p = self.params
        template = template_of(data.dataset_layout)
        self.phrase = template.replace(" {}.", "") if p.ctx_init == TEMPLATE_INIT else p.ctx_init
        self.start(data)
        teacher = self.zero_shot_text(data, template)  # [C, D]
        train(self, data, self.schedule(data), backward=lambda batch: self.projected_backward(batch, teacher))
        return self

    def initial_context(self, data: FitData, tower: TextTower, tokenizer: Any, dim: int | None) -> None:
        """Their prompt layout and initial context: zeros at the X's, the phrase's token embeddings after them (CoOp's
        without a phrase)."""
        if not self.phrase:
            super().initial_context(data, tower, tokenizer, dim)
            return
        p = self.params
        layout = phrase_layout(tokenizer, list(data.text.classnames), p.n_ctx, self.phrase)
        self.setup(classes=data.n_classes, n_ctx=p.n_ctx, width=tower.width, length=int(layout.ids.shape[1]))
        self.to(data.device)
        self.context.lay_out(layout)
        with torch.no_grad():
            ctx = self.context.slot_words(tower).clone()  # [n_ctx, W]
            ctx[: p.n_ctx - len(self.phrase.split(" "))] = 0.0
            self.context.ctx.copy_(ctx if self.context.ctx.dim() == 2 else ctx.expand_as(self.context.ctx))

    def zero_shot_text(self, data: FitData, template: str) -> torch.Tensor:
        """[C, D] zero-shot CLIP's normalised class features of their hand-crafted prompt, by the frozen tower."""
        tokenizer = self.tokenizer(data.device)
        prompts = [template.format(name.replace("_", " ")) for name in data.text.classnames]
        with torch.no_grad():
            return normalize(self.encoder(data.device).encode_text(tokenizer(prompts).to(data.device)).float())

    def projected_backward(self, batch: dict[str, torch.Tensor], teacher: torch.Tensor) -> torch.Tensor:
        """Fill the context's gradient with G_xe's, projected off G_kl's where they conflict; return G_xe."""
        p = self.params
        text = self.context.features(self.tower())  # [C, D]
        logits = self.logit_scale * batch["global"] @ text.T  # [B, D] x [D, C] -> [B, C]
        with torch.no_grad():
            zero_shot = self.logit_scale * batch["global"] @ teacher.T  # [B, D] x [D, C] -> [B, C]
        t = p.temperature
        xe = F.cross_entropy(logits, batch["labels"])
        kl = -(F.softmax(zero_shot / t, dim=-1) * F.log_softmax(logits / t, dim=-1) * t * t).sum(1).mean()
        params = [q for q in self.parameters() if q.requires_grad]
        kl_grads = torch.autograd.grad(kl, params, retain_graph=True)
        xe_grads = torch.autograd.grad(xe, params)
        for param, g, h in zip(params, xe_grads, kl_grads, strict=True):
            param.grad = project(g, h, p.projection)
        return xe.detach()

    def retarget(self, text: TextReader) -> None:
        """The learned context in other class names' prompts, laid out as it was fitted."""
        if not self.phrase or self.context.ctx.dim() == 3:
            super().retarget(text)  # CoOp's layout; refuses class-specific contexts
            return
        self.context.lay_out(phrase_layout(self.tokenizer(self.device()), list(text.classnames), self.params.n_ctx,
                                           self.phrase))
        self.shapes["classes"] = len(text.classnames)

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "phrase": self.phrase}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.phrase = str(state["phrase"])


def project(g: torch.Tensor, h: torch.Tensor, strength: float) -> torch.Tensor:
    """g minus `strength` times its component along h, where g and h point apart (cos < 0); g unchanged otherwise,
    or where either is zero (their cosine is NaN there and the test fails)."""
    g_norm, h_norm = torch.linalg.norm(g), torch.linalg.norm(h)
    if g_norm == 0 or h_norm == 0:
        return g
    unit = h / h_norm
    if torch.dot((g / g_norm).flatten(), unit.flatten()) >= 0:
        return g
    return g - strength * torch.dot(g.flatten(), unit.flatten()) * unit

"""CAVPT: class-aware visual prompts in the last blocks of the ViT, trained on cached late tokens.

Paper: Xing et al., "Dual Modality Prompt Tuning for Vision-Language Pre-Trained Model" (docs/papers/cavpt.txt),
eqs. 9-10. On top of `vpt_late` (VPT-deep in the last k blocks), each of the last `cavpt_layers` blocks l also gets
K_N class-aware prompts:
- the top-K_N classes of the image by zero-shot score (the cached global feature of the same view against the
  hand-crafted classifier), their hand-crafted text features g_j through a two-layer MLP -> queries q_j [W];
- cross-attention of the queries over the layer's class token s_l (key and value), LayerNorm with the residual s_l,
  then a linear projection: p_j = LP(LN(Attn(q_j, s_l) + s_l));
- an auxiliary K-way classifier on the K_N LayerNorm outputs, cross-entropy against the ground truth for the output
  whose class is the label and against the uniform 1/K for the others (eq. 10 "as the paper writes it"), weighted
  by `aux_weight` and added to the main loss. `forward_aux` returns the logits of a minibatch together with the
  auxiliary logits and top classes (`ClassAwareOutputs`) that `loss` needs.
Where the paper is silent or degenerate we chose, and say so:
- keys: with the class token as the only key, the softmax over keys is identically 1 and every query would give the
  same prompt; the keys and values are the class token together with the layer's P visual prompts
  (`keys: class_token`), the authors' released code does the same with its own learned tokens. `keys: all_tokens`
  attends over the whole sequence (class, prompts and patches), as the journal version does.
- the MLP is Linear(D, W) - GELU - Linear(W, W); attention is single-head scaled dot product;
- default placement: the last block only (k = 1, cavpt_layers = 1), the paper's "integrating the CAVPT module into
  the last layer"; K_N = 5, its best value on half the data sets (Table 3).
With `text_prompts: true` the classifier is CoOp's learned context: the paper's dual-modality VLP-CLIP-CAVPT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Unpack

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ClipCacheError
from pipeline.head_params.cavpt import CAVPTParams
from pipeline.heads.base import Shapes
from pipeline.heads.inputs import FitData
from pipeline.heads.registry import register_head
from pipeline.heads.vpt_late import VPTLate
from pipeline.prompts.vision import PromptFn


class ClassAwarePrompts(nn.Module):
    """One layer's module: text features of the top classes -> class-aware prompts and auxiliary logits."""

    def __init__(self, dim: int, width: int, classes: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, width)
        self.classifier = nn.Linear(width, classes, bias=False)

    def forward(self, text: torch.Tensor, keys: torch.Tensor, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """text [B, K_N, D], keys [B, M, W], class token [B, W] -> prompts [B, K_N, W], aux logits [B, K_N, C]."""
        queries = self.mlp(text)  # [B, K_N, W]
        scores = queries @ keys.transpose(1, 2) / math.sqrt(keys.shape[-1])  # [B, K_N, W] x [B, W, M] -> [B, K_N, M]
        attended = scores.softmax(-1) @ keys  # [B, K_N, M] x [B, M, W] -> [B, K_N, W]
        out = self.norm(attended + cls.unsqueeze(1))  # [B, K_N, W]
        return self.proj(out), self.classifier(out)


@dataclass
class ClassAwareOutputs:
    """What the class-aware layers produce for one minibatch besides the prompts: what eq. 10 is computed from."""

    top: torch.Tensor  # [B, K_N] the classes whose text features became prompts, by zero-shot score
    aux: list[torch.Tensor] = field(default_factory=list)  # [B, K_N, C] auxiliary logits per class-aware layer


@register_head("cavpt")
class CAVPT(VPTLate):
    Params = CAVPTParams
    class_aware: nn.ModuleList  # of ClassAwarePrompts, one per class-aware block

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        p, classes = self.params, shapes["classes"]
        self.class_aware = nn.ModuleList(ClassAwarePrompts(shapes["dim"], shapes["width"], classes)
                                      for _ in range(p.cavpt_layers))

    def fit(self, data: FitData) -> CAVPT:
        p = self.params
        if p.cavpt_layers < 1 or (p.k and p.cavpt_layers > p.k) or p.top_k < 0 or p.depth != "deep" \
                or p.keys not in ("class_token", "all_tokens"):
            raise ClipCacheError(f"heads.cavpt: need 1 <= cavpt_layers <= k ({p.cavpt_layers}, {p.k}), top_k >= 0 "
                                 f"({p.top_k}; 0: every class), depth 'deep' ({p.depth!r}) and keys 'class_token' or "
                                 f"'all_tokens' ({p.keys!r})")
        super().fit(data)
        return self

    def top_classes(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, K_N] classes ranked by zero-shot score of the cached (view's) global feature."""
        zero_shot = batch["global"] @ self.class_weights.T  # [B, D] x [D, C] -> [B, C]
        top_k = self.params.top_k or zero_shot.shape[1]  # 0: every class (the paper's FULL)
        return zero_shot.topk(min(top_k, zero_shot.shape[1]), dim=-1).indices

    def class_aware_prompts(self, batch: dict[str, torch.Tensor]) -> tuple[PromptFn, ClassAwareOutputs]:
        """Visual prompts, and class-aware prompts in the last `cavpt_layers` blocks; and the outputs whose `aux`
        list the prompt function fills, layer by layer, as LateViT runs the blocks."""
        p = self.params
        top = self.top_classes(batch)  # [B, K_N]
        text = self.class_weights[top]  # [B, K_N, D]
        size = top.shape[0]
        outputs = ClassAwareOutputs(top)
        first = self.shapes["blocks"] - p.cavpt_layers

        def prompts(i: int, x: torch.Tensor) -> torch.Tensor:
            visual = self.prompts[i].unsqueeze(0).expand(size, -1, -1)  # [B, P, W]
            if i < first:
                return visual
            keys = torch.cat([x[:, :1], visual] if p.keys == "class_token" else [x, visual], dim=1)  # [B, M, W]
            aware, aux = self.class_aware[i - first](text, keys.to(visual.dtype), x[:, 0].to(visual.dtype))
            outputs.aux.append(aux)
            return torch.cat([visual, aware], dim=1)  # [B, P + K_N, W]

        return prompts, outputs

    def batch_prompts(self, batch: dict[str, torch.Tensor]) -> PromptFn:
        """The prompt function of scoring: the auxiliary outputs are not needed."""
        return self.class_aware_prompts(batch)[0]

    def forward_aux(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ClassAwareOutputs]:
        """Logits [B, C] of a minibatch, and the class-aware layers' auxiliary logits and top classes."""
        prompts, outputs = self.class_aware_prompts(batch)
        return self.class_logits(self.prompted_features(batch["late_tokens"], prompts)), outputs

    def aux_loss(self, outputs: ClassAwareOutputs, labels: torch.Tensor) -> torch.Tensor:
        """Eq. 10: cross-entropy of each auxiliary output against the label for the output of the true class and
        against the uniform 1/C for the others, averaged over layers, images and outputs."""
        aux = torch.stack(outputs.aux)  # [layers, B, K_N, C]
        classes = aux.shape[-1]
        hit = (outputs.top == labels.unsqueeze(1)).unsqueeze(-1)  # [B, K_N, 1]: output of the true class
        target = torch.where(hit, F.one_hot(labels, classes).unsqueeze(1).float(),
                             torch.full_like(aux[0], 1.0 / classes))  # [B, K_N, C]
        return -(target * aux.log_softmax(-1)).sum(-1).mean()

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, outputs = self.forward_aux(batch)
        main = F.cross_entropy(logits, batch["labels"])
        return main + self.params.aux_weight * self.aux_loss(outputs, batch["labels"])

"""CLIP-LoRA: rank-2 adapters on the query, key and value projections of every block of both towers.

Paper: Zanella, Ben Ayed, "Low-Rank Few-Shot Adaptation of Vision-Language Models", CVPRW 2024, arXiv 2405.18541.
Code: github MaxZanella/CLIP-LoRA at 358f0d7361f59e66c0b2d0b672a3dafb143a759b: lora.py (run_lora), loralib/layers.py
(LinearLoRA, PlainMultiheadAttentionLoRA), loralib/utils.py (apply_lora, INDEX_POSITIONS_*), run_utils.py (the
arguments' defaults), main.py (logit scale 100), datasets/*.py (each data set's first template).
Their fixed hyper-parameters for every data set and shot count: r = 2, alpha = 1 (scale alpha / sqrt(r)), dropout
0.25 on the adapter's input, q, k and v of all blocks ('all') of both towers ('both'), A in nn.Linear's default
initialisation and B = 0 (training starts at zero-shot CLIP), AdamW (lr 2e-4, weight decay 1e-2, betas 0.9 / 0.999),
batch 32, 500 x shots iterations (the loader reshuffled every pass, its last minibatch short), cosine annealing per
iteration to 1e-6, logit scale 100, the cross-entropy of the adapted image features against the adapted text
features of the data set's first template (CoOp's template for the 11 data sets: our cached 'coop' set), no
validation, the last iteration kept.
Here the image tower starts from the tokens stage 1 cached entering block 0 (`encode.features.late_tokens` = the
tower's block count): every block runs with its adapters, then the tower's pool and projection; no image is decoded.
Departures: one cached augmented view per image per step (they crop at scale (0.08, 1) and flip every step); float32
(they train under fp16 autocast); attention through torch's scaled_dot_product_attention on the block's own weights
(as theirs); the adapters are created in our order (text blocks, then vision, q/k/v each), so the random A differ
from theirs for one seed, not in distribution.
"""

from __future__ import annotations

from typing import Any, Unpack

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.backbone.blocks import n_blocks
from pipeline.backbone.image import tower_kind
from pipeline.data.templates import resolve_template_set
from pipeline.errors import ClipCacheError, NotApplicable
from pipeline.head_params.clip_lora import REQUIRES, RUNS, CLIPLoRAParams
from pipeline.heads.base import Shapes, recorded_val_accuracy
from pipeline.heads.inputs import FitData, TextReader
from pipeline.heads.loop import view_batches
from pipeline.heads.maths import normalize
from pipeline.heads.prompted import TowerTextHead, stored_late_tokens
from pipeline.heads.registry import register_head
from pipeline.prompts.lora import MATRICES, BlockAdapters, check_blocks, run_adapted
from pipeline.prompts.text import TextTower

ENCODERS = ("both", "vision", "text")


@register_head("clip_lora")
class CLIPLoRA(TowerTextHead):
    Params = CLIPLoRAParams
    validation_free = ()  # validation-free as it is (reads no val)
    requires = REQUIRES
    runs = RUNS
    batch_rows = 256  # token sequences are large
    novel_classes = True  # the adapters are class-agnostic: other class names get their own prompts

    vision_adapters: nn.ModuleList  # of BlockAdapters, one per image block ('both', 'vision')
    text_adapters: nn.ModuleList  # of BlockAdapters, one per text block ('both', 'text')
    ids: torch.Tensor  # [C, L] the class prompts' token ids
    logit_scale: torch.Tensor

    def __init__(self, params: CLIPLoRAParams) -> None:
        super().__init__(params)
        if params.encoder not in ENCODERS:
            raise ClipCacheError(f"heads.clip_lora.encoder must be one of {', '.join(ENCODERS)}, got "
                                 f"{params.encoder!r}")
        if not params.matrices or set(params.matrices) - set(MATRICES) or len(set(params.matrices)) < len(
                params.matrices):
            raise ClipCacheError(f"heads.clip_lora.matrices must be distinct letters among q, k, v, o, got "
                                 f"{params.matrices!r}")
        if params.encoder == "text":
            self.requires = frozenset({"global", "views"})
        self.template = ""  # the template each class prompt was written with

    @property
    def vision(self) -> bool:
        return self.params.encoder in ("both", "vision")

    @property
    def text(self) -> bool:
        return self.params.encoder in ("both", "text")

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        p = self.params
        matrices = tuple(p.matrices)

        def adapters(blocks: int, width: int) -> nn.ModuleList:
            return nn.ModuleList(BlockAdapters(width, matrices, p.r, p.alpha, p.dropout) for _ in range(blocks))

        self.text_adapters = adapters(shapes.get("text_blocks", 0), shapes.get("text_width", 0))  # created first
        self.vision_adapters = adapters(shapes.get("blocks", 0), shapes.get("width", 0))
        self.register_buffer("ids", torch.zeros(shapes["classes"], shapes["length"], dtype=torch.long))
        self.register_buffer("logit_scale", torch.zeros(()))

    def fit(self, data: FitData) -> CLIPLoRA:
        p = self.params
        self.bind(data.train.provenance["encoder"], data.train.build.get("sources"))
        model, tokenizer = self.encoder(data.device), self.tokenizer(data.device)
        tower = TextTower(model)
        shapes: Shapes = {"classes": data.n_classes, "dim": int(data.train.array("global").shape[1]),
                          "length": int(tokenizer(["x"]).shape[1])}
        if self.vision:
            visual = model.visual
            if tower_kind(visual) != "vit":
                raise NotApplicable(f"clip_lora adapts ViT blocks; model {data.train.provenance['encoder']['model']!r} "
                                    f"has a {type(visual).__name__} image tower")
            check_blocks(visual.transformer, "image tower")
            blocks, stored = n_blocks(visual.transformer), stored_late_tokens(data.train)
            if stored < blocks:
                raise ClipCacheError(f"heads.clip_lora adapts every one of the {blocks} image blocks and needs "
                                     f"encode.features.late_tokens: {blocks} (the cache holds {stored}); or set "
                                     "heads.clip_lora.encoder: text")
            shapes["blocks"], shapes["width"], shapes["stored"] = blocks, int(visual.transformer.width), stored
        if self.text:
            check_blocks(tower.src.transformer, "text tower")
            shapes["text_blocks"], shapes["text_width"] = n_blocks(tower.src.transformer), tower.width
        name = resolve_template_set(p.template_set, data.dataset_layout)
        self.template = data.text.provenance["templates"][name][0]
        torch.manual_seed(data.seed)
        self.setup(**shapes)
        self.to(data.device)
        self.ids.copy_(self.prompt_ids(list(data.text.classnames)))
        self.logit_scale.fill_(p.logit_scale or data.text.logit_scale)
        self.train_iterations(data)
        return self

    def prompt_ids(self, classnames: list[str]) -> torch.Tensor:
        """Token ids [C, L] of the template written with each class name."""
        tokenizer = self.tokenizer(self.device())
        return tokenizer([self.template.format(name.replace("_", " ")) for name in classnames]).to(self.device())

    def train_iterations(self, data: FitData) -> None:
        """Their loop: n_iters x shots AdamW steps, cosine per step to eta_min, passes reshuffled, the last kept."""
        p = self.params
        total = p.n_iters * int(data.train.provenance["split"]["shots"])
        if total < 1:
            raise ClipCacheError(f"heads.clip_lora.n_iters must be at least 1, got {p.n_iters!r}")
        params = [q for q in self.parameters() if q.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay, betas=(0.9, 0.999))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total, eta_min=p.eta_min)
        rng = np.random.default_rng(data.seed)
        names = ("late_tokens",) if self.vision else ("global",)
        self.history, done = [], 0
        while done < total:
            self.train()
            losses = []
            for batch in view_batches(data.train, names, p.batch_size, rng, data.device):
                loss = F.cross_entropy(self.batch_scores(batch), batch["labels"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                done += 1
                if done == total:
                    break
            self.history.append({"epoch": len(self.history) + 1, "train_loss": float(np.mean(losses)),
                                 "steps": len(losses), "lr": optimizer.param_groups[0]["lr"]})
        val_acc = recorded_val_accuracy(self, data.val)  # recorded, never used: their loop has no validation
        if val_acc is not None:
            self.history[-1]["val_acc"] = val_acc
        self.selected.update({"epoch": len(self.history), "val_acc": val_acc, "keep": "last", "steps": done})

    def compute_text(self) -> torch.Tensor:
        """Normalised class features [C, D] of the prompts through the (adapted) text tower."""
        tower = TextTower(self.encoder(self.device()))
        embeds = tower.embed(self.ids)  # [C, L, W]
        if not self.text:
            with torch.no_grad():
                return normalize(tower.encode(embeds, self.ids))
        return normalize(tower.encode(embeds, self.ids,
                                      lambda x, mask: run_adapted(tower.src.transformer, x, self.text_adapters, mask)))

    def image_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Normalised image features [B, D]: the adapted blocks on the cached tokens entering block 0, or the cached
        global feature when only the text tower is adapted."""
        if not self.vision:
            return batch["global"]
        visual = self.encoder(self.device()).visual
        x = run_adapted(visual.transformer, batch["late_tokens"], self.vision_adapters)  # [B, 1+HW, W]
        pooled, _ = visual._pool(x)  # [B, W]
        return normalize(pooled @ visual.proj)  # [B, W] x [W, D] -> [B, D]

    def batch_inputs(self) -> tuple[str, ...]:
        return ("late_tokens",) if self.vision else ("global",)

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.logit_scale * self.image_features(batch) @ self.text_features().T  # [B, D] x [D, C] -> [B, C]

    def retarget(self, text: TextReader) -> None:
        """Other class names: their own prompts through the same adapters."""
        self.ids = self.prompt_ids(list(text.classnames))
        self.shapes["classes"] = len(text.classnames)

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "template": self.template}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.template = str(state["template"])


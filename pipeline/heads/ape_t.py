"""APE-T: APE's trained variant: a per-class residual on the refined channels of the text classifier and of the cache
keys, and a trainable weight per cache value.

Paper: Zhu, Zhang, He, Zhou, Wang, Zhao, Gao, "Not All Features Matter: Enhancing Few-shot CLIP with Adaptive Prior
Refinement", ICCV 2023, arXiv 2304.01195. Followed from the authors' code, github yangyangyang127/APE at
70460de74d1e967f8b4d270b3419373694758536: main.py (APE_T), utils.py (APE_Training, cal_criterion,
SmoothCrossEntropy), configs/<data set>.yaml (w_training, training_feat_num, init_beta, init_alpha, lr, eps,
train_epoch, search_scale, search_step):
- the classifier W [C, D] and the keys (the mean of each training image's augmented views, normalised) as `ape`;
- the channels: the top `feat_num` of the criterion -w0 sim + w1 var with w_training (0.2, 0.8), sim over the text
  and the keys (the criterion file `ape` saves first, which APE_T then loads: main.py runs APE before APE_T);
- trainable: res [C, F] zeros, added to W's kept channels and, per key, to its class's row on the keys' kept channels;
  value weights [M] ones scaling the one-hot cache values; neither W' nor K' is renormalised;
- logits = logit_scale f W'^T + alpha exp(-beta (1 - f K'^T)) (L * value weights), at init_beta and init_alpha while
  training; cross-entropy (SmoothCrossEntropy at its default 0); AdamW (lr, eps per data set, weight decay 0.1),
  cosine over epochs x minibatches of 256 augmented images (the cache's views); the epoch best on validation kept;
- then beta x alpha searched on validation over i (scale - 0.1) / steps + 0.1, beta outer, the first strictly best.
The defaults are DTD's config (as `ape`'s); `per_dataset: true` applies each benchmark's (resources/per_dataset.json).
Departures: the channel count is `training_feat_num` for both the residual's width and the channels it is added to
(the authors' code takes the channels with `training_free_feat_num`, so as released it runs only where the two agree,
ImageNet); the zero-shot term uses the model's logit scale (theirs 100); float32 where they run float16; their main()
has APE-T commented out, and Food101's config comment asks eps 0.01 at 1-2 shots (we keep the config's value).
"""

from __future__ import annotations

from typing import Unpack

import torch

from pipeline.head_params.ape_t import REQUIRES, APETParams
from pipeline.heads.ape import (
    ape_classifier,
    channel_criterion,
    check_search_steps,
    correct_at,
    first_best,
    search_values,
)
from pipeline.heads.base import Head, Shapes
from pipeline.heads.inputs import FitData, view_mean_keys
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import kernel_class_sums, kernel_of, normalize, sort_by_label
from pipeline.heads.registry import register_head

MAX_SEARCH = 1_000_000  # (beta, alpha) points of one search


@register_head("ape_t")
class APET(Head):
    Params = APETParams
    requires = REQUIRES

    channels: torch.Tensor  # [F] the refined channels
    cache_keys: torch.Tensor  # [M, D] keys (view means, normalised), sorted by label
    cache_labels: torch.Tensor  # [M]
    beta: torch.Tensor  # []
    alpha: torch.Tensor  # []

    def __init__(self, params: APETParams) -> None:
        super().__init__(params)
        check_search_steps(self.name, params.search_step, MAX_SEARCH)

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes, keys, kept = shapes["dim"], shapes["classes"], shapes["keys"], shapes["channels"]
        self.text_buffers(classes, dim)
        self.register_buffer("channels", torch.zeros(kept, dtype=torch.long))
        self.register_buffer("cache_keys", torch.zeros(keys, dim))
        self.register_buffer("cache_labels", torch.zeros(keys, dtype=torch.long))
        for name in ("beta", "alpha"):
            self.register_buffer(name, torch.zeros(()))
        self.res = torch.nn.Parameter(torch.zeros(classes, kept))  # [C, F]
        self.value_weights = torch.nn.Parameter(torch.ones(keys))  # [M]

    def fit(self, data: FitData) -> APET:
        self.use_dataset_values(data)
        p = self.params
        weights = ape_classifier(data.text, p.template_set, p.descriptions, data.device)  # [C, D]
        keys, labels = sort_by_label(view_mean_keys(data.train, data.device), data.labels(data.train))  # [M, D]
        kept = min(p.feat_num, weights.shape[1])
        self.prepare(data, None, dim=weights.shape[1], classes=weights.shape[0], keys=keys.shape[0], channels=kept)
        with torch.no_grad():
            self.class_weights.copy_(weights)
            self.logit_scale.fill_(data.text.logit_scale)
            self.channels.copy_(torch.topk(channel_criterion(weights, keys, labels, p.weights), k=kept).indices)
            self.cache_keys.copy_(keys)
            self.cache_labels.copy_(labels)
            self.beta.fill_(p.init_beta)
            self.alpha.fill_(p.init_alpha)
        train(self, data, Schedule("adamw", p.lr, p.weight_decay, p.epochs, p.batch_size, eps=p.eps, keep=p.keep,
                                     min_steps=p.min_steps))
        epoch = self.selected.pop("epoch")
        self.search(data)
        self.selected["epoch"] = epoch
        return self

    def refined(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W' [C, D], K' [M, D]): the residual added to the kept channels of the classifier and of each key."""
        text = self.class_weights.index_add(1, self.channels, self.res)  # W[:, F] += res
        keys = self.cache_keys.index_add(1, self.channels, self.res[self.cache_labels])  # K[:, F] += res[label]
        return text, keys

    def logits_parts(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(zero-shot logits [B, C], cosine affinities to the refined keys [B, M]) of normalised features [B, D]."""
        text, keys = self.refined()
        return self.logit_scale * image @ text.T, image @ keys.T  # [B, D] @ [D, C], [B, D] @ [D, M]

    def cache_logits(self, affinity: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
        """exp(-beta (1 - a)) (L * value weights) [B, C] from affinities [B, M]."""
        kernel = kernel_of(affinity, beta) * self.value_weights[None]  # [B, M]
        return kernel_class_sums(kernel, self.cache_labels, self.class_weights.shape[0])

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        zero_shot, affinity = self.logits_parts(batch["global"])
        return zero_shot + self.alpha * self.cache_logits(affinity, self.beta)

    @torch.no_grad()
    def search(self, data: FitData) -> None:
        """beta (outer) x alpha on validation with the trained residual and value weights; the first strictly best
        (their best starts at 0: a search that is never right keeps (0, 0))."""
        p = self.params
        betas, alphas, _ = search_values((*p.search_scale, 1.0), (*p.search_step, 1))
        val = normalize(torch.from_numpy(data.val.read("global")).float().to(data.device))  # [N, D]
        labels = data.labels(data.val)
        zero_shot, affinity = self.logits_parts(val)
        alpha = torch.tensor(alphas, device=val.device)
        correct = torch.stack([correct_at(zero_shot, self.cache_logits(affinity, beta), labels, alpha)
                               for beta in betas])  # [B, A]
        chosen, top = first_best(correct, (betas, alphas))
        self.beta.fill_(chosen[0])
        self.alpha.fill_(chosen[1])
        self.selected.update({"beta": chosen[0], "alpha": chosen[1], "channels": int(self.channels.numel()),
                              "val_acc": top / max(len(labels), 1)})

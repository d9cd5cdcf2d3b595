"""Tip-Adapter-F: Tip-Adapter with the cache keys fine-tuned.

Paper: Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for Few-shot Classification", arXiv 2111.03930.
The keys become a trainable [M, D] tensor initialised from the view-averaged cache; trained with cross-entropy on
zero-shot + alpha0 * cache(beta0) logits (AdamW lr 1e-3, eps 1e-4, cosine, batch 256, 20 epochs: the paper's
ImageNet recipe; with `per_dataset: true` the authors' init_alpha, search_scale and train_epoch of each of the 11
benchmarks, e.g. 100 epochs on EuroSAT) on a random augmented view per image per step. The epoch kept is the best
on validation among the trained epochs (the authors' code keeps the best on the test set, which we never read); then
beta and alpha are searched on validation as in Tip-Adapter. The paper trains the keys as the weight of a linear layer
over features (no re-normalisation of keys); we do the same.
"""

from __future__ import annotations

from typing import Unpack

import torch

from pipeline.head_params.tip_adapter_f import TipAdapterFParams
from pipeline.heads.base import Shapes
from pipeline.heads.inputs import FitData, view_mean_keys
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import sort_by_label
from pipeline.heads.registry import register_head
from pipeline.heads.tip_adapter import TipAdapter


@register_head("tip_adapter_f")
class TipAdapterF(TipAdapter):
    Params = TipAdapterFParams

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        del self.cache_keys
        self.cache_keys = torch.nn.Parameter(torch.zeros(shapes["keys"], shapes["dim"]))  # [M, D] trainable

    def fit(self, data: FitData) -> TipAdapterF:
        self.use_dataset_values(data)
        keys = view_mean_keys(data.train, data.device)
        self.prepare(data, self.params.template_set, dim=keys.shape[1], classes=data.n_classes, keys=keys.shape[0])
        keys, labels = sort_by_label(keys, data.labels(data.train))
        with torch.no_grad():
            self.cache_keys.copy_(keys)
            self.cache_labels.copy_(labels)
            self.alpha.fill_(self.params.init_alpha)
            self.beta.fill_(self.params.init_beta)
        p = self.params
        train(self, data, Schedule("adamw", p.lr, p.weight_decay, p.epochs, p.batch_size, eps=p.eps, keep=p.keep,
                                     min_steps=p.min_steps))
        epoch = self.selected.pop("epoch")
        self.search(data)
        self.selected["epoch"] = epoch
        return self

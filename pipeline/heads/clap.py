"""CLAP and ZS-LP: a linear probe started at the zero-shot classifier, with (CLAP) or without (ZS-LP) a class-adaptive
penalty that keeps each class's weights near its text embedding; validation-free.

Paper: Silva-Rodriguez, Hajimiri, Ben Ayed, Dolz, "A Closer Look at the Few-Shot Adaptation of Large Vision-Language
Models", CVPR 2024, arXiv 2312.12730. Followed from the authors' code, github jusiro/CLAP at
dbdf4095b3d824546474c725539b9f4efff3ca0e: trainers/adapters.py (AdapterMethod with INIT "ZS" and CONSTRAINT "l2" or
"none", init_lagrangian_multipliers, zero_shot_constraint, forward_lp, TrainerXCostume.run_epoch, ADAPTER.train),
configs/trainers/SGD_lr1e-1_B256_ep300.yaml, scripts/adapt.sh:
- prototypes W [C, D] start at the raw text base t (pipeline/heads/text_base.py: the mean of un-normalised template
  embeddings, CoOp's template; ImageNet: the 7-template ensemble and CoOp's); logits = exp(logit_scale) cos(f, W);
- the training pool is every augmented view of every training image (the authors encode 20 augmented passes; we
  pool the views the cache holds, `encode.views.count`), raw features with their labels;
- CLAP's multipliers, fixed for the whole fit: alpha_c = the mean, over the pool's images of class c, of the zero-shot
  softmax probability of class c (the authors take the initial prototypes' softmax: the same with their ZS init);
  the loss is cross-entropy + mean_c alpha_c ||W_c - t_c||^2 (ZS-LP: cross-entropy alone). The authors'
  augmented-Lagrangian outer step runs only for an "adaptative" constraint, which their scripts never name: it is
  not offered;
- SGD (momentum 0.9, no weight decay), lr 0.1, 300 epochs; Dassl's cosine stepped per epoch after one constant
  warm-up epoch at 1e-5; each epoch shuffles the pool and takes as many batches of 256 as the training loader of the
  N images has (N // 256 once N >= 256, else one), i.e. it sees part of the pool; the last epoch is kept and no
  validation image is read (the authors' point: no model selection).
Departures: the image features are the cache's (fp32 on the CPU) where the authors run CLIP in fp16; the pool holds
the cache's views (10 by default) rather than 20 fresh augmentations; the shuffles come from numpy's seeded
generator, not the global one.
"""

from __future__ import annotations

from typing import Unpack

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.head_params.clap import REQUIRES, CLAPParams
from pipeline.heads.base import Head, Shapes, recorded_val_accuracy
from pipeline.heads.inputs import FitData, each_view
from pipeline.heads.loop import Schedule, check_schedule, lr_at, make_optimizer
from pipeline.heads.maths import clip_logits, normalize
from pipeline.heads.registry import register_head
from pipeline.heads.text_base import raw_base
from pipeline.runlog import detail_log

detail = detail_log()  # the run's own log file (the console with --verbose)


def class_multipliers(pool: torch.Tensor, labels: torch.Tensor, base: torch.Tensor, scale: torch.Tensor,
                      rows: int = 8192) -> torch.Tensor:
    """[C] alpha_c: the mean zero-shot softmax probability of class c over the pool's samples of class c (the
    authors' diag(softmax(logits)^T onehot) / onehot.sum(0), computed by rows: no [S, C] one-hot is built)."""
    classes = base.shape[0]
    own = torch.cat([torch.softmax(clip_logits(normalize(pool[i : i + rows]), normalize(base), scale), dim=-1)
                     .gather(1, labels[i : i + rows, None])[:, 0] for i in range(0, len(pool), rows)])  # [S]
    sums = torch.zeros(classes, device=pool.device).index_add_(0, labels, own)
    return sums / torch.bincount(labels, minlength=classes).float()


def batches_per_epoch(images: int, batch_size: int) -> int:
    """len() of the authors' training loader over the N few-shot images: N // batch once N >= batch (Dassl drops the
    last partial batch), else a single batch."""
    return images // batch_size if images >= batch_size else 1


@register_head("clap")
class CLAP(Head):
    Params = CLAPParams
    validation_free = ()  # validation-free as it is (reads no val)
    requires = REQUIRES

    prototypes: nn.Parameter  # [C, D] the probe's class weights
    base: torch.Tensor  # [C, D] the raw text base they start from (and CLAP pulls them to)
    multipliers: torch.Tensor  # [C] CLAP's alpha_c (zeros for ZS-LP)

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        classes, dim = shapes["classes"], shapes["dim"]
        self.prototypes = nn.Parameter(torch.zeros(classes, dim))
        self.register_buffer("base", torch.zeros(classes, dim))
        self.register_buffer("multipliers", torch.zeros(classes))
        self.register_buffer("logit_scale", torch.zeros(()))

    def schedule(self) -> Schedule:
        p = self.params
        return Schedule("sgd", p.lr, p.weight_decay, p.epochs, p.batch_size, p.warmup_epochs, p.warmup_lr,
                        lr_schedule="dassl")

    def fit(self, data: FitData) -> CLAP:
        check_schedule(self.name, self.schedule())
        base = raw_base(data.text, self.params.template_set, data.device)  # [C, D]
        self.prepare(data, None, dim=base.shape[1], classes=base.shape[0])
        self.base.copy_(base)
        self.logit_scale.fill_(data.text.logit_scale)
        with torch.no_grad():
            if self.params.init == "zs":
                self.prototypes.copy_(base)
            else:
                nn.init.kaiming_normal_(self.prototypes)
        pool = torch.cat(list(each_view(data.train, data.device, raw=True)))  # [V N, D] raw
        labels = data.labels(data.train).repeat(data.train.n_views)  # [V N]
        if self.params.constraint == "l2":
            self.multipliers.copy_(class_multipliers(pool, labels, base, self.logit_scale))
        self.train_pool(pool, labels, data)
        return self

    def penalty(self) -> torch.Tensor:
        """mean_c alpha_c ||W_c - t_c||^2 (zero_shot_constraint)."""
        return torch.mean(self.multipliers * (self.prototypes - self.base).pow(2).sum(-1))

    def train_pool(self, pool: torch.Tensor, labels: torch.Tensor, data: FitData) -> None:
        """The authors' epochs: shuffle the pool, take the loader's number of batches of it, step; the last kept."""
        schedule = self.schedule()
        optimizer = make_optimizer(self.param_groups(), schedule)
        rng = np.random.default_rng(data.seed)
        steps = batches_per_epoch(data.train.n, schedule.batch_size)
        self.history = []
        for epoch in range(schedule.epochs):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch, schedule)
            order = torch.from_numpy(rng.random(len(pool)).argsort()).to(pool.device)
            losses = []
            for step in range(steps):
                rows = order[step * schedule.batch_size:(step + 1) * schedule.batch_size]
                loss = F.cross_entropy(self.scores_of(pool[rows]), labels[rows])
                if self.params.constraint == "l2":
                    loss = loss + self.penalty()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            self.history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "steps": steps,
                                 "lr": optimizer.param_groups[0]["lr"]})
            detail.info("%s epoch %d/%d: loss %.4f", self.name, epoch + 1, schedule.epochs, losses[-1])
        detail.info("%s: %d epochs of %d batch(es), loss %.4f", self.name, schedule.epochs, steps,
                 self.history[-1]["train_loss"])
        self.selected.update({"epoch": schedule.epochs, "keep": "last", "steps": schedule.epochs * steps,
                              "validation": "none (validation-free): val_acc is recorded, never used to choose",
                              "val_acc": recorded_val_accuracy(self, data.val)})

    def scores_of(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C] logits of raw (or normalised) image features."""
        return clip_logits(normalize(features), normalize(self.prototypes), self.logit_scale)

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scores_of(batch["global"])

"""The one training loop the trained heads share.

Minibatches come straight from the store: each step reads, for a random permutation of the training images, one
random augmented view per image (augmentation without re-encoding). After every epoch the head is scored on the
validation split; the epoch kept is the best on validation (never on test), its weights restored at the end.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.heads.base import Head, val_accuracy
from pipeline.heads.data import FitData
from pipeline.heads.maths import normalize
from pipeline.store import FeatureSplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """Optimiser and schedule of a trained head (each head's Params carries one set of these numbers)."""

    optimizer: str  # 'adamw' or 'sgd' (momentum 0.9)
    lr: float  # peak learning rate
    weight_decay: float
    epochs: int
    batch_size: int
    warmup_epochs: int = 0  # constant warm-up at warmup_lr before the cosine schedule (CoOp's recipe)
    warmup_lr: float = 1e-5
    eps: float = 1e-8  # AdamW epsilon (Tip-Adapter-F uses 1e-4)


def view_batches(split: FeatureSplit, names: tuple[str, ...], batch_size: int, rng: np.random.Generator,
                 device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of minibatches {'labels', 'global', 'spatial'?}: a random view per image, globals normalised."""
    order = rng.permutation(split.n)
    views = split.n_views
    for start in range(0, split.n, batch_size):
        rows = np.sort(order[start : start + batch_size])
        chosen = rng.integers(0, views, size=len(rows)) if views else None
        batch = {"labels": torch.from_numpy(split.labels[rows]).long().to(device)}
        for name in names:
            if chosen is not None:
                array = split.read_views(f"views/{name}", rows, chosen)  # [B, ...] one view per image
            else:
                array = split.read(name, rows)
            tensor = torch.from_numpy(array).float().to(device)
            batch[name] = normalize(tensor) if name == "global" else tensor
        yield batch


def make_optimizer(groups: list[dict], schedule: Schedule) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or AdamW over parameter groups; a group's 'lr_scale' multiplies the scheduled rate."""
    groups = [{"lr_scale": 1.0, **group} for group in groups]
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=schedule.lr, momentum=0.9, weight_decay=schedule.weight_decay)
    return torch.optim.AdamW(groups, lr=schedule.lr, weight_decay=schedule.weight_decay, eps=schedule.eps)


def lr_at(epoch_progress: float, schedule: Schedule) -> float:
    """Learning rate at a fractional epoch: warm-up, then cosine from lr to 0 over the remaining epochs."""
    if epoch_progress < schedule.warmup_epochs:
        return schedule.warmup_lr
    span = max(schedule.epochs - schedule.warmup_epochs, 1e-9)
    return 0.5 * schedule.lr * (1 + math.cos(math.pi * (epoch_progress - schedule.warmup_epochs) / span))


def train(head: Head, data: FitData, schedule: Schedule, names: tuple[str, ...] = ("global",),
          loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None) -> None:
    """Train the head's parameters; keep the epoch with the best validation accuracy (first best on ties).

    The loss defaults to cross-entropy on the head's own `block_logits` of each minibatch.
    """
    loss_fn = loss_fn or (lambda batch: F.cross_entropy(head.block_logits(batch), batch["labels"]))
    optimizer = make_optimizer(head.param_groups(), schedule)
    rng = np.random.default_rng(data.seed)
    steps = max(1, math.ceil(data.train.n / schedule.batch_size))
    best_acc, best_epoch, best_state = val_accuracy(head, data.val), 0, copy.deepcopy(head.state_dict())
    head.history = [{"epoch": 0, "val_acc": best_acc}]
    for epoch in range(schedule.epochs):
        head.train()
        losses = []
        for step, batch in enumerate(view_batches(data.train, names, schedule.batch_size, rng, data.device)):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch + step / steps, schedule) * group["lr_scale"]
            loss = loss_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        acc = val_accuracy(head, data.val)
        head.history.append({"epoch": epoch + 1, "val_acc": acc, "train_loss": float(np.mean(losses))})
        log.info("%s epoch %d/%d: loss %.4f, val acc %.4f, lr %.2e", head.name, epoch + 1, schedule.epochs,
                 head.history[-1]["train_loss"], acc, optimizer.param_groups[0]["lr"])
        if acc > best_acc:
            best_acc, best_epoch, best_state = acc, epoch + 1, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    head.selected.update({"epoch": best_epoch, "val_acc": best_acc})

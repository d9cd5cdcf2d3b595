"""The one training loop the trained heads share.

Minibatches come straight from the store: each step reads, for a random permutation of the training images, one
random augmented view per image (augmentation without re-encoding). After every epoch the head is scored on the
validation split; the epoch kept is the best on validation (never on test), its weights restored at the end.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import ClipCacheError
from pipeline.heads.base import Head, val_accuracy
from pipeline.heads.inputs import FitData, SplitReader, has_validation
from pipeline.heads.maths import normalize
from pipeline.runlog import detail_log

detail = detail_log()  # each epoch: the run's own log file (the console with --verbose)


@dataclass(frozen=True)
class Schedule:
    """Optimiser and schedule of a trained head (each head's Params carries one set of these numbers)."""

    optimizer: str  # 'adamw', 'adam' (L2 added to the gradient, as torch.optim.Adam) or 'sgd' (momentum 0.9)
    lr: float  # peak learning rate
    weight_decay: float
    epochs: int
    batch_size: int
    warmup_epochs: int = 0  # constant warm-up at warmup_lr before the cosine schedule (CoOp's recipe)
    warmup_lr: float = 1e-5
    eps: float = 1e-8  # AdamW epsilon (Tip-Adapter-F uses 1e-4)
    keep: str = "last"  # the epoch shipped: 'last', 'best_val' (trained epochs only) or 'best_val_or_start' (the
    # untrained start, epoch 0, competes too: a trained epoch must beat it on validation)
    min_steps: int = 0  # at least this many optimiser steps in all (more minibatches per epoch when needed)
    lr_schedule: str = "cosine"  # 'cosine' (per step, to 0 over the epochs after warm-up), 'dassl' or 'constant'
    patience: int = 0  # best_val only: stop after this many epochs without a better validation accuracy (0: never)
    views: bool = True  # a random augmented view per image per step; False: the un-augmented features


def epochs_by_shots(shots: int | None, dataset: str = "") -> int:
    """CoOp's epochs (COOP.md): 50 for 1 shot, 100 for 2-4 shots, 200 for 8 shots and more; 50 at every shot count
    on ImageNet (its *_ep50 configs)."""
    shots = shots or 16
    if dataset == "imagenet":
        return 50
    return 50 if shots <= 1 else 100 if shots <= 4 else 200


KEEP_RULES = ("last", "best_val", "best_val_or_start")
OPTIMIZERS = ("adamw", "adam", "sgd")
LR_SCHEDULES = ("cosine", "dassl", "constant")


def check_schedule(head: str, schedule: Schedule) -> None:
    """One line naming the head and value at fault for a schedule that cannot run."""
    for name, known in (("keep", KEEP_RULES), ("optimizer", OPTIMIZERS), ("lr_schedule", LR_SCHEDULES)):
        if getattr(schedule, name) not in known:
            raise ClipCacheError(f"heads.{head}.{name} must be one of {', '.join(known)}, got "
                                 f"{getattr(schedule, name)!r}")
    for name in ("epochs", "batch_size"):
        if int(getattr(schedule, name)) < 1:
            raise ClipCacheError(f"heads.{head}.{name} must be at least 1, got {getattr(schedule, name)!r}")
    for name in ("min_steps", "warmup_epochs", "patience"):
        if int(getattr(schedule, name)) < 0:
            raise ClipCacheError(f"heads.{head}.{name} must not be negative, got {getattr(schedule, name)!r}")


def steps_per_epoch(n: int, schedule: Schedule) -> int:
    """Minibatches per epoch: one pass over the n images, or more so that the schedule reaches min_steps."""
    passes = max(1, math.ceil(n / schedule.batch_size))
    return max(passes, math.ceil(schedule.min_steps / schedule.epochs))


def epoch_rows(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """`steps` minibatches of sorted row indices: consecutive random permutations of the n rows, cut in batches."""
    done = 0
    while done < steps:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            if done == steps:
                return
            done += 1
            yield np.sort(order[start : start + batch_size])


def view_batches(split: SplitReader, names: tuple[str, ...], batch_size: int, rng: np.random.Generator,
                 device: torch.device, steps: int | None = None,
                 augment: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of minibatches {'labels', 'global', 'spatial'?}: a random view per image, globals normalised.

    `steps` minibatches (default: one pass over the split); `augment` False reads the un-augmented features."""
    views = split.n_views if augment else 0
    steps = max(1, math.ceil(split.n / batch_size)) if steps is None else steps
    for rows in epoch_rows(split.n, batch_size, steps, rng):
        chosen = rng.integers(0, views, size=len(rows)) if views else None
        batch = {"labels": torch.from_numpy(split.labels[rows]).long().to(device)}
        for name in names:
            array = (split.read_views(f"views/{name}", rows, chosen) if chosen is not None  # [B, ...] a view each
                     else split.read(name, rows))
            tensor = torch.from_numpy(array).float().to(device)
            batch[name] = normalize(tensor) if name == "global" else tensor
        yield batch


def make_optimizer(groups: list[dict], schedule: Schedule) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or AdamW over parameter groups; a group's 'lr_scale' multiplies the scheduled rate."""
    groups = [{"lr_scale": 1.0, **group} for group in groups]
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=schedule.lr, momentum=0.9, weight_decay=schedule.weight_decay)
    if schedule.optimizer == "adam":
        return torch.optim.Adam(groups, lr=schedule.lr, weight_decay=schedule.weight_decay, eps=schedule.eps)
    return torch.optim.AdamW(groups, lr=schedule.lr, weight_decay=schedule.weight_decay, eps=schedule.eps)


def lr_at(epoch_progress: float, schedule: Schedule) -> float:
    """Learning rate at a fractional epoch: constant warm-up, then cosine from lr to 0 over the remaining epochs per
    step ('cosine'), Dassl's per-epoch cosine ('dassl': epoch e >= warm-up gets lr (1 + cos(pi (e - W) / E)) / 2), or
    the constant lr."""
    if epoch_progress < schedule.warmup_epochs:
        return schedule.warmup_lr
    if schedule.lr_schedule == "constant":
        return schedule.lr
    if schedule.lr_schedule == "dassl":  # CoOp's trainer library: ConstantWarmupScheduler + CosineAnnealingLR(T_max =
        epoch = math.floor(epoch_progress)  # epochs), stepped once per epoch: constant within an epoch, never 0
        return 0.5 * schedule.lr * (1 + math.cos(math.pi * (epoch - schedule.warmup_epochs) / schedule.epochs))
    span = max(schedule.epochs - schedule.warmup_epochs, 1e-9)
    return 0.5 * schedule.lr * (1 + math.cos(math.pi * (epoch_progress - schedule.warmup_epochs) / span))


def train(head: Head, data: FitData, schedule: Schedule, names: tuple[str, ...] = ("global",),
          loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
          backward: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
          epoch_end: Callable[[int], None] | None = None) -> None:
    """Train the head's parameters for `schedule.epochs` epochs; ship the epoch `schedule.keep` names.

    The loss defaults to cross-entropy on the head's own `batch_scores` of each minibatch. `backward`, where given,
    replaces loss and backward pass: it fills the parameters' gradients itself (ProGrad's projected gradient) and
    returns the minibatch's loss for the history; the optimiser then steps as usual. `epoch_end(epoch)` (1-based) is
    called after each epoch's last step, before validation (PromptSRC's prompt aggregation).
    """
    check_schedule(head.name, schedule)
    loss_fn = loss_fn or (lambda batch: F.cross_entropy(head.batch_scores(batch), batch["labels"]))
    optimizer = make_optimizer(head.param_groups(), schedule)
    rng = np.random.default_rng(data.seed)
    steps = steps_per_epoch(data.train.n, schedule)
    best_acc, best_epoch, best_state = -1.0, 0, None
    by_val = schedule.keep in ("best_val", "best_val_or_start")
    validated = has_validation(data.val)
    if by_val and not validated:
        raise ClipCacheError(f"heads.{head.name}.keep: {schedule.keep} selects on validation, which a validation-free "
                             "run does not read")
    if schedule.keep == "best_val_or_start":
        best_acc, best_state = val_accuracy(head, data.val), copy.deepcopy(head.state_dict())
        detail.info("%s epoch 0 (untrained): val acc %.4f", head.name, best_acc)
    head.history = []
    for epoch in range(schedule.epochs):
        head.train()
        losses = []
        batches = view_batches(data.train, names, schedule.batch_size, rng, data.device, steps, schedule.views)
        for step, batch in enumerate(batches):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch + step / steps, schedule) * group["lr_scale"]
            optimizer.zero_grad(set_to_none=True)
            if backward is None:
                loss = loss_fn(batch)
                loss.backward()
            else:
                loss = backward(batch)
            optimizer.step()
            losses.append(loss.item())
        if epoch_end is not None:
            epoch_end(epoch + 1)
        last = epoch + 1 == schedule.epochs
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "steps": len(losses),
                  "lr": optimizer.param_groups[0]["lr"]}  # the rate of the epoch's last step (dvclive/ curves)
        if by_val or (last and validated):
            record["val_acc"] = val_accuracy(head, data.val)
        head.history.append(record)
        detail.info("%s epoch %d/%d: loss %.4f, val acc %s, lr %.2e", head.name, epoch + 1, schedule.epochs,
                 record["train_loss"], f"{record['val_acc']:.4f}" if "val_acc" in record else "-", record["lr"])
        if by_val and record["val_acc"] > best_acc:
            best_acc, best_epoch, best_state = record["val_acc"], epoch + 1, copy.deepcopy(head.state_dict())
        elif by_val and schedule.patience and epoch + 1 - best_epoch >= schedule.patience:
            detail.info("%s: no better validation accuracy for %d epochs, stopping", head.name, schedule.patience)
            break
    kept: float | None = best_acc
    if schedule.keep == "last":
        kept, best_epoch = head.history[-1].get("val_acc"), schedule.epochs  # None in a validation-free run
    elif best_state is not None:  # by validation: the state of the best epoch (there is one: epochs >= 1)
        head.load_state_dict(best_state)
    head.selected.update({"epoch": best_epoch, "val_acc": kept, "keep": schedule.keep,
                          "steps": sum(record["steps"] for record in head.history)})

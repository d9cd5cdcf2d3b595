"""The shared training loop (pipeline.heads.loop) against an independent restatement of what it promises.

A two-group linear probe is trained by `train` and, step by step, by the loop written out here from the module's
docstrings: the same minibatches (a seeded permutation per pass, one random view per image), the learning rate of
each step (constant warm-up, then cosine per step, Dassl's cosine per epoch, or constant) times each group's
lr_scale, the optimiser the schedule names, validation after each epoch, and the epoch shipped. Weights, history and
`selected` must agree; any change to the schedule, the batches or the selection shows.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ClipCacheError
from pipeline.heads.base import Head
from pipeline.heads.loop import (
    Schedule,
    check_schedule,
    epoch_rows,
    epochs_by_shots,
    lr_at,
    make_optimizer,
    steps_per_epoch,
    train,
    view_batches,
)

TEXT_SCALE = 0.25  # lr_scale of the probe's second group


class Probe(Head):
    """A linear classifier in two parameter groups: weights at the scheduled rate, a bias at TEXT_SCALE of it."""

    name = "probe"

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__(None)
        generator = torch.Generator().manual_seed(7)
        self.weight = nn.Parameter(torch.randn(classes, dim, generator=generator) * 0.1)
        self.bias = nn.Parameter(torch.randn(classes, generator=generator) * 0.1)

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["global"] @ self.weight.T + self.bias

    def param_groups(self) -> list[dict]:
        return [{"params": [self.weight]}, {"params": [self.bias], "lr_scale": TEXT_SCALE}]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def scheduled_lr(t: float, s: Schedule) -> float:
    """The rate at fractional epoch t, from Schedule's field comments and lr_at's docstring."""
    if t < s.warmup_epochs:
        return s.warmup_lr
    if s.lr_schedule == "constant":
        return s.lr
    if s.lr_schedule == "dassl":
        return s.lr * (1 + math.cos(math.pi * (int(t) - s.warmup_epochs) / s.epochs)) / 2
    return s.lr * (1 + math.cos(math.pi * (t - s.warmup_epochs) / (s.epochs - s.warmup_epochs))) / 2


def reference_train(data, s: Schedule) -> tuple[Probe, list[dict], dict]:
    """The loop restated: returns the probe it ships, its history and its selection."""
    probe = Probe(data.train.array("global").shape[1], data.n_classes)
    groups = [{"params": [probe.weight], "scale": 1.0}, {"params": [probe.bias], "scale": TEXT_SCALE}]
    if s.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=s.lr, momentum=0.9, weight_decay=s.weight_decay)
    elif s.optimizer == "adam":
        optimizer = torch.optim.Adam(groups, lr=s.lr, weight_decay=s.weight_decay, eps=s.eps)
    else:
        optimizer = torch.optim.AdamW(groups, lr=s.lr, weight_decay=s.weight_decay, eps=s.eps)
    n = data.train.n
    per_epoch = max(-(-n // s.batch_size), -(-s.min_steps // s.epochs))
    views = data.train.read("views/global")  # [V, N, D]
    plain = data.train.read("global")  # [N, D]
    labels = torch.from_numpy(data.train.labels).long()
    val = torch.from_numpy(unit(data.val.read("global").astype(np.float32)))
    rng = np.random.default_rng(data.seed)
    history, best = [], (-1.0, 0, None)
    by_val = s.keep in ("best_val", "best_val_or_start")
    if s.keep == "best_val_or_start":  # the untrained start is epoch 0 and competes
        with torch.no_grad():
            acc = float(((val @ probe.weight.T + probe.bias).argmax(1).numpy() == data.val.labels).mean())
        best = (acc, 0, copy.deepcopy(probe.state_dict()))
    for epoch in range(s.epochs):
        losses, order, start = [], None, n
        for step in range(per_epoch):
            if start >= n:  # a new pass: a fresh permutation
                order, start = rng.permutation(n), 0
            rows = np.sort(order[start : start + s.batch_size])
            start += s.batch_size
            x = views[rng.integers(0, views.shape[0], size=len(rows)), rows] if s.views else plain[rows]
            x = torch.from_numpy(unit(x.astype(np.float32)))
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(epoch + step / per_epoch, s) * group["scale"]
            loss = F.cross_entropy(x @ probe.weight.T + probe.bias, labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "steps": per_epoch,
                  "lr": optimizer.param_groups[0]["lr"]}  # the rate of the epoch's last step
        if by_val or epoch + 1 == s.epochs:
            with torch.no_grad():
                record["val_acc"] = float(((val @ probe.weight.T + probe.bias).argmax(1).numpy()
                                           == data.val.labels).mean())
        history.append(record)
        if by_val:
            if record["val_acc"] > best[0]:
                best = (record["val_acc"], epoch + 1, copy.deepcopy(probe.state_dict()))
            elif s.patience and epoch + 1 - best[1] >= s.patience:
                break
    if by_val:
        probe.load_state_dict(best[2])
        chosen = (best[1], best[0])
    else:
        chosen = (s.epochs, history[-1]["val_acc"])
    selected = {"epoch": chosen[0], "val_acc": chosen[1], "keep": s.keep, "steps": per_epoch * len(history)}
    return probe, history, selected


SCHEDULES = {
    # CoOp's recipe: SGD, a constant warm-up epoch at a rate far from lr, cosine per step, the last epoch
    "sgd-warmup-cosine": Schedule("sgd", 0.8, 5e-4, 4, 6, warmup_epochs=1, warmup_lr=0.03),
    # a batch that does not divide the images (the last minibatch of a pass is short), min_steps forcing a second
    # pass inside an epoch, Dassl's per-epoch cosine, best on validation
    "sgd-dassl-min-steps": Schedule("sgd", 0.5, 1e-3, 3, 7, warmup_epochs=1, warmup_lr=0.2, keep="best_val",
                                    min_steps=15, lr_schedule="dassl"),
    "adamw-cosine-best": Schedule("adamw", 0.05, 0.01, 5, 8, eps=1e-4, keep="best_val"),
    "adam-constant-plain": Schedule("adam", 0.02, 0.1, 3, 5, warmup_epochs=2, warmup_lr=0.001,
                                    lr_schedule="constant", views=False),
    # a rate that ruins the probe after its first epoch: patience 1 stops early, the best epoch is restored
    "sgd-patience": Schedule("sgd", 40.0, 0.0, 6, 20, keep="best_val", patience=1, lr_schedule="constant"),
    # the untrained start competes: a useful rate moves on from it, a zero rate never beats it (ties keep the start)
    "adamw-or-start": Schedule("adamw", 0.05, 0.01, 4, 8, keep="best_val_or_start"),
    "frozen-or-start": Schedule("sgd", 0.0, 0.0, 3, 8, warmup_lr=0.0, keep="best_val_or_start"),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_train_is_the_loop_it_documents(task, name: str) -> None:
    data, _ = task
    schedule = SCHEDULES[name]
    expected, history, selected = reference_train(data, schedule)
    head = Probe(data.train.array("global").shape[1], data.n_classes)
    train(head, data, schedule)
    torch.testing.assert_close(head.weight.detach(), expected.weight.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(head.bias.detach(), expected.bias.detach(), rtol=1e-5, atol=1e-6)
    assert [r.keys() for r in head.history] == [r.keys() for r in history]
    for ours, theirs in zip(head.history, history, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5)
    assert head.selected.pop("keep") == selected.pop("keep") == schedule.keep
    assert head.selected == pytest.approx(selected)


def test_the_start_is_a_candidate_only_when_asked(task) -> None:
    data, _ = task
    frozen = Probe(data.train.array("global").shape[1], data.n_classes)
    train(frozen, data, SCHEDULES["frozen-or-start"])
    assert frozen.selected["epoch"] == 0 and len(frozen.history) == 3
    moved = Probe(data.train.array("global").shape[1], data.n_classes)
    train(moved, data, SCHEDULES["adamw-or-start"])
    assert moved.selected["epoch"] >= 1


def test_patience_stops_and_restores_the_best_epoch(task) -> None:
    data, _ = task
    head = Probe(data.train.array("global").shape[1], data.n_classes)
    train(head, data, SCHEDULES["sgd-patience"])
    accs = [r["val_acc"] for r in head.history]
    best = int(np.argmax(accs))
    assert len(head.history) == best + 2 < 6  # one epoch without progress, then stop
    assert head.selected["epoch"] == best + 1 and head.selected["val_acc"] == accs[best]


def test_the_loss_function_and_dataset_names_reach_the_step(task) -> None:
    """A custom loss sees the minibatch with the named datasets (globals normalised, spatial raw)."""
    data, _ = task
    seen = []

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.append({k: tuple(v.shape) for k, v in batch.items()})
        torch.testing.assert_close(batch["global"].norm(dim=-1), torch.ones(len(batch["labels"])))
        return head.weight.square().sum() * 0 + batch["spatial"].float().mean() * head.bias.sum()

    head = Probe(data.train.array("global").shape[1], data.n_classes)
    start = head.weight.detach().clone()
    train(head, data, Schedule("sgd", 0.1, 0.0, 1, 8), ("global", "spatial"), loss_fn)
    assert seen == [{"labels": (8,), "global": (8, 32), "spatial": (8, 9, 32)}, {"labels": (8,), "global": (8, 32),
                    "spatial": (8, 9, 32)}, {"labels": (4,), "global": (4, 32), "spatial": (4, 9, 32)}]
    torch.testing.assert_close(head.weight.detach(), start)  # no gradient through the weight: unchanged


def test_a_backward_hook_sets_the_gradients_the_optimiser_steps_on(task) -> None:
    """`backward` replaces the loss and its backward pass (ProGrad's projection): its gradients are the step's."""
    data, _ = task
    head = Probe(data.train.array("global").shape[1], data.n_classes)
    start = head.weight.detach().clone()
    calls = []

    def backward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        assert head.weight.grad is None  # the loop zeroed the gradients before the hook
        calls.append(len(batch["labels"]))
        head.weight.grad = torch.ones_like(head.weight)
        head.bias.grad = torch.zeros_like(head.bias)
        return torch.tensor(1.5)

    train(head, data, Schedule("sgd", 0.1, 0.0, 1, data.train.n, lr_schedule="constant"), backward=backward)
    assert calls == [data.train.n] and head.history[0]["train_loss"] == 1.5
    torch.testing.assert_close(head.weight.detach(), start - 0.1)


def test_lr_at_values() -> None:
    s = Schedule("sgd", 0.01, 0.0, 10, 4, warmup_epochs=2, warmup_lr=1e-5)
    assert lr_at(0.0, s) == 1e-5 and lr_at(1.99, s) == 1e-5
    assert lr_at(2.0, s) == pytest.approx(0.01)
    assert lr_at(6.0, s) == pytest.approx(0.005)  # half way through the 8 cosine epochs
    assert lr_at(10.0, s) == pytest.approx(0.0, abs=1e-15)
    dassl = Schedule("sgd", 0.01, 0.0, 10, 4, warmup_epochs=2, lr_schedule="dassl")
    assert lr_at(2.0, dassl) == lr_at(2.9, dassl) == pytest.approx(0.01)
    assert lr_at(7.5, dassl) == pytest.approx(0.005 * (1 + math.cos(math.pi * 5 / 10)))
    assert lr_at(11.0, dassl) > 0  # Dassl's T_max counts every epoch: never 0 within the run
    constant = Schedule("sgd", 0.3, 0.0, 5, 4, warmup_epochs=1, warmup_lr=0.1, lr_schedule="constant")
    assert (lr_at(0.5, constant), lr_at(1.0, constant), lr_at(4.9, constant)) == (0.1, 0.3, 0.3)
    all_warmup = Schedule("sgd", 0.3, 0.0, 2, 4, warmup_epochs=2)
    assert lr_at(2.0, all_warmup) == pytest.approx(0.3)  # no cosine span left: no division by zero


def test_steps_and_epoch_rows() -> None:
    s = Schedule("sgd", 0.1, 0.0, 4, 6)
    assert steps_per_epoch(20, s) == 4 and steps_per_epoch(18, s) == 3 and steps_per_epoch(1, s) == 1
    assert steps_per_epoch(20, Schedule("sgd", 0.1, 0.0, 4, 6, min_steps=21)) == 6  # ceil(21 / 4)
    assert steps_per_epoch(20, Schedule("sgd", 0.1, 0.0, 4, 6, min_steps=16)) == 4
    batches = list(epoch_rows(10, 4, 7, np.random.default_rng(3)))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2, 4]  # passes of 4 + 4 + 2, a third pass cut at 7 steps
    rng = np.random.default_rng(3)
    passes = [rng.permutation(10) for _ in range(3)]
    expected = [np.sort(p[i : i + 4]) for p in passes for i in (0, 4, 8)][:7]
    for ours, theirs in zip(batches, expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert list(epoch_rows(10, 4, 0, np.random.default_rng(3))) == []


def test_view_batches_read_one_view_per_image(task) -> None:
    data, _ = task
    rng = np.random.default_rng(5)
    batches = list(view_batches(data.train, ("global",), 6, rng, torch.device("cpu")))
    assert [len(b["labels"]) for b in batches] == [6, 6, 6, 2]
    check = np.random.default_rng(5)
    views = data.train.read("views/global")
    order = check.permutation(data.train.n)
    for i, batch in enumerate(batches):
        rows = np.sort(order[6 * i : 6 * i + 6])
        chosen = check.integers(0, views.shape[0], size=len(rows))
        np.testing.assert_allclose(batch["global"].numpy(), unit(views[chosen, rows]), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(batch["labels"].numpy(), data.train.labels[rows])
        assert batch["labels"].dtype == torch.long
    plain = list(view_batches(data.train, ("global",), 32, np.random.default_rng(5), torch.device("cpu"),
                              augment=False))
    order = np.sort(np.random.default_rng(5).permutation(data.train.n)[:32])
    np.testing.assert_allclose(plain[0]["global"].numpy(), unit(data.train.read("global")[order]), rtol=1e-5, atol=1e-6)
    assert len(list(view_batches(data.train, ("global",), 32, rng, torch.device("cpu"), steps=3))) == 3


def test_make_optimizer_kinds_and_group_scales() -> None:
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    groups = [{"params": [a]}, {"params": [b], "lr_scale": 0.5}]
    sgd = make_optimizer(groups, Schedule("sgd", 0.1, 0.01, 1, 1))
    assert type(sgd) is torch.optim.SGD
    assert [(g["lr"], g["momentum"], g["weight_decay"], g["lr_scale"]) for g in sgd.param_groups] == \
        [(0.1, 0.9, 0.01, 1.0), (0.1, 0.9, 0.01, 0.5)]
    adam = make_optimizer(groups, Schedule("adam", 0.2, 0.03, 1, 1, eps=1e-4))
    assert type(adam) is torch.optim.Adam
    assert [(g["lr"], g["weight_decay"], g["eps"]) for g in adam.param_groups] == [(0.2, 0.03, 1e-4)] * 2
    adamw = make_optimizer(groups, Schedule("adamw", 0.3, 0.02, 1, 1, eps=1e-6))
    assert type(adamw) is torch.optim.AdamW
    assert [(g["lr"], g["weight_decay"], g["eps"]) for g in adamw.param_groups] == [(0.3, 0.02, 1e-6)] * 2


def test_epochs_by_shots() -> None:
    assert [epochs_by_shots(k) for k in (1, 2, 4, 5, 8, 16)] == [50, 100, 100, 200, 200, 200]
    assert epochs_by_shots(None) == 200 and epochs_by_shots(0) == 200  # unknown shots: CoOp's 16-shot recipe
    assert epochs_by_shots(16, "imagenet") == 50 and epochs_by_shots(1, "dtd") == 50


@pytest.mark.parametrize(("changes", "message"), [
    ({"keep": "best"}, "heads.probe.keep must be one of last, best_val, best_val_or_start, got 'best'"),
    ({"optimizer": "rmsprop"}, "heads.probe.optimizer must be one of adamw, adam, sgd, got 'rmsprop'"),
    ({"lr_schedule": "step"}, "heads.probe.lr_schedule must be one of cosine, dassl, constant, got 'step'"),
    ({"epochs": 0}, "heads.probe.epochs must be at least 1, got 0"),
    ({"batch_size": 0}, "heads.probe.batch_size must be at least 1, got 0"),
    ({"min_steps": -1}, "heads.probe.min_steps must not be negative, got -1"),
    ({"warmup_epochs": -1}, "heads.probe.warmup_epochs must not be negative, got -1"),
    ({"patience": -2}, "heads.probe.patience must not be negative, got -2"),
])
def test_check_schedule_names_the_head_and_value(changes: dict, message: str) -> None:
    s = Schedule("sgd", 0.1, 0.0, 1, 1)
    check_schedule("probe", s)  # the valid one passes; its edges too
    check_schedule("probe", Schedule("sgd", 0.1, 0.0, 1, 1, min_steps=0, warmup_epochs=0, patience=0))
    with pytest.raises(ClipCacheError) as error:
        check_schedule("probe", Schedule(**{**s.__dict__, **changes}))
    assert str(error.value) == message

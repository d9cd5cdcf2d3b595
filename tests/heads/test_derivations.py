"""Each head against an independent derivation of what it should compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ClipCacheError
from pipeline.heads import create_head
from pipeline.heads.base import val_accuracy
from tests.heads.synthetic import World, make_task


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_gda_equals_the_lda_solution_computed_with_numpy(task) -> None:
    data, test = task
    head = create_head("gda").fit(data)
    views = unit(data.train.read("views/global").astype(np.float64))  # [V, N, D]
    x = views.reshape(-1, views.shape[-1])  # [V*N, D]
    y = np.tile(data.train.labels, views.shape[0])
    classes, dim = data.n_classes, x.shape[1]
    means = np.stack([x[y == k].mean(0) for k in range(classes)])  # [C, D]
    centred = x - means[y]
    sigma = np.cov(centred.T)  # [D, D], unbiased
    precision = dim * np.linalg.pinv((len(x) - 1) * sigma + np.trace(sigma) * np.eye(dim))
    weight = means @ precision
    bias = np.log(1 / classes) - 0.5 * np.einsum("cd,cd->c", weight, means)
    np.testing.assert_allclose(head.weight.numpy(), weight, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(head.bias.numpy(), bias, rtol=2e-4, atol=2e-5)
    f = unit(test.read("global").astype(np.float64))
    text = data.text.mean("tip7").astype(np.float64)
    expected = 100 * f @ text.T + float(head.alpha) * (f @ weight.T + bias)
    np.testing.assert_allclose(head.scores(test).numpy(), expected, rtol=1e-3, atol=1e-3)


def test_tip_adapter_with_alpha_zero_is_zero_shot(task) -> None:
    data, test = task
    tip = create_head("tip_adapter", {"alpha_grid": [0.0, 0.0, 1], "beta_grid": [1.0, 1.0, 1]}).fit(data)
    zero_shot = create_head("zero_shot", {"template_set": "tip7"}).fit(data)
    torch.testing.assert_close(tip.scores(test), zero_shot.scores(test))


def test_linear_probe_recovers_a_separable_problem(tmp_path: Path) -> None:
    world = World(noise=0.3, background=0.1, confusion=0.0)
    data, test = make_task(tmp_path, world, shots=8)
    probe = create_head("linear_probe").fit(data)
    assert val_accuracy(probe, test) == 1.0
    # every lambda separates validation perfectly: the tie goes to the weakest regularisation, as in CLIP's sweep
    assert probe.selected["val_acc"] == 1.0 and probe.selected["lambda"] == pytest.approx(1e-6)


def test_best_val_keeps_the_best_trained_epoch_never_the_start(task) -> None:
    data, _ = task
    head = create_head("tip_adapter_f", {"epochs": 6, "keep": "best_val"}).fit(data)
    accs = [h["val_acc"] for h in head.history]
    assert [h["epoch"] for h in head.history] == [1, 2, 3, 4, 5, 6]
    assert head.selected["epoch"] == 1 + int(np.argmax(accs)) and head.selected["keep"] == "best_val"
    assert head.selected["val_acc"] == pytest.approx(val_accuracy(head, data.val))  # after the search on the kept keys


def test_a_harmful_schedule_still_ships_a_trained_epoch(task) -> None:
    """Even when every epoch is worse on validation than the untrained start, the start is not a candidate."""
    data, _ = task
    start = create_head("clip_adapter")
    start.prepare(data, start.params.template_set, dim=data.train.array("global").shape[1], classes=data.n_classes)
    head = create_head("clip_adapter", {"epochs": 2, "lr": 50.0, "keep": "best_val"}).fit(data)
    assert head.selected["epoch"] in (1, 2)
    moved = [not torch.equal(a, b)
             for a, b in zip(start.state_dict().values(), head.state_dict().values(), strict=True)]
    assert any(moved)


def test_keep_last_ships_the_final_epoch_and_scores_validation_once(task) -> None:
    data, _ = task
    head = create_head("clip_adapter", {"epochs": 3}).fit(data)
    assert head.selected["epoch"] == 3 and head.selected["keep"] == "last"
    assert ["val_acc" in h for h in head.history] == [False, False, True]
    assert head.selected["val_acc"] == head.history[-1]["val_acc"] == val_accuracy(head, data.val)
    again = create_head("clip_adapter", {"epochs": 3}).fit(data)  # the same seed: the same last epoch, bit for bit
    for a, b in zip(head.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_min_steps_stretches_every_epoch_of_a_small_training_set(task) -> None:
    data, _ = task  # 5 classes x 4 shots = 20 images: 1 minibatch of 32 per epoch
    head = create_head("clip_adapter", {"epochs": 4, "min_steps": 10}).fit(data)
    assert [h["steps"] for h in head.history] == [3, 3, 3, 3] and head.selected["steps"] == 12
    plain = create_head("clip_adapter", {"epochs": 4}).fit(data)
    assert [h["steps"] for h in plain.history] == [1, 1, 1, 1]


@pytest.mark.parametrize("bad", [{"keep": "best_test"}, {"epochs": -5}, {"batch_size": 0}, {"min_steps": -1}])
def test_a_schedule_that_cannot_run_is_one_line_naming_the_value(task, bad: dict) -> None:
    with pytest.raises(ClipCacheError, match=r"heads\.clip_adapter") as error:
        create_head("clip_adapter", {"epochs": 2, **bad}).fit(task[0])
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_vt_clip_attention_concentrates_on_the_planted_locations(tmp_path: Path) -> None:
    """The class signal lives at 2 of 9 grid cells; the true class's query learns to look there."""
    world = World(background=1.5)
    data, test = make_task(tmp_path, world, shots=32, views=3)
    head = create_head("vt_clip", {"n_heads": 1, "epochs": 40}).fit(data)
    attention = head.attention(test)  # [N, C, HW]
    labels = torch.from_numpy(test.labels)
    true = attention[torch.arange(test.n), labels][:, list(world.planted)].sum(-1).mean()
    uniform = len(world.planted) / world.hw
    assert true > 1.4 * uniform, f"attention on planted cells {true:.2f}, uniform share {uniform:.2f}"
    zero_shot = create_head("zero_shot").fit(data)
    assert val_accuracy(head, test) > val_accuracy(zero_shot, test) + 0.1
    rows = np.array([3, 0])
    torch.testing.assert_close(head.attention(test, rows), attention[[0, 3]])


def test_coops_epochs_by_shots_and_imagenets_fifty() -> None:
    """COOP.md: 1 shot 50 epochs, 2-4 shots 100, 8-16 shots 200; ImageNet 50 at every shot count."""
    from pipeline.heads.loop import epochs_by_shots

    assert [epochs_by_shots(k) for k in (1, 2, 4, 8, 16)] == [50, 100, 100, 200, 200]
    assert [epochs_by_shots(k, "imagenet") for k in (1, 2, 4, 8, 16)] == [50] * 5
    assert epochs_by_shots(16, "caltech101") == 200


def test_dassl_cosine_is_constant_within_an_epoch_and_never_zero() -> None:
    """Dassl's ConstantWarmupScheduler(1 epoch, 1e-5) over CosineAnnealingLR(T_max = epochs), stepped per epoch:
    epoch e >= 1 runs at lr (1 + cos(pi (e - 1) / E)) / 2 (checked against Dassl's own classes when written)."""
    from pipeline.heads.loop import Schedule, lr_at

    s = Schedule("sgd", 2e-3, 5e-4, 5, 32, warmup_epochs=1, lr_schedule="dassl")
    assert [round(lr_at(e + 0.5, s), 9) for e in range(5)] == [1e-5, 0.002, 0.001809017, 0.001309017, 0.000690983]
    assert lr_at(2.0, s) == lr_at(2.99, s)
    per_step = Schedule("adamw", 1e-3, 0.0, 2, 32)  # Tip-Adapter-F: cosine per iteration to 0
    assert lr_at(0.0, per_step) == 1e-3 and lr_at(1.0, per_step) == pytest.approx(5e-4) and lr_at(2.0, per_step) < 1e-12

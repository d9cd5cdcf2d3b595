"""ProLIP against its authors' code (github astra-vision/ProLIP at b43e795cbf0b53a9b0aa83cf4f47d9755896ba6f,
methods/ProLIP.py), restated on the pooled features of a real tiny cache (ViT and ResNet towers), and the search
of their few-shot-validation setting."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pipeline.backbone import load_encoder
from pipeline.encode import run_encode
from pipeline.errors import ClipCacheError
from pipeline.heads import FitData, create_head
from pipeline.heads.prolip import view_cycle
from pipeline.params import encode_params, runtime_params
from pipeline.store import FeatureSplit, TextFeatures
from tests.helpers import TINY, encode_section


@pytest.fixture(scope="module", params=["vit", "resnet"])
def pooled_cache(request: pytest.FixtureRequest, image_root: Path, tmp_path_factory: pytest.TempPathFactory):
    section = encode_section(image_root, request.param, tmp_path_factory.mktemp("pooled"), views__count=3,
                             features__spatial=False, features__spatial_raw=False, features__late_tokens=0,
                             features__pooled=True)
    folder = run_encode(encode_params(section), runtime_params({"workers": 0, "batch_size": 8})).folder
    data = FitData(FeatureSplit(folder / "k2-s1" / "train.h5"), FeatureSplit(folder / "k2-s1" / "val.h5"),
                   TextFeatures(folder / "text.h5"), seed=1, device=torch.device("cpu"))
    return request.param, data, FeatureSplit(folder / "test.h5")


def reference(kind: str, data: FitData, epochs: int, lr: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight as our [width, D], bias) after the authors' loop: VisProjViT (x @ proj) or VisProjRN (nn.Linear with
    c_proj's weight trainable and bias frozen); Adam(eps=1e-4); CosineAnnealingLR(train_epoch) stepped each epoch;
    CE(100 normalize(proj(x)) @ text_weights) + lambda * MSELoss(sum)(initial, fine-tuned); the cnt view cycle."""
    model = load_encoder(TINY[kind], "none", torch.device("cpu")).model
    text_weights = torch.from_numpy(data.text.mean("coop")).float().T  # [D, C]
    if kind == "vit":
        initial = copy.deepcopy(model.visual.proj.detach())
        weight = torch.nn.Parameter(model.visual.proj.detach().clone())
        bias = None
    else:
        initial = copy.deepcopy(model.visual.attnpool.c_proj.weight.detach())  # [D, C_s]
        weight = torch.nn.Parameter(model.visual.attnpool.c_proj.weight.detach().clone())
        bias = model.visual.attnpool.c_proj.bias.detach()
    views = torch.from_numpy(data.train.read("views/pooled")).float()  # [V, N, width]
    labels = torch.from_numpy(data.train.labels).long()
    optimizer = torch.optim.Adam([weight], lr=lr, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    mse = torch.nn.MSELoss(reduction="sum")
    cnt = 0
    for _ in range(epochs):
        cnt = 0 if (cnt + 1) % views.shape[0] == 0 else cnt + 1
        x = views[cnt]
        features = x @ weight if bias is None else F.linear(x, weight, bias)
        logits = data.text.logit_scale * F.normalize(features, dim=-1) @ text_weights  # theirs: 100, CLIP's value
        loss = F.cross_entropy(logits, labels) + lam * mse(initial.view(-1), weight.view(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    ours = weight.detach() if bias is None else weight.detach().T  # [width, D]
    return ours, bias if bias is not None else torch.zeros(ours.shape[1])


def test_prolip_trains_the_projection_as_the_authors(pooled_cache) -> None:
    kind, data, test = pooled_cache
    epochs = 12
    head = create_head("prolip", {"epochs": epochs, "lr": 1e-2}).fit(data)  # a rate that moves the tiny model
    weight, bias = reference(kind, data, epochs, 1e-2, 1 / 2)  # lambda = 1/N at 2 shots
    torch.testing.assert_close(head.weight.detach(), weight, rtol=1e-4, atol=1e-6)
    start, _ = reference(kind, data, 0, 1e-2, 0.5)
    assert (head.weight.detach() - start).abs().max() > 1e-4  # it trained
    assert head.selected["lambda"] == 0.5 and head.selected["lr"] == 1e-2
    text_weights = torch.from_numpy(data.text.mean("coop")).float().T
    pooled = torch.from_numpy(test.read("pooled")).float()
    expected = data.text.logit_scale * F.normalize(pooled @ weight + bias, dim=-1) @ text_weights
    torch.testing.assert_close(head.scores(test), expected, rtol=1e-4, atol=1e-4)
    untouched = create_head("prolip", {"epochs": 3, "lr": 0.0}).fit(data)  # W = W0: exactly zero-shot CLIP
    zero = create_head("zero_shot", {"template_set": "reference"}).fit(data)
    torch.testing.assert_close(untouched.scores(test), zero.scores(test), rtol=1e-4, atol=1e-4)


def test_the_search_is_the_authors_grid_on_validation(pooled_cache) -> None:
    kind, data, _ = pooled_cache
    if kind == "resnet":
        pytest.skip("the search is the same code for both towers; the ViT case checks it")
    epochs = 4
    head = create_head("prolip", {"epochs": epochs, "search": True}).fit(data)
    text_weights = torch.from_numpy(data.text.mean("coop")).float().T
    val = torch.from_numpy(data.val.read("pooled")).float()
    best, chosen = 0.0, None
    for lr in [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8]:
        for lam in [10, 1, 0.1, 0.01, 0.001, 0.0001, 0]:
            weight, bias = reference(kind, data, epochs, lr, lam)
            logits = data.text.logit_scale * F.normalize(val @ weight + bias, dim=-1) @ text_weights
            acc = 100 * float((logits.argmax(1).numpy() == data.val.labels).mean())
            if acc > best:
                best, chosen = acc, (lr, lam)
    assert chosen is not None and (head.selected["lr"], head.selected["lambda"]) == pytest.approx(chosen)


def test_view_cycle_and_refusals(encoded) -> None:
    assert view_cycle(7, 3) == [1, 2, 0, 1, 2, 0, 1] and view_cycle(3, 300) == [1, 2, 3]
    with pytest.raises(ClipCacheError, match=r"heads\.prolip\.lambda_rule must be one of 1/N, 1/N2, fixed"):
        create_head("prolip", {"lambda_rule": "1/K"})
    folder = encoded[1].folder  # a cache encoded without pooled features
    data = FitData(FeatureSplit(folder / "k2-s1" / "train.h5"), FeatureSplit(folder / "k2-s1" / "val.h5"),
                   TextFeatures(folder / "text.h5"), seed=1, device=torch.device("cpu"))
    with pytest.raises(ClipCacheError, match=r"encode with encode\.features\.pooled: true"):
        create_head("prolip").fit(data)

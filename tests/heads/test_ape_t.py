"""APE-T against its authors' code (github yangyangyang127/APE at 70460de74d1e967f8b4d270b3419373694758536: main.py
APE_T, utils.py APE_Training, cal_criterion, SmoothCrossEntropy), restated here on the same cached tensors and the
same minibatches; and its per-data-set values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.heads import FitData, create_head
from tests.heads.test_ape import ape_task  # noqa: F401  (the fixture: text with ragged descriptions)
from tests.heads.test_parity import batches


def unit(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True)


def authors_inputs(data: FitData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clip_weights [D, C], cache keys [M, D] sorted by class, their labels): extract_features.py on our tensors."""
    text = data.text
    embeddings, offsets = text.description_embeddings()
    weights = []
    for c in range(len(offsets) - 1):
        rows = torch.cat([torch.from_numpy(text.per_template("coop")[c]),
                          torch.from_numpy(embeddings[offsets[c]: offsets[c + 1]])])
        weights.append(unit(unit(rows.float()).mean(dim=0)))
    keys = unit(torch.from_numpy(data.train.read("views/global")).float().mean(dim=0))  # [M, D]
    labels = torch.from_numpy(data.train.labels).long()
    order = torch.argsort(labels, stable=True)
    return torch.stack(weights, dim=1), keys[order], labels[order]


def authors_channels(clip_weights: torch.Tensor, keys: torch.Tensor, feat_num: int, w: tuple[float, float]):
    """cal_criterion(only_use_txt=False): sim over every pair of different classes' text and keys."""
    dim, classes = clip_weights.shape
    feats = torch.cat([clip_weights.t().unsqueeze(1), keys.reshape(classes, -1, dim)], dim=1).double()
    sim_sum, count = torch.zeros(dim, dtype=torch.float64), 0
    for i in range(classes):
        for j in range(classes):
            if i != j:
                for m in range(feats.shape[1]):
                    for n in range(feats.shape[1]):
                        sim_sum += feats[i, m] * feats[j, n]
                        count += 1
    criterion = -w[0] * sim_sum / count + w[1] * torch.var(clip_weights.double(), dim=1)
    return torch.topk(criterion, k=feat_num).indices


class Training(torch.nn.Module):
    """APE_Training: res [C, F] zeros on W's and (per shot of each class) the keys' kept channels; value weights."""

    def __init__(self, classes: int, keys: int, indices: torch.Tensor, shots: int) -> None:
        super().__init__()
        self.indices, self.shots = indices, shots
        self.value_weights = torch.nn.Parameter(torch.ones(keys, 1))
        self.res = torch.nn.Parameter(torch.zeros(classes, len(indices)))

    def forward(self, cache_keys, clip_weights, cache_values):
        res_keys = self.res.unsqueeze(1).repeat(1, self.shots, 1).reshape(-1, len(self.indices))
        new_keys = cache_keys.clone()
        new_keys[:, self.indices] = new_keys[:, self.indices] + res_keys
        new_weights = clip_weights.clone()
        new_weights[self.indices, :] = clip_weights[self.indices, :] + self.res.t()
        return new_keys, new_weights, cache_values * self.value_weights


def logits(adapter, f, keys, weights, values, beta, alpha):
    new_keys, new_weights, r_fw = adapter(keys, weights, values)
    return 100.0 * f @ new_weights + ((-1) * (beta - beta * (f @ new_keys.t()))).exp() @ r_fw * alpha


def test_ape_t_trains_and_searches_as_the_authors(ape_task) -> None:  # noqa: F811 (the imported fixture)
    data, test = ape_task
    epochs, batch_size, feat_num = 4, 8, 12
    head = create_head("ape_t", {"per_dataset": False, "feat_num": feat_num, "epochs": epochs,
                                 "batch_size": batch_size, "keep": "last", "search_step": [30, 8]}).fit(data)
    clip_weights, keys, labels = authors_inputs(data)
    indices = authors_channels(clip_weights, keys, feat_num, (0.2, 0.8))
    assert sorted(head.channels.tolist()) == sorted(indices.tolist())
    values = F.one_hot(labels, data.n_classes).float()
    adapter = Training(data.n_classes, keys.shape[0], head.channels.clone(), keys.shape[0] // data.n_classes)
    drawn = batches(data, batch_size, epochs)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3, eps=1e-3, weight_decay=1e-1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(drawn[0]))
    for epoch in drawn:
        for batch in epoch:
            out = logits(adapter, batch["global"], keys, clip_weights, values, 1.0, 3.0)
            target = F.one_hot(batch["labels"], data.n_classes).float()  # SmoothCrossEntropy(alpha=0)
            loss = -(target * torch.log_softmax(out, dim=-1)).sum(dim=-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    torch.testing.assert_close(head.res.detach(), adapter.res.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(head.value_weights.detach(), adapter.value_weights.detach()[:, 0], rtol=1e-4,
                               atol=1e-6)
    assert adapter.res.detach().abs().max() > 1e-3  # it moved
    val = unit(torch.from_numpy(data.val.read("global")).float())
    val_labels = torch.from_numpy(data.val.labels).long()
    best, chosen = 0.0, (0.0, 0.0)
    with torch.no_grad():
        for beta in [i * (7 - 0.1) / 30 + 0.1 for i in range(30)]:
            for alpha in [i * (7 - 0.1) / 8 + 0.1 for i in range(8)]:
                acc = float((logits(adapter, val, keys, clip_weights, values, beta, alpha).argmax(1)
                             == val_labels).float().mean())
                if acc > best:
                    best, chosen = acc, (beta, alpha)
        assert (head.selected["beta"], head.selected["alpha"]) == pytest.approx(chosen)
        images = unit(torch.from_numpy(test.read("global")).float())
        expected = logits(adapter, images, keys, clip_weights, values, *chosen)
    torch.testing.assert_close(head.scores(test), expected, rtol=1e-4, atol=1e-4)


def test_best_val_keeps_a_trained_epoch_and_per_dataset_values_apply(ape_task) -> None:  # noqa: F811
    data, _ = ape_task
    head = create_head("ape_t", {"per_dataset": False, "feat_num": 8, "epochs": 3, "batch_size": 8,
                                 "search_step": [4, 3]}).fit(data)
    assert 1 <= head.selected["epoch"] <= 3 and head.selected["keep"] == "best_val"
    from pipeline.heads.reference import for_dataset

    params, applied = for_dataset("ape_t", create_head("ape_t").params, "eurosat")
    assert (params.feat_num, params.epochs, params.search_scale, params.init_alpha) == (900, 200, (30.0, 5.0), 1.0)
    assert applied and for_dataset("ape_t", create_head("ape_t").params, "image_folder")[1] == {}
    assert np.isclose(for_dataset("ape_t", create_head("ape_t").params, "food101")[0].lr, 1e-4)

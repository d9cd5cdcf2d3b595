"""TransCLIP against the authors' maths, restated here densely (MaxZanella/transduction-for-vlms at 6a9e8f3,
TransCLIP_solver/TransCLIP.py and TransCLIP_utils.py): a dense [R, Q] affinity W, broadcast [N, K, D] likelihoods and
variances, the few-shot rows (shots, test) against assignments (test, shots), the state carried across gammas, and
the gamma of the best validation accuracy read through each val image's nearest test image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.scoring.transclip import Settings, Support, transclip

AUTHORS_FS = Settings(lam=0.5, gammas=(0.002, 0.01, 0.02, 0.2))
AUTHORS_ZS = Settings(lam=1.0, gammas=(0.0,))


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def reference(query: torch.Tensor, y_hat: torch.Tensor, support: Support | None, lam: float,
              gammas: tuple[float, ...], aligned: bool = False) -> tuple[torch.Tensor, tuple[float, float] | None]:
    """The authors' solver in float64: z of the best-val gamma in few-shot (as their reported accuracy), and
    (that gamma, its val accuracy)."""
    q = unit(query.double())
    n, d = q.shape
    k_classes = y_hat.shape[1]
    y = y_hat.double()
    if support is not None:
        s = unit(support.features.double())
        onehot = torch.nn.functional.one_hot(support.labels.long(), k_classes).double()
        rows = torch.cat((q, s)) if aligned else torch.cat((s, q))
    else:
        rows = q
    aff = rows @ q.T  # [R, Q]
    knn = aff.topk(4, dim=1).indices[:, 1:]
    w = torch.zeros_like(aff).scatter_(1, knn, aff.gather(1, knn))  # dense W [R, Q]
    z = y.clone()
    if support is not None:
        mu = unit(onehot.T @ s)
    else:
        top = z.topk(8, dim=0).indices  # [8, K]
        mu = torch.stack([(q[top[:, c]] * z[top[:, c], c:c + 1]).mean(0) for c in range(k_classes)])
        mu = unit(mu)
    std = torch.full((d,), 1.0 / d, dtype=torch.float64)
    best_val, best_z, best_gamma = -1.0, None, 0.0
    for gamma in gammas:
        for step in range(11):
            ll = -0.5 * (((q[:, None, :] - mu[None]) ** 2) / std).sum(-1)  # [Q, K]
            zz = z.clone() if support is None else torch.cat((z, onehot))
            for _ in range(5):
                inter = ll + (50 / 6) * (w.T @ zz + (w @ zz[:n])[:n])
                inter = inter - inter.max(1, keepdim=True).values
                inter = y ** lam * torch.exp(inter / 50)
                zz[:n] = inter / inter.sum(1, keepdim=True)
            z = zz[:n]
            if step == 10:
                break
            if support is None:
                mu = unit((z.T @ q) / z.sum(0)[:, None])
                std = (z[:, :, None] * (q[:, None, :] - mu[None]) ** 2).sum((0, 1)) / z.sum()
            else:
                a = gamma * 50 / s.shape[0]
                mu = unit((z.T @ q / n + a * onehot.T @ s) / (z.sum(0)[:, None] / n + a * onehot.sum(0)[:, None]))
                num = (z[:, :, None] * (q[:, None, :] - mu[None]) ** 2).sum((0, 1)) / n
                num = num + a * (onehot[:, :, None] * (s[:, None, :] - mu[None]) ** 2).sum((0, 1))
                std = num / (z.sum() / n + a * onehot.sum())
        if support is None:
            return z, None
        nearest = (unit(support.val_features.double()) @ q.T).argmax(1)
        val = float((z[nearest].argmax(1) == support.val_labels).double().mean())
        if val > best_val:
            best_val, best_z, best_gamma = val, z, gamma
    assert best_z is not None
    return best_z, (best_gamma, best_val)


def world(seed: int = 0, n: int = 120, k: int = 4, d: int = 16, shots: int = 3) -> tuple:
    """Clustered unit features, noisy text-like predictions, shots and a val split from the same clusters."""
    g = torch.Generator().manual_seed(seed)
    means = unit(torch.randn(k, d, generator=g))

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(count) % k
        return unit(means[labels] + 0.45 * torch.randn(count, d, generator=g)), labels

    query, labels = draw(n)
    text = unit(means + 0.6 * torch.randn(k, d, generator=g))
    y_hat = torch.softmax(20 * query @ text.T, dim=1).float()  # [Q, K]
    shot_x, shot_y = draw(k * shots)
    val_x, val_y = draw(k * 10)
    return query.float(), labels, y_hat, Support(shot_x.float(), shot_y, val_x.float(), val_y)


def test_zero_shot_mode_matches_the_authors() -> None:
    query, _, y_hat, _ = world()
    ours, selected = transclip(query, y_hat, AUTHORS_ZS)
    theirs, _ = reference(query, y_hat, None, 1.0, (0.0,))
    assert selected == {}
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-4, atol=1e-6)
    assert (ours.argmax(1) != y_hat.argmax(1)).any()  # the refinement changed some predictions: it did something


@pytest.mark.parametrize(("seed", "aligned", "gamma"), [(4, False, 0.2), (3, False, 0.01), (4, True, None)])
def test_few_shot_mode_matches_the_authors_and_selects_the_same_gamma(seed: int, aligned: bool,
                                                                       gamma: float | None) -> None:
    query, _, y_hat, support = world(seed=seed)
    settings = Settings(lam=0.5, gammas=AUTHORS_FS.gammas, aligned=aligned)
    ours, selected = transclip(query, y_hat, settings, support)
    theirs, best = reference(query, y_hat, support, 0.5, AUTHORS_FS.gammas, aligned)
    torch.testing.assert_close(ours.double(), theirs, rtol=1e-4, atol=1e-6)
    assert best is not None and selected["gamma"] == best[0] and selected["val_top1"] == pytest.approx(best[1])
    if gamma is not None:
        assert selected["gamma"] == gamma  # worlds where a later gamma wins: the selection is exercised


def test_the_two_pairings_differ_in_few_shot_mode() -> None:
    """`aligned` is a real departure from the authors' row order, not a renaming."""
    query, _, y_hat, support = world(seed=2)
    authors, _ = transclip(query, y_hat, AUTHORS_FS, support)
    aligned, _ = transclip(query, y_hat, Settings(lam=0.5, gammas=AUTHORS_FS.gammas, aligned=True), support)
    assert not torch.allclose(authors, aligned, atol=1e-4)


def test_chunked_rows_match_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kNN search and the likelihood in row chunks give what one block gives."""
    import pipeline.scoring.transclip as module

    query, _, y_hat, support = world(seed=3, n=50)
    whole, _ = transclip(query, y_hat, AUTHORS_FS, support)
    monkeypatch.setattr(module, "CHUNK", 7)
    chunked, _ = transclip(query, y_hat, AUTHORS_FS, support)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-7)


def test_transduction_recovers_clusters_zero_shot_misses() -> None:
    """Known answer: well-separated clusters whose text prototypes are biased toward a neighbour class; TransCLIP-ZS
    reads the cluster structure of the test features and beats the predictions it starts from."""
    g = torch.Generator().manual_seed(5)
    k, d, n = 6, 64, 300
    means = unit(torch.randn(k, d, generator=g))
    labels = torch.arange(n) % k
    query = unit(means[labels] + torch.randn(n, d, generator=g) / d ** 0.5)
    text = unit(means + 0.9 * means.roll(1, dims=0))  # each class's text leans toward another class's images
    y_hat = torch.softmax(10 * query @ text.T, dim=1)  # soft, as CLIP's are
    start = float((y_hat.argmax(1) == labels).double().mean())
    z, _ = transclip(query, y_hat, AUTHORS_ZS)
    after = float((z.argmax(1) == labels).double().mean())
    assert after >= start + 0.1, (start, after)


def test_assignments_are_deterministic_probabilities() -> None:
    """Two solves of the same inputs agree exactly, and every row of z is a probability vector."""
    query, labels, y_hat, support = world(seed=4)
    z1, _ = transclip(query, y_hat, AUTHORS_FS, support)
    z2, _ = transclip(query.clone(), y_hat.clone(), AUTHORS_FS, support)
    torch.testing.assert_close(z1, z2)
    assert np.isfinite(z1.numpy()).all() and torch.allclose(z1.sum(1), torch.ones(len(labels)), atol=1e-5)

"""TransCLIP: transductive refinement of a head's test predictions with the test split's image features.

Paper: Zanella, Gérin and Ben Ayed, "Boosting Vision-Language Models with Transduction", NeurIPS 2024,
arXiv 2406.01837. Authors' code: github.com/MaxZanella/transduction-for-vlms at 6a9e8f3,
TransCLIP_solver/TransCLIP.py (the solver) and TransCLIP_solver/TransCLIP_utils.py (its updates).

A Gaussian mixture (one mean per class, one diagonal variance shared by all classes) is fitted to the test
features, jointly with soft assignments z [Q, K] that stay close (KL, weight lambda) to the initial predictions
y_hat and agree with their k nearest test neighbours (a Laplacian term on the kNN affinity graph). Each outer
iteration: z update (5 inner steps), mean update, variance update; 10 outer iterations. Zero-shot mode (the authors'
TransCLIP-ZS, also "on top" of a fitted head): lambda 1, no labelled data. Few-shot mode (TransCLIP-FS): the
labelled shots join the graph and the statistics with weight gamma, lambda 0.5, and gamma is chosen among
(0.002, 0.01, 0.02, 0.2) on the validation split, each validation image read through its nearest test image (the
state carries over from one gamma to the next, as in the authors' loop). The test labels are never an input.

Where we depart from the authors' code (none changes a number in zero-shot mode):
- The Gaussian log-likelihood, the variance update and the kNN search are computed through matrix products and in
  row chunks instead of [N, K, D] broadcasts and a dense [Q, Q] affinity, so that ImageNet's 50,000 test images fit
  in a few GB; equal to the authors' up to float rounding (tests/scoring/test_transclip.py).
- Few-shot mode: the authors' graph rows are ordered (shots, test images) while the assignments they multiply are
  ordered (test images, shots), so every Laplacian message reaches the test image |S| positions away from its
  neighbour. `pairing: authors` (the default) keeps that order, so that numbers compare with the paper's;
  `pairing: aligned` pairs each row with its own assignment.
- The initial predictions are the head's own probabilities (softmax of its logits, the model's logit scale: 100 for
  trained CLIP, the authors' fixed factor); a head in probability units is clipped at 0 and renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LAPLACIAN = 50.0  # the authors' fixed weight: z ∝ y_hat^lambda exp((loglik + 50/(2k) * W z) / 50); gamma * 50 / |S|
CHUNK = 2048  # rows per matrix product in the kNN search and the likelihood


@dataclass(frozen=True)
class Settings:
    """The solver's hyper-parameters (the authors' values are the defaults of
    pipeline.transductive_params.TransClipParams)."""

    lam: float  # weight of the KL term to the initial predictions
    gammas: tuple[float, ...]  # weights of the labelled shots, chosen on validation (few-shot mode); (0,) otherwise
    iterations: int = 10  # outer iterations (z, mean, variance)
    z_iterations: int = 5  # inner iterations of the z update
    neighbors: int = 3  # k of the kNN graph
    confident: int = 8  # zero-shot mean init: the most confident test images per class
    aligned: bool = False  # few-shot graph rows paired with their own assignments (False: the authors' order)


@dataclass
class Support:
    """The labelled data of few-shot mode: the shots and the validation split, L2-normalised features."""

    features: torch.Tensor  # [S, D]
    labels: torch.Tensor  # [S]
    val_features: torch.Tensor  # [V, D]
    val_labels: torch.Tensor  # [V]


@dataclass
class Graph:
    """The kNN affinity graph: row r links to test images `index[r]` with weights `weight[r]`."""

    index: torch.Tensor  # [R, k] test-image columns
    weight: torch.Tensor  # [R, k] cosine affinities


def knn_graph(rows: torch.Tensor, query: torch.Tensor, neighbors: int) -> Graph:
    """Each row's `neighbors` most similar test images after its most similar one (itself, for a test image)."""
    index, weight = [], []
    for start in range(0, rows.shape[0], CHUNK):
        sims = rows[start:start + CHUNK] @ query.T  # [r, D] @ [D, Q] -> [r, Q]
        top = sims.topk(neighbors + 1, dim=1)
        index.append(top.indices[:, 1:])
        weight.append(top.values[:, 1:])
    return Graph(torch.cat(index), torch.cat(weight))


def laplacian(graph: Graph, z_rows: torch.Tensor, z_query: torch.Tensor) -> torch.Tensor:
    """W^T z_rows + (W z_query)[:Q]: [Q, K], the authors' two messages of the z update (W [R, Q] sparse; z_rows
    pairs with the graph's rows, z_query with its columns)."""
    n_query = z_query.shape[0]
    incoming = torch.zeros_like(z_query)
    for j in range(graph.index.shape[1]):  # row r sends w_rj z_rows[r] to its j-th neighbour
        incoming.index_add_(0, graph.index[:, j], graph.weight[:, j, None] * z_rows)  # [R, K] into [Q, K]
    outgoing = (graph.weight[:n_query, :, None] * z_query[graph.index[:n_query]]).sum(1)  # [Q, k, K] -> [Q, K]
    return incoming + outgoing


def log_likelihood(x: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """-1/2 sum_d (x_d - mu_kd)^2 / var_d: [N, K], as products (x^2/var - 2 x mu/var + mu^2/var)."""
    inv = 1.0 / var  # [D]
    out = torch.empty(x.shape[0], mu.shape[0], dtype=x.dtype)
    mu_term = (mu * mu) @ inv  # [K, D] @ [D] -> [K]
    scaled = (mu * inv).T  # [D, K]
    for start in range(0, x.shape[0], CHUNK):
        rows = x[start:start + CHUNK]
        out[start:start + CHUNK] = -0.5 * ((rows * rows) @ inv[:, None] - 2 * rows @ scaled + mu_term)  # [r, K]
    return out


def update_z(loglik: torch.Tensor, y_prior: torch.Tensor, z: torch.Tensor, graph: Graph, shots: torch.Tensor | None,
             settings: Settings) -> torch.Tensor:
    """The z step: `z_iterations` fixed-point updates of the assignments [Q, K]."""
    scale = LAPLACIAN / (2 * settings.neighbors)
    for _ in range(settings.z_iterations):
        z_rows = z if shots is None else torch.cat((z, shots))  # [Q (+ S), K]; the graph's row order decides pairing
        logits = loglik + scale * laplacian(graph, z_rows, z)
        logits = logits - logits.max(dim=1, keepdim=True).values
        unnorm = y_prior * torch.exp(logits / LAPLACIAN)  # y_hat^lambda exp(. / 50)
        z = unnorm / unnorm.sum(dim=1, keepdim=True)
    return z


def weighted_stats(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sum_i w_ik x_i [K, D], sum_i w_ik x_i^2 summed over k [D], sum_i w_ik [K]) of features x [N, D]."""
    return weights.T @ x, weights.sum(1) @ (x * x), weights.sum(0)  # [K, N] @ [N, D]; [N] @ [N, D]


def update_mu(x: torch.Tensor, z: torch.Tensor, support: tuple[torch.Tensor, torch.Tensor] | None,
              gamma: float) -> torch.Tensor:
    """Class means [K, D]: z-weighted test features (1/Q each), plus the shots at gamma*50/|S| each; unit norm."""
    first, _, mass = weighted_stats(x, z / x.shape[0])
    if support is not None:
        feats, onehot = support
        s_first, _, s_mass = weighted_stats(feats, onehot * (gamma * LAPLACIAN / feats.shape[0]))
        first, mass = first + s_first, mass + s_mass
    mu = first / mass[:, None]
    return mu / mu.norm(dim=1, keepdim=True)


def update_var(x: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, support: tuple[torch.Tensor, torch.Tensor] | None,
               gamma: float) -> torch.Tensor:
    """The shared diagonal variance [D]: sum_ik w_ik (x_i - mu_k)^2 / sum_ik w_ik over the test images (w = z/Q)
    and, when gamma > 0, the shots (w = gamma*50/|S|), expanded as x^2 - 2 x mu + mu^2."""
    parts = [(x, z / x.shape[0])]
    if support is not None and gamma > 0:
        parts.append((support[0], support[1] * (gamma * LAPLACIAN / support[0].shape[0])))
    total, mass = torch.zeros(x.shape[1], dtype=x.dtype), torch.zeros((), dtype=x.dtype)
    for feats, weights in parts:
        first, second, per_class = weighted_stats(feats, weights)
        total = total + second - 2 * (mu * first).sum(0) + per_class @ (mu * mu)  # [D]
        mass = mass + per_class.sum()
    return total / mass


def init_mu(x: torch.Tensor, z: torch.Tensor, support: tuple[torch.Tensor, torch.Tensor] | None,
            confident: int) -> torch.Tensor:
    """Initial means [K, D]: the sum of each class's shots (few-shot), or the mean of z_ik x_i over its `confident`
    most confident test images (zero-shot); unit norm."""
    if support is not None:
        mu = support[1].T @ support[0]  # [K, S] @ [S, D]
    else:
        top = z.topk(min(confident, z.shape[0]), dim=0).indices  # [m, K]
        picked = z.gather(0, top)  # [m, K] z of class k at its picked images
        mu = (picked[:, :, None] * x[top]).mean(0)  # [m, K, D] -> [K, D]
    return mu / mu.norm(dim=1, keepdim=True)


def normalise(features: torch.Tensor) -> torch.Tensor:
    return F.normalize(features.double(), dim=1).float()


def transclip(query: torch.Tensor, y_hat: torch.Tensor, settings: Settings,
              support: Support | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The refined test assignments z [Q, K] and what was selected (gamma and its validation accuracy, few-shot).

    Args:
        query: the test split's image features [Q, D] (never its labels).
        y_hat: the initial predictions, probabilities [Q, K].
        support: the shots and the validation split (few-shot mode), or None (zero-shot mode).
    """
    x = normalise(query)
    n_classes = y_hat.shape[1]
    y_prior = y_hat.float() ** settings.lam
    labelled = None
    if support is None:
        graph = knn_graph(x, x, settings.neighbors)
    else:
        shots = normalise(support.features)
        labelled = (shots, F.one_hot(support.labels.long(), n_classes).float())
        rows = torch.cat((x, shots)) if settings.aligned else torch.cat((shots, x))  # [Q + S, D]
        graph = knn_graph(rows, x, settings.neighbors)
        nearest = (normalise(support.val_features) @ x.T).argmax(dim=1)  # [V]: each val image's nearest test image
    z = y_hat.float()
    mu = init_mu(x, z, labelled, settings.confident)
    var = torch.full((x.shape[1],), 1.0 / x.shape[1])
    best: tuple[float, torch.Tensor, float] | None = None
    for gamma in settings.gammas:
        for step in range(settings.iterations + 1):
            z = update_z(log_likelihood(x, mu, var), y_prior, z, graph, None if labelled is None else labelled[1],
                         settings)
            if step == settings.iterations:
                break
            mu = update_mu(x, z, labelled, gamma)
            var = update_var(x, z, mu, labelled, gamma)
        if support is None:
            return z, {}
        val_top1 = float((z[nearest].argmax(1) == support.val_labels).float().mean())
        if best is None or val_top1 > best[0]:
            best = (val_top1, z, gamma)
    assert best is not None  # gammas is never empty (checked with the params)
    return best[1], {"gamma": best[2], "val_top1": best[0]}

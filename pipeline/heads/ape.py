"""APE: Adaptive Prior rEfinement, training-free: the feature channels where the classes' text and few-shot images
differ most and vary least, a cache over them, and cache values re-weighted by how much zero-shot disagrees with each
training image's label.

Paper: Zhu, Zhang, He, Zhou, Wang, Zhao, Gao, "Not All Features Matter: Enhancing Few-shot CLIP with Adaptive Prior
Refinement", ICCV 2023, arXiv 2304.01195. Followed from the authors' code, github yangyangyang127/APE at
70460de74d1e967f8b4d270b3419373694758536: main.py (APE), utils.py (cal_criterion with only_use_txt=False),
extract_features.py (extract_text_feature, extract_few_shot_feature), configs/<data set>.yaml:
- the classifier W [D, C]: per class, the normalised mean of the normalised embeddings of its templates (CoOp's
  template; ImageNet: the 7-template ensemble) and of its CuPL descriptions (`encode.descriptions`);
- keys: per training image, the mean of its raw augmented views' features, normalised (the authors' 10 augmented
  passes; the cache's views), values one-hot;
- the criterion over channels d: -w0 sim_d + w1 var_c(W_dc), sim_d the mean over pairs of different classes of the
  product of their features (text and keys) in channel d; the top `feat_num` channels are kept;
- R_FW = exp(gamma KL), KL the log2 divergence of a key's one-hot label from the softmax of its refined key @ refined W
  (no temperature, as theirs); logits = logit_scale f W + alpha exp(-beta (1 - f' K'^T)) (L * R_FW), primes the kept
  channels renormalised;
- beta, alpha, gamma searched on validation over i (scale - 0.1) / steps + 0.1 (beta, alpha) and i scale / steps
  (gamma), beta outermost and gamma innermost, the first strictly best; with `per_dataset: true` their per-data-set
  scales, channel counts and weights (resources/per_dataset.json).
Departures: ImageNet is searched on its validation split, never on test (theirs searches on the ImageNet val set that
is also their test set); the zero-shot term uses the model's logit scale (theirs writes 100, CLIP's value); float32
where they run float16; channels are capped at D for models narrower than the count asked for.
APE-T, the trained variant, is `ape_t` (pipeline/heads/ape_t.py, which says how it reads the authors' two channel
counts).
"""

from __future__ import annotations

from typing import Unpack

import numpy as np
import torch

from pipeline.data.registry import layout_of
from pipeline.data.templates import resolve_template_set
from pipeline.errors import ClipCacheError
from pipeline.head_params.ape import REQUIRES, APEParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.inputs import FitData, TextReader, view_mean_keys
from pipeline.heads.maths import kernel_class_sums, kernel_of, normalize, sort_by_label
from pipeline.heads.registry import register_head

MAX_SEARCH = 10_000_000  # (beta, alpha, gamma) points of one search


def ape_classifier(text: TextReader, template_set: str, descriptions: bool, device: torch.device) -> torch.Tensor:
    """[C, D] per class: the normalised mean of its normalised template and description embeddings."""
    name = resolve_template_set(template_set, layout_of(text.provenance["dataset"]))
    texts = normalize(torch.from_numpy(text.per_template(name)).float())  # [C, T, D]
    sums, counts = texts.sum(dim=1), torch.full((texts.shape[0],), float(texts.shape[1]))  # [C, D], [C]
    if descriptions:
        embeddings, offsets = text.description_embeddings()  # [S, D], [C + 1]
        unit = normalize(torch.from_numpy(embeddings).float())
        owner = torch.from_numpy(np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)))  # [S] class of each row
        sums = sums.index_add(0, owner, unit)
        counts = counts + torch.from_numpy(np.diff(offsets)).float()
    return normalize(sums / counts[:, None]).to(device)  # [C, D]


def channel_criterion(text: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor,
                      weights: tuple[float, float]) -> torch.Tensor:
    """[D] -w0 sim + w1 var: sim_d the mean over (i, j) of different classes and all of their features (the text
    embedding and the keys) of x_i,d x_j,d; var_d the unbiased variance of W_d over classes."""
    classes = text.shape[0]
    per_class = text.clone().index_add(0, labels, keys)  # [C, D]: each class's text plus its keys, summed
    samples = 1 + torch.bincount(labels, minlength=classes)  # [C]
    if not bool((samples == samples[0]).all()):
        raise ClipCacheError("ape needs the same number of training images in every class (a K-shot set)")
    total = per_class.sum(dim=0)  # [D]
    pairs = total**2 - (per_class**2).sum(dim=0)  # sum over i != j of s_i s_j, per channel
    sim = pairs / (classes * (classes - 1) * int(samples[0]) ** 2)
    return -weights[0] * sim + weights[1] * text.var(dim=0)  # var over classes, unbiased as torch.var


def gamma_class_sums(kernel: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """[G, N, C]: for every row of `weights` [G, M], the kernel [N, M] times it, summed over each class's keys."""
    shots = len(labels) // max(classes, 1)
    if shots * classes == len(labels) and bool((labels.view(classes, shots) ==
                                                torch.arange(classes, device=labels.device)[:, None]).all()):
        per_class = kernel.view(kernel.shape[0], classes, shots).permute(1, 0, 2)  # [C, N, K] (keys sorted by label)
        by_gamma = weights.view(weights.shape[0], classes, shots).permute(1, 2, 0)  # [C, K, G]
        return torch.bmm(per_class, by_gamma).permute(2, 1, 0)  # [C, N, K] @ [C, K, G] -> [G, N, C]
    return torch.stack([kernel_class_sums(kernel * w, labels, classes) for w in weights])  # [G, N, C]


def correct_at(zero_shot: torch.Tensor, cache: torch.Tensor, labels: torch.Tensor,
               alphas: torch.Tensor) -> torch.Tensor:
    """[A] rows whose argmax of zero_shot + alpha cache is their label, for each alpha (ascending). Each logit is
    linear in alpha, so a row right at the first and the last alpha is right at every one between (its label beats
    every class at both ends), and a row whose label loses to the same class at both ends loses at every one between;
    only the others are scored at each alpha (argmax's first-index tie rule holds along the segment too)."""
    first = (zero_shot + alphas[0] * cache).argmax(-1)  # [N]
    last = (zero_shot + alphas[-1] * cache).argmax(-1)
    right = (first == labels) & (last == labels)
    open_rows = ~right & (first != last)
    rows = torch.nonzero(open_rows)[:, 0]
    logits = zero_shot[rows][None] + alphas[:, None, None] * cache[rows][None]  # [A, n, C]
    return int(right.sum()) + (logits.argmax(-1) == labels[rows]).sum(-1).cpu()


def check_search_steps(head: str, steps: tuple[int, ...], limit: int) -> None:
    """One line naming the head when a search grid has a count below 1 or more than `limit` points in all."""
    if min(steps) < 1 or int(np.prod(steps)) > limit:
        raise ClipCacheError(f"heads.{head}.search_step must be {len(steps)} counts >= 1 of at most {limit} points "
                             f"in all, got {list(steps)}")


def first_best(correct: torch.Tensor, grids: tuple[list[float], ...]) -> tuple[tuple[float, ...], int]:
    """(the grid point of the first strictly best count, in row-major order as the authors' nested loops, or zeros
    when no point is ever right: their best starts at 0; that count) of `correct` [len(g) for g in grids]."""
    top = int(correct.max())
    if top == 0:
        return tuple(0.0 for _ in grids), 0
    first = np.unravel_index(int(torch.argmax((correct.flatten() == top).int())), correct.shape)
    return tuple(grid[int(i)] for grid, i in zip(grids, first, strict=True)), top


def search_values(scale: tuple[float, float, float], steps: tuple[int, int, int]) -> tuple[list[float], ...]:
    """The authors' lists: beta and alpha i (scale - 0.1) / steps + 0.1, gamma i scale / steps, i < steps."""
    beta = [i * (scale[0] - 0.1) / steps[0] + 0.1 for i in range(steps[0])]
    alpha = [i * (scale[1] - 0.1) / steps[1] + 0.1 for i in range(steps[1])]
    gamma = [i * scale[2] / steps[2] for i in range(steps[2])]
    return beta, alpha, gamma


@register_head("ape")
class APE(Head):
    Params = APEParams
    requires = REQUIRES

    channels: torch.Tensor  # [F] the kept channels
    cache_keys: torch.Tensor  # [M, F] keys over the kept channels, renormalised, sorted by label
    cache_labels: torch.Tensor  # [M] their labels (the one-hot values)
    cache_divergence: torch.Tensor  # [M] the log2 divergence of each key's label from its refined zero-shot softmax
    beta: torch.Tensor  # []
    alpha: torch.Tensor  # []
    gamma: torch.Tensor  # []

    def __init__(self, params: APEParams) -> None:
        super().__init__(params)
        check_search_steps(self.name, params.search_step, MAX_SEARCH)

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes, keys, kept = shapes["dim"], shapes["classes"], shapes["keys"], shapes["channels"]
        self.text_buffers(classes, dim)
        self.register_buffer("channels", torch.zeros(kept, dtype=torch.long))
        self.register_buffer("cache_keys", torch.zeros(keys, kept))
        self.register_buffer("cache_labels", torch.zeros(keys, dtype=torch.long))
        self.register_buffer("cache_divergence", torch.zeros(keys))
        for name in ("beta", "alpha", "gamma"):
            self.register_buffer(name, torch.zeros(()))

    def fit(self, data: FitData) -> APE:
        self.use_dataset_values(data)
        p = self.params
        weights = ape_classifier(data.text, p.template_set, p.descriptions, data.device)  # [C, D]
        keys, labels = sort_by_label(view_mean_keys(data.train, data.device), data.labels(data.train))  # [M, D]
        kept = min(p.feat_num, weights.shape[1])
        self.prepare(data, None, dim=weights.shape[1], classes=weights.shape[0], keys=keys.shape[0], channels=kept)
        self.class_weights.copy_(weights)
        self.logit_scale.fill_(data.text.logit_scale)
        criterion = channel_criterion(weights, keys, labels, p.weights)  # [D]
        self.channels.copy_(torch.topk(criterion, k=kept).indices)
        refined_keys = normalize(keys[:, self.channels])  # [M, F]
        refined_text = normalize(weights[:, self.channels])  # [C, F]: the authors normalise W' per class
        key_probs = (refined_keys @ refined_text.T).softmax(dim=1)  # [M, F] @ [F, C]
        own = key_probs.gather(1, labels[:, None])[:, 0]  # [M] the softmax of each key's own class
        # sum_c L_c log2((L_c + 1e-6) / (p_c + 1e-6)) of a one-hot L: only its own class's term is not zero
        self.cache_divergence.copy_(torch.log2((1 + 1e-6) / (own + 1e-6)))
        self.cache_keys.copy_(refined_keys)
        self.cache_labels.copy_(labels)
        self.search(data)
        return self

    def cache_logits(self, affinity: torch.Tensor, beta: float | torch.Tensor,
                     gamma: float | torch.Tensor) -> torch.Tensor:
        """exp(-beta (1 - f' K'^T)) (L * R_FW) [N, C] from the refined affinities [N, M], as per-class sums."""
        weights = torch.exp(gamma * self.cache_divergence)[None]  # [1, M] R_FW of each key
        return gamma_class_sums(kernel_of(affinity, beta), weights, self.cache_labels, self.class_weights.shape[0])[0]

    @torch.no_grad()
    def search(self, data: FitData) -> None:
        """The authors' triple loop on validation (beta outer, alpha, gamma inner); the first strictly best (their best
        starts at 0: a search that is never right keeps (0, 0, 0)). Computed as: along the arithmetic beta grid each
        kernel is the previous one times exp(step (cos - 1)); the class sums of every gamma in one pass over it; and
        since each class's logit is linear in alpha, a row right (or beaten by one same class) at the smallest and the
        largest alpha is so at every alpha between: only the other rows are scored at each alpha."""
        p = self.params
        betas, alphas, gammas = search_values(p.search_scale, p.search_step)
        val = normalize(torch.from_numpy(data.val.read("global")).float().to(data.device))  # [N, D]
        labels = data.labels(data.val)
        zero_shot = self.zero_shot(val)  # [N, C]
        shifted = normalize(val[:, self.channels]) @ self.cache_keys.T - 1.0  # [N, F] @ [F, M]: cosines - 1
        weights = torch.exp(torch.tensor(gammas, device=val.device)[:, None] * self.cache_divergence[None])  # [G, M]
        alpha = torch.tensor(alphas, device=val.device)
        kernel = torch.exp(shifted * betas[0])  # [N, M]
        step = torch.exp(shifted * (betas[1] - betas[0])) if len(betas) > 1 else None
        del shifted
        correct = torch.zeros(len(betas), len(alphas), len(gammas), dtype=torch.long)
        for b in range(len(betas)):
            if b and step is not None:
                kernel.mul_(step)  # exp(b_i x) = exp(b_(i-1) x) exp((b_i - b_(i-1)) x)
            caches = gamma_class_sums(kernel, weights, self.cache_labels, zero_shot.shape[1])  # [G, N, C]
            for g in range(len(gammas)):
                correct[b, :, g] = correct_at(zero_shot, caches[g], labels, alpha)
        chosen, top = first_best(correct, (betas, alphas, gammas))
        self.beta.fill_(chosen[0])
        self.alpha.fill_(chosen[1])
        self.gamma.fill_(chosen[2])
        self.selected.update({"beta": chosen[0], "alpha": chosen[1], "gamma": chosen[2],
                              "channels": int(self.channels.numel()), "val_acc": top / max(len(labels), 1)})

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = batch["global"]  # [B, D] normalised
        affinity = normalize(image[:, self.channels]) @ self.cache_keys.T  # [B, F] @ [F, M]
        return self.zero_shot(image) + self.alpha * self.cache_logits(affinity, self.beta, self.gamma)

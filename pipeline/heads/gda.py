"""GDA: Gaussian discriminant analysis on all augmented views, ensembled with zero-shot CLIP.

Paper: Wang et al., "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation", arXiv 2402.04087.
Class means mu_k and one shared covariance from every normalised view feature of the training images, streamed view
by view (sums and scatter in float64, never all views in memory). The precision is the paper's shrinkage estimator
D * pinv((n - 1) S + tr(S) I), S the within-class covariance; W = mu P, b = log(1/C) - diag(mu P mu^T) / 2.
Logits = zero-shot (the model's scale: 100 f T^T for trained CLIP) + alpha * (f W^T + b), alpha searched on validation
over the authors' 7 values 10^-4, 10^-3, ..., 10^2 (github mrflogs/ICLR24 at 560fe21, `main_few_shots.py`; ties to the
smallest). As there: every augmented view is a sample, the classifier is CoOp's template (7 templates on ImageNet).
Where we depart: the authors tune alpha on ImageNet's test set (their val = test there); we never read test.

Base-to-novel as their `main_base2new.py` (`run`): `covariance: class_mean` is its base classifier (the pseudo-inverse
of the mean of the per-class sample covariances, no shrinkage); the novel classes' classifier is synthesised from
their text embeddings w and the training views of the base classes: mu = mean of the k = 64 views most similar to w
and 16 copies of w, precision = mean over the novel classes of D * pinv((k - 1) S_w + tr(S_w) I) with S_w the
covariance of those k views around w; the alpha chosen on the base classes' validation images is kept. Theirs writes
D as 512 (ViT-B/16's); ours is the feature size. The training views are re-read from the cache when the head is
retargeted in the process that fitted it (a head loaded from disk has no training features and says so).
"""

from __future__ import annotations

from typing import Unpack

import numpy as np
import torch

from pipeline.errors import ClipCacheError, NotApplicable
from pipeline.head_params.gda import REQUIRES, GDAParams
from pipeline.heads.base import Head, Shapes
from pipeline.heads.grid import best_of, logspace_grid
from pipeline.heads.inputs import FitData, SplitReader, TextReader, each_view, global_feats
from pipeline.heads.maths import accuracy
from pipeline.heads.registry import register_head

COVARIANCES = ("shrinkage", "class_mean")


def class_statistics(data: FitData, n_classes: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Streaming class means [C, D] and within-class scatter [D, D] (float64) over all views; and the count."""
    labels = data.labels(data.train)
    counts, n = torch.zeros(n_classes, dtype=torch.float64, device=data.device), 0
    sums: torch.Tensor | None = None  # [C, D], allocated with the first view
    second: torch.Tensor | None = None  # [D, D]
    for view in each_view(data.train, data.device):
        x = view.double()  # [N, D]
        if sums is None or second is None:
            sums = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, device=data.device)
            second = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=data.device)
        sums.index_add_(0, labels, x)
        counts += torch.bincount(labels, minlength=n_classes).double()
        second += x.T @ x  # [D, N] @ [N, D]
        n += x.shape[0]
    if sums is None or second is None:
        raise ClipCacheError(f"{str(data.train.path)!r} holds no augmented views: GDA's statistics are over them")
    means = sums / counts[:, None]  # [C, D]
    scatter = second - (means * counts[:, None]).T @ means  # sum x x^T - sum_k n_k mu_k mu_k^T  [D, D]
    return means, scatter, n


def all_views(data_train: SplitReader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every normalised training view [V*N, D] (float64) and its label [V*N]."""
    labels = torch.from_numpy(np.asarray(data_train.labels, dtype=np.int64)).to(device)
    views = [v.double() for v in each_view(data_train, device)]  # each [N, D]
    if not views:
        raise ClipCacheError(f"{str(data_train.path)!r} holds no augmented views: GDA's statistics are over them")
    return torch.cat(views), labels.repeat(len(views))


def class_mean_precision(vecs: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """main_base2new's precision: pinv of the mean over classes of each class's sample covariance [D, D]."""
    covariances = [torch.cov(vecs[labels == c].T) for c in range(n_classes)]  # each [D, D]
    return torch.linalg.pinv(torch.stack(covariances).mean(dim=0))


def synthesised_classifier(vecs: torch.Tensor, text: torch.Tensor, k: int, copies: int) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
    """main_base2new's novel classifier (W [C', D], b [C']) from the base training views [M, D] and the novel
    classes' normalised text embeddings [C', D]."""
    dim = vecs.shape[1]
    identity = torch.eye(dim, dtype=vecs.dtype, device=vecs.device)
    means, precisions = [], []
    for w in text:  # [D]
        near = vecs[torch.topk(w @ vecs.T, k=k, largest=True).indices]  # [k, D]: the views most similar to w
        means.append(torch.cat([near, w.unsqueeze(0).expand(copies, -1)]).mean(dim=0))  # over k + copies rows
        centred = near - w  # [k, D], deviations from the text embedding
        cov = centred.T @ centred / (k - 1)  # [D, k] @ [k, D]
        precisions.append(dim * torch.linalg.pinv((k - 1) * cov + torch.trace(cov) * identity))
    mu, precision = torch.stack(means), torch.stack(precisions).mean(dim=0)  # [C', D], [D, D]
    weight = mu @ precision  # [C', D] @ [D, D]
    bias = torch.log(torch.tensor(1.0 / len(text), dtype=vecs.dtype)) - 0.5 * (weight * mu).sum(-1)
    return weight, bias


def shrinkage_precision(scatter: torch.Tensor, n: int) -> torch.Tensor:
    """The paper's D * pinv((n-1) Sigma + tr(Sigma) I) with Sigma = scatter / (n - 1)."""
    dim = scatter.shape[0]
    sigma = scatter / (n - 1)
    identity = torch.eye(dim, dtype=sigma.dtype, device=sigma.device)
    return dim * torch.linalg.pinv((n - 1) * sigma + torch.trace(sigma) * identity)


@register_head("gda")
class GDA(Head):
    Params = GDAParams
    requires = REQUIRES
    novel_classes = True  # base-to-novel: the novel classes' classifier is synthesised as the authors' (docstring)
    synthesises_classes = True  # its class means are its own: a transfer to some of its classes keeps their columns
    weight: torch.Tensor  # [C, D] = mu P
    bias: torch.Tensor  # [C]
    alpha: torch.Tensor  # [] weight of the GDA logits in the ensemble

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        super().setup(**shapes)
        dim, classes = shapes["dim"], shapes["classes"]
        self.text_buffers(classes, dim)
        self.register_buffer("weight", torch.zeros(classes, dim))  # [C, D]
        self.register_buffer("bias", torch.zeros(classes))  # [C]
        self.register_buffer("alpha", torch.ones(()))

    def fit(self, data: FitData) -> GDA:
        p = self.params
        if p.covariance not in COVARIANCES:
            raise ClipCacheError(f"heads.gda.covariance must be one of {', '.join(COVARIANCES)}, got {p.covariance!r}")
        classes = data.n_classes
        if p.covariance == "class_mean":  # every view in memory once: the means and the per-class covariances
            vecs, labels = all_views(data.train, data.device)
            means = torch.stack([vecs[labels == c].mean(dim=0) for c in range(classes)])  # [C, D]
            precision = class_mean_precision(vecs, labels, classes)
        else:  # streamed view by view
            means, scatter, n = class_statistics(data, classes)
            precision = shrinkage_precision(scatter, n)  # [D, D]
        self.prepare(data, p.template_set, dim=means.shape[1], classes=classes)
        self.__dict__["_train"] = data.train  # re-read by retarget (base-to-novel), never saved
        weight = means @ precision  # [C, D] @ [D, D]
        bias = torch.log(torch.tensor(1.0 / classes, dtype=torch.float64)) - 0.5 * (weight * means).sum(-1)  # [C]
        self.weight.copy_(weight.float())
        self.bias.copy_(bias.float())
        self.search(data)
        return self

    def gda_logits(self, feats: torch.Tensor) -> torch.Tensor:
        return feats @ self.weight.T + self.bias  # [N, D] @ [D, C]

    @torch.no_grad()
    def search(self, data: FitData) -> None:
        feats, labels = global_feats(data.val, data.device), data.labels(data.val)
        zero_shot, gda = self.zero_shot(feats), self.gda_logits(feats)
        scores = {(alpha,): accuracy(torch.add(zero_shot, gda, alpha=alpha), labels)
                  for alpha in logspace_grid(self.params.alpha_grid)}
        (alpha,) = best_of(scores)
        self.alpha.fill_(alpha)
        self.selected.update({"alpha": alpha, "val_acc": scores[(alpha,)]})

    def retarget(self, text: TextReader) -> None:
        """The novel classes (base-to-novel): their text classifier, and GDA's synthesised from the base training
        views (main_base2new's `run`); alpha stays the one chosen on the base classes."""
        train = self.__dict__.get("_train")
        if train is None:
            raise NotApplicable("gda synthesises novel classes from its training views: retarget it in the process "
                                "that fitted it (a head loaded from disk has none)")
        p = self.params
        super().retarget(text)  # class_weights [C', D] of the novel classes' text
        vecs, _ = all_views(train, self.device())
        if p.novel_neighbours > len(vecs) or p.novel_neighbours < 2:
            raise ClipCacheError(f"heads.gda.novel_neighbours must be between 2 and the {len(vecs)} training views, "
                                 f"got {p.novel_neighbours}")
        weight, bias = synthesised_classifier(vecs, self.class_weights.double(), p.novel_neighbours,
                                              p.novel_text_copies)
        self.weight, self.bias = weight.float(), bias.float()

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = batch["global"]
        return self.zero_shot(feats) + self.alpha * self.gda_logits(feats)

"""Parity with the authors' code: each test restates the reference's maths independently (repository, commit and file
cited), feeds it the same cached tensors, and compares logits (1e-4 relative) and the values its search selects.

Nothing here imports the head's internals for the maths; only the data selection (which views, which bias draw) is
shared, since the references draw those from their own data loaders.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.heads import create_head
from pipeline.heads.lp_pp import one_view_per_image
from tests.heads.synthetic import World, make_task


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def all_views(data) -> tuple[np.ndarray, np.ndarray]:
    """Every normalised view [V N, D] and its labels, as the references' `augment_epoch` loops collect them."""
    views = unit(data.train.read("views/global").astype(np.float64))  # [V, N, D]
    return views.reshape(-1, views.shape[-1]), np.tile(data.train.labels, views.shape[0])  # [V*N, D]


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory):
    return make_task(tmp_path_factory.mktemp("parity"), World(), shots=4, views=3, val_per_class=8, test_per_class=20)


def test_zero_shot_is_clip(task) -> None:
    """CLIP (Radford et al.; CoOp's zsclip.py): logits = exp(logit_scale) * cos(image, class text)."""
    data, test = task
    head = create_head("zero_shot").fit(data)
    expected = 100.0 * unit(test.read("global").astype(np.float64)) @ data.text.mean("coop").T.astype(np.float64)
    np.testing.assert_allclose(head.scores(test).numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("grids", [{"beta_grid": (0.5, 3.0, 6), "lambda_grid": (0.001, 1.0, 5)},
                                   {"beta_grid": (0.5, 3.0, 2), "lambda_grid": (0.001, 1.0, 40)}],
                         ids=["cholesky-per-point", "eigh-per-beta"])
def test_proker_is_the_authors_kernel_ridge_regression(task, grids: dict) -> None:
    """github omarnust/BReg-Adapter (Y. Bendou's ProKeR) at f2ecb3d2a0d7e0993f977e550286b34f06015edb,
    trainers/proker.py: RBF_Kernel = exp(-beta (1 - X Y^T)); prior = raw cosines X T^T;
    alpha = solve(K_SS / lmbda + I, onehot - prior(S)); logits = prior(x) + K_xS alpha; beta and lmbda over
    torch.linspace grids, beta outer, lmbda inner, `if acc > best` on validation."""
    data, test = task
    head = create_head("proker", {"per_dataset": False, **grids}).fit(data)
    support, labels = all_views(data)
    text = data.text.mean("coop").astype(np.float64)  # [C, D]
    targets = np.eye(data.n_classes)[labels] - support @ text.T  # [S, C]
    val, val_labels = unit(data.val.read("global").astype(np.float64)), data.val.labels
    best, best_acc = None, -1.0
    for beta in torch.linspace(*grids["beta_grid"]).tolist():
        for lmbda in torch.linspace(*grids["lambda_grid"]).tolist():
            kernel = np.exp(-beta * (1 - support @ support.T))
            alpha = np.linalg.solve(kernel / lmbda + np.eye(len(support)), targets)
            acc = accuracy(val @ text.T + np.exp(-beta * (1 - val @ support.T)) @ alpha, val_labels)
            if acc > best_acc:
                best, best_acc = (beta, lmbda, alpha), acc
    beta, lmbda, alpha = best
    assert (head.selected["beta"], head.selected["lambda"]) == (beta, lmbda)
    assert head.selected["val_acc"] == pytest.approx(best_acc)
    x = unit(test.read("global").astype(np.float64))
    expected = x @ text.T + np.exp(-beta * (1 - x @ support.T)) @ alpha
    np.testing.assert_allclose(head.scores(test).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_proker_support_points(task) -> None:
    """support: every view (the authors' default), one view (their ImageNet config: one augmentation pass), or the
    view mean; per_dataset applies one_view on ImageNet only."""
    from pipeline.heads.reference import for_dataset

    data, _ = task
    views = unit(data.train.read("views/global").astype(np.float32))  # [V, N, D]
    small = {"per_dataset": False, "beta_grid": (1.0, 1.0, 1), "lambda_grid": (0.1, 0.1, 1)}
    for support, expected in (("views", views.reshape(-1, views.shape[-1])), ("one_view", views[0]),
                              ("mean", unit(data.train.read("views/global").astype(np.float32).mean(0)))):
        head = create_head("proker", {**small, "support": support}).fit(data)
        np.testing.assert_allclose(head.keys.numpy(), expected, rtol=1e-5, atol=1e-6)
    params = create_head("proker").params
    assert for_dataset("proker", params, "imagenet")[0].support == "one_view"
    assert for_dataset("proker", params, "dtd")[0].support == "views"


def test_gda_is_the_authors_shrinkage_lda(task) -> None:
    """github mrflogs/ICLR24 at 560fe211700964c915442ff98dbe47dd09656a35, main_few_shots.py L55-80: class means of
    every normalised view, cov_inv = d pinv((N - 1) cov + tr(cov) I), W = mu cov_inv, b = log(1/C) - mu cov_inv mu / 2,
    logits = 100 x T + alpha (x W + b), alpha in [1e-4, ..., 100] by `if acc > best` on validation."""
    data, test = task
    head = create_head("gda").fit(data)
    vecs, labels = all_views(data)
    classes = data.n_classes
    mus = np.stack([vecs[labels == c].mean(0) for c in range(classes)])  # [C, D]
    centred = np.concatenate([vecs[labels == c] - mus[c] for c in range(classes)])  # [N, D]
    cov = np.cov(centred.T)  # [D, D], unbiased
    cov_inv = centred.shape[1] * np.linalg.pinv((len(centred) - 1) * cov + np.trace(cov) * np.eye(centred.shape[1]))
    weight = mus @ cov_inv  # [C, D] @ [D, D]
    bias = np.log(1.0 / classes) - 0.5 * np.einsum("nd,dc,nc->n", mus, cov_inv, mus)
    text = data.text.mean("coop").astype(np.float64)
    val = unit(data.val.read("global").astype(np.float64))
    best, best_acc = 0.1, 0.0
    for alpha in [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0]:
        acc = accuracy(100.0 * val @ text.T + alpha * (val @ weight.T + bias), data.val.labels)
        if acc > best_acc:
            best, best_acc = alpha, acc
    assert head.selected["alpha"] == best
    x = unit(test.read("global").astype(np.float64))
    expected = 100.0 * x @ text.T + best * (x @ weight.T + bias)
    np.testing.assert_allclose(head.scores(test).numpy(), expected, rtol=1e-4, atol=1e-3)


def test_lp_pp_is_the_authors_procedure(task) -> None:
    """github FereshteShakeri/FewShot-CLIP-Strong-Baseline at f81054f995b060f8348d20e7306e15889b70c786,
    methods/linear_probe_p2.py: W0 = class sums, b0 = nn.Linear's default, alpha0 = 250 mean f.t_y; lr_W = 4N /
    max eig(F^T F), lr_alpha = N / (4 max_c sum_i (f_i.t_c)^2); SGD(momentum 0.9) on W, b every iteration, alpha
    -= lr_alpha * alpha.grad every 10th (alpha.grad never zeroed); keep the last iteration with val acc >= best."""
    data, test = task
    head = create_head("lp_pp").fit(data)  # the authors' 300 iterations: validation accuracy plateaus, ties occur
    feats = one_view_per_image(data, data.seed).double()  # the same one-view-per-image draw
    torch.manual_seed(data.seed)
    dim, classes = feats.shape[1], data.n_classes
    bias0 = torch.empty(classes).uniform_(-1 / dim**0.5, 1 / dim**0.5).double()  # the same bias draw
    labels = torch.from_numpy(data.train.labels).long()
    text = torch.from_numpy(data.text.mean("coop")).double().T  # [D, C] as clip_weights
    classifier = torch.nn.Linear(dim, classes, bias=True).double()
    classifier.weight.data = F.one_hot(labels, classes).double().T @ feats  # centroids = one_hot.bmm(z_s): sums
    classifier.bias.data = bias0
    alpha_mean = 250 * float(torch.stack([(feats @ text)[labels == c, c].mean() for c in range(classes)]).mean())
    alpha_vec = (alpha_mean * torch.ones(1, classes, dtype=torch.float64)).requires_grad_(True)
    lr_w = 4 * feats.shape[0] / max(np.linalg.eigvalsh((feats.T @ feats).numpy()))
    lr_alpha = feats.shape[0] / (torch.sum((feats @ text) ** 2, dim=0).max().item() * 4)
    optimizer = torch.optim.SGD(classifier.parameters(), lr_w, momentum=0.9)
    val = torch.from_numpy(unit(data.val.read("global").astype(np.float64)))
    val_labels = torch.from_numpy(data.val.labels).long()
    best_acc, kept = 0.0, None
    for epoch in range(300):
        logits = classifier(feats) + torch.ones(feats.shape[0], 1, dtype=torch.float64) @ alpha_vec * (feats @ text)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (epoch + 1) % 10 == 0:
            alpha_vec.data -= lr_alpha * alpha_vec.grad.data
        with torch.no_grad():
            val_logits = classifier(val) + alpha_vec * (val @ text)
            acc_val = float((val_logits.argmax(1) == val_labels).double().mean()) * 100
            if acc_val >= best_acc:
                best_acc = acc_val
                kept = (epoch + 1, classifier.weight.clone(), classifier.bias.clone(), alpha_vec.detach().clone()[0])
    assert head.selected["epoch"] == kept[0]
    x = torch.from_numpy(unit(test.read("global").astype(np.float64)))
    expected = x @ kept[1].T + kept[2] + kept[3] * (x @ text)
    np.testing.assert_allclose(head.scores(test).numpy(), expected.numpy(), rtol=1e-4, atol=1e-3)


def test_mm_adapter_is_the_authors_forward(task) -> None:
    """github dqmis/clip-mma at 1287cb5125500bd6bedff4ee7a6728784490f5c7, clip_transformer_adapter_text.py and
    modules/masked_multi_head_attention_downsampled.py: sequence-first [C+1, B, D] (texts, then the image), a float
    mask of ones on cross-modal pairs repeated per (image, head), down 512-32-128, MHA(128, 4), up 128-32-GELU-512;
    x' = normalise(0.2 normalise(A(x)) + 0.8 x) for both; logits = 100 * bmm(image', text'^T)."""
    data, test = task
    head = create_head("mm_adapter", {"epochs": 3, "width": 16, "bottleneck": 8}).fit(data)
    a = head.adapter
    mha = torch.nn.MultiheadAttention(16, 4)  # batch_first=False, as the authors'
    mha.load_state_dict(a.attn.state_dict())
    image = torch.from_numpy(unit(test.read("global").astype(np.float32)))  # [B, D]
    text = torch.from_numpy(data.text.mean("coop"))  # [C, D]
    classes, batch = text.shape[0], image.shape[0]
    with torch.no_grad():
        inputs = torch.cat([text.unsqueeze(1).expand(-1, batch, -1), image.unsqueeze(0)], dim=0)  # [C+1, B, D]
        mask = torch.zeros(classes + 1, classes + 1)
        mask[:classes, classes:] = 1
        mask[classes:, :classes] = 1
        mask = mask.unsqueeze(0).repeat(batch * 4, 1, 1)  # [B*H, L, L], float: added to the scores
        out = a.up[2](F.gelu(a.up[0](mha(*(a.down[1](a.down[0](inputs)),) * 3, attn_mask=mask)[0])))
        adapted_image, adapted_text = out[classes:], out[:classes]
        adapted_image = adapted_image / adapted_image.norm(dim=-1, keepdim=True)
        adapted_text = adapted_text / adapted_text.norm(dim=-1, keepdim=True)
        image_features = 0.2 * adapted_image + 0.8 * image.unsqueeze(0)
        text_features = 0.2 * adapted_text + 0.8 * inputs[:classes]
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        expected = 100.0 * torch.bmm(image_features.permute(1, 0, 2), text_features.permute(1, 2, 0)).squeeze(1)
    torch.testing.assert_close(head.scores(test), expected, rtol=1e-4, atol=1e-4)
    assert head.selected["keep"] == "best_val" and 1 <= head.selected["epoch"] <= 3


def test_linear_probe_solves_the_clip_protocol_objective(task) -> None:
    """CLIP's linear probe (Radford et al., appendix A.3): sklearn's multinomial LogisticRegression(C) with L-BFGS;
    its objective C sum CE + ||W||^2 / 2 is ours (mean CE + lambda ||W||^2 / 2) at lambda = 1 / (C N)."""
    from sklearn.linear_model import LogisticRegression

    data, test = task
    head = create_head("linear_probe", {"lambda_grid": [-2.0, -2.0, 1], "refine_steps": 1, "max_iter": 1000}).fit(data)
    x, y = unit(data.train.read("global").astype(np.float64)), data.train.labels
    reference = LogisticRegression(C=1.0 / (1e-2 * len(y)), max_iter=5000, tol=1e-10).fit(x, y)
    scores = reference.decision_function(unit(test.read("global").astype(np.float64)))
    ours = head.scores(test).numpy()
    np.testing.assert_allclose(ours - ours.mean(1, keepdims=True), scores - scores.mean(1, keepdims=True),
                               rtol=1e-3, atol=2e-3)


def tip_cache_keys(data) -> np.ndarray:
    """Tip-Adapter's build_cache_model (utils.py L46-61): the mean of the raw view features, normalised once."""
    return unit(data.train.read("views/global").astype(np.float64).mean(0))  # [V, N, D] -> [N, D]


def tip_search(val: np.ndarray, labels: np.ndarray, clip_weights: np.ndarray, affinity: np.ndarray,
               values: np.ndarray, scale: tuple[float, float], steps: tuple[int, int]) -> tuple[float, float]:
    """utils.py search_hp L103-121, verbatim maths: the grids exclude their scale; `if acc > best_acc`."""
    beta_list = [i * (scale[0] - 0.1) / steps[0] + 0.1 for i in range(steps[0])]
    alpha_list = [i * (scale[1] - 0.1) / steps[1] + 0.1 for i in range(steps[1])]
    best_acc, best = 0.0, (0.0, 0.0)
    for beta in beta_list:
        for alpha in alpha_list:
            cache_logits = np.exp((-1) * (beta - beta * affinity)) @ values
            tip_logits = 100.0 * val @ clip_weights + cache_logits * alpha
            acc = accuracy(tip_logits, labels)
            if acc > best_acc:
                best_acc, best = acc, (beta, alpha)
    return best


def test_tip_adapter_is_the_authors_cache_and_search(task) -> None:
    """github gaopengcuhk/Tip-Adapter at d0e2d6f8c5feb8b6ce937b757810761f7155d4d5, utils.py build_cache_model,
    search_hp and main.py: tip_logits = 100 f W + exp(-(beta - beta f K)) L alpha."""
    data, test = task
    head = create_head("tip_adapter", {"beta_grid": [0.1, 7.0, 40], "alpha_grid": [0.1, 3.0, 10]}).fit(data)
    keys, values = tip_cache_keys(data), np.eye(data.n_classes)[data.train.labels]  # [N, D], [N, C]
    clip_weights = data.text.mean("coop").astype(np.float64).T  # [D, C]
    val = unit(data.val.read("global").astype(np.float64))
    beta, alpha = tip_search(val, data.val.labels, clip_weights, val @ keys.T, values, (7.0, 3.0), (40, 10))
    assert head.selected["beta"] == pytest.approx(beta, abs=1e-12) and head.selected["alpha"] == pytest.approx(alpha)
    f = unit(test.read("global").astype(np.float64))
    expected = 100.0 * f @ clip_weights + np.exp((-1) * (beta - beta * (f @ keys.T))) @ values * alpha
    np.testing.assert_allclose(head.scores(test).numpy(), expected, rtol=1e-4, atol=1e-3)


def test_tip_adapter_uses_the_authors_scale_per_data_set(task) -> None:
    """configs/oxford_flowers.yaml: search_scale [50, 50], search_step [200, 20]; data sets they did not configure
    keep the params' grid."""
    from pipeline.heads.reference import for_dataset

    params = create_head("tip_adapter").params
    flowers, applied = for_dataset("tip_adapter", params, "oxford_flowers")
    assert flowers.beta_grid == (0.1, 50.0, 200) and flowers.alpha_grid == (0.1, 50.0, 20) and applied
    tip_f, _ = for_dataset("tip_adapter_f", create_head("tip_adapter_f").params, "eurosat")
    assert (tip_f.init_alpha, tip_f.epochs, tip_f.beta_grid) == (2.0, 100, (0.1, 12.0, 200))
    assert for_dataset("tip_adapter", params, "textile") == (params, {})
    off = create_head("tip_adapter", {"per_dataset": False}).params
    assert for_dataset("tip_adapter", off, "oxford_flowers") == (off, {})
    head = create_head("tip_adapter", {"beta_grid": [0.1, 7.0, 4], "alpha_grid": [0.1, 3.0, 2]}).fit(task[0])
    assert "per_dataset" not in head.selected  # the synthetic data set is none of the 11


def batches(data, batch_size: int, epochs: int, steps: int | None = None) -> list[list[dict]]:
    """The minibatches our loop draws (a random cached view per image): the tensors both sides are fed."""
    from pipeline.heads.loop import view_batches

    rng = np.random.default_rng(data.seed)
    return [list(view_batches(data.train, ("global",), batch_size, rng, data.device, steps)) for _ in range(epochs)]


def test_tip_adapter_f_trains_as_the_authors(task) -> None:
    """main.py L66-106: adapter = Linear(keys^T) (no bias), AdamW(lr, eps=1e-4), CosineAnnealingLR(epochs * iters)
    stepped per iteration, CE on 100 f W + exp(-(beta - beta adapter(f))) L alpha at init beta, alpha."""
    data, _ = task
    epochs, batch_size = 3, 8
    head = create_head("tip_adapter_f", {"epochs": epochs, "batch_size": batch_size, "keep": "last",
                                         "beta_grid": [0.1, 7.0, 20], "alpha_grid": [0.1, 3.0, 5]}).fit(data)
    keys = torch.from_numpy(tip_cache_keys(data)).float()  # [N, D] (stable sort by label: already sorted)
    values = F.one_hot(torch.from_numpy(data.train.labels).long(), data.n_classes).float()
    clip_weights = torch.from_numpy(data.text.mean("coop")).float().T  # [D, C]
    adapter = torch.nn.Linear(keys.shape[1], keys.shape[0], bias=False)
    adapter.weight = torch.nn.Parameter(keys.clone())
    drawn = batches(data, batch_size, epochs)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(drawn[0]))
    for epoch in drawn:
        for batch in epoch:
            affinity = adapter(batch["global"])
            cache_logits = ((-1) * (1.0 - 1.0 * affinity)).exp() @ values
            tip_logits = 100.0 * batch["global"] @ clip_weights + cache_logits * 1.17
            loss = F.cross_entropy(tip_logits, batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    torch.testing.assert_close(head.cache_keys.detach(), adapter.weight.detach(), rtol=1e-4, atol=1e-5)
    val = unit(data.val.read("global").astype(np.float64))
    trained = adapter.weight.detach().double().numpy()
    beta, alpha = tip_search(val, data.val.labels, clip_weights.double().numpy(), val @ trained.T,
                             values.double().numpy(), (7.0, 3.0), (20, 5))
    assert head.selected["beta"] == pytest.approx(beta, abs=1e-12) and head.selected["alpha"] == pytest.approx(alpha)


def test_clip_adapter_trains_as_the_authors(task) -> None:
    """github gaopengcuhk/CLIP-Adapter at 08d07f8b2ecafc6f1479fe636b26d464d7a5574e, train.py: Adapter =
    Linear(D, D/4, no bias) ReLU Linear(D/4, D, no bias) ReLU; f' = 0.2 A(f) + 0.8 f, normalised; logits =
    exp(logit_scale) f' t^T; CoOp's schedule (SGD lr 2e-3, momentum 0.9, wd 5e-4, one constant warm-up epoch at
    1e-5, cosine by epoch), the last epoch kept."""
    data, _ = task
    epochs, batch_size = 4, 8
    head = create_head("clip_adapter", {"epochs": epochs, "batch_size": batch_size}).fit(data)
    dim = data.train.array("global").shape[1]
    torch.manual_seed(data.seed)
    adapter = torch.nn.Sequential(torch.nn.Linear(dim, dim // 4, bias=False), torch.nn.ReLU(inplace=True),
                                  torch.nn.Linear(dim // 4, dim, bias=False), torch.nn.ReLU(inplace=True))
    adapter.load_state_dict(head_start(data, dim).image_adapter.state_dict())
    text = torch.from_numpy(data.text.mean("coop")).float()  # [C, D]
    optimizer = torch.optim.SGD(adapter.parameters(), lr=2e-3, momentum=0.9, weight_decay=5e-4)
    drawn = batches(data, batch_size, epochs)
    for epoch, epoch_batches in enumerate(drawn):
        for batch in epoch_batches:
            # Dassl (KaiyangZhou/Dassl.pytorch at c61a1b5, dassl/optim/lr_scheduler.py): ConstantWarmupScheduler(1
            # epoch, 1e-5) over CosineAnnealingLR(T_max=max_epoch), stepped once per epoch after the warm-up
            lr = 1e-5 if epoch < 1 else 0.5 * 2e-3 * (1 + np.cos(np.pi * (epoch - 1) / epochs))
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = adapter(batch["global"])
            image = 0.2 * x + 0.8 * batch["global"]
            image = image / image.norm(dim=-1, keepdim=True)
            loss = F.cross_entropy(100.0 * image @ text.T, batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for ours, theirs in zip(head.image_adapter.state_dict().values(), adapter.state_dict().values(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    assert head.selected["epoch"] == epochs


def head_start(data, dim: int):
    """The head's seeded initial adapter (both sides start from the same random weights)."""
    start = create_head("clip_adapter")
    start.prepare(data, "coop", dim=dim, classes=data.n_classes)
    return start

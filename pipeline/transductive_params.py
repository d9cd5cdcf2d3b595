"""params.yaml's `transductive` section: which heads' runs are also scored by TransCLIP, and TransCLIP's settings
(torch-free; the scoring is pipeline/scoring/transductive.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ClipCacheError
from pipeline.typed import build


@dataclass(frozen=True)
class TransClipParams:
    """TransCLIP (pipeline/scoring/transclip.py); the defaults are the authors' (TransCLIP_utils.get_parameters)."""

    support: bool = False  # True: TransCLIP-FS, the run's labelled shots join and gamma is chosen on val; False:
    #                        TransCLIP-ZS on top of the head's predictions (how the authors run it atop fitted methods)
    lambda_zero_shot: float = 1.0  # weight of the KL term to the head's predictions, without shots
    lambda_few_shot: float = 0.5  # the same with shots (support: true)
    gammas: tuple[float, ...] = (0.002, 0.01, 0.02, 0.2)  # weights of the shots, one chosen on the val split
    iterations: int = 10  # outer iterations (assignments, means, variance)
    z_iterations: int = 5  # inner iterations of the assignment update
    neighbors: int = 3  # k of the test images' kNN graph
    confident: int = 8  # zero-shot mean init: the most confident test images per class
    pairing: str = "authors"  # few-shot graph: 'authors' (their row order, see the module) or 'aligned'


@dataclass(frozen=True)
class TransductiveParams:
    heads: tuple[str, ...] = ()  # heads whose sweep runs are also scored transductively (k<K>-s<seed>-transclip);
    #                              none unless listed: these runs read the test split's image features, never labels
    transclip: TransClipParams = field(default_factory=TransClipParams)


MAX_SOLVER_STEPS = 1000  # bounds iterations, neighbours and confident images: a typo must not hang a sweep
TRANSDUCTIVE_METHODS = ("transclip",)  # run-folder suffixes and report labels: <head>+transclip


def transductive_params(section: dict[str, Any] | None) -> TransductiveParams:
    """The checked `transductive` section."""
    params = build(TransductiveParams, section, "transductive")
    clip = params.transclip
    if clip.pairing not in ("authors", "aligned"):
        raise ClipCacheError(f"transductive.transclip.pairing must be 'authors' or 'aligned', got {clip.pairing!r}")
    weights = (*clip.gammas, clip.lambda_zero_shot, clip.lambda_few_shot)
    if not clip.gammas or not all(math.isfinite(w) and 0 <= w <= 1e6 for w in weights):
        raise ClipCacheError("transductive.transclip.gammas must be a non-empty list of finite values >= 0, and its "
                             f"lambdas finite and >= 0; got gammas {list(clip.gammas)}, lambdas "
                             f"{clip.lambda_zero_shot} and {clip.lambda_few_shot}")
    counts = {"iterations": clip.iterations, "z_iterations": clip.z_iterations, "neighbors": clip.neighbors,
              "confident": clip.confident}
    for name, value in counts.items():
        if not 1 <= value <= MAX_SOLVER_STEPS:
            raise ClipCacheError(f"transductive.transclip.{name} must be between 1 and {MAX_SOLVER_STEPS}, got {value}")
    if len(set(params.heads)) != len(params.heads):
        raise ClipCacheError(f"transductive.heads lists a head twice: {list(params.heads)}")
    return params

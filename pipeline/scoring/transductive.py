"""Transductive scoring: a fitted head's test predictions refined with the test split's image features (TransCLIP).

Only a run that asks for it (params.yaml `transductive.heads`) is scored this way; its folder is
k<K>-s<seed>-transclip, its record says `transductive` and keeps the head's own (inductive) metrics beside the refined
ones, and the report names it <head>+transclip. The solver is never given the test labels; only the metrics read them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipeline.heads import Head
from pipeline.heads.inputs import SplitReader
from pipeline.params import as_dict
from pipeline.scoring.evaluation import score_head
from pipeline.scoring.metrics import classification_metrics, to_probabilities
from pipeline.scoring.transclip import Settings, Support, transclip
from pipeline.transductive_params import TransClipParams

READS = "the test split's image features (global), never its labels"


def settings_of(params: TransClipParams) -> Settings:
    """The solver's settings for the run's mode: few-shot (shots join, gamma chosen on val) or zero-shot."""
    few_shot = params.support
    return Settings(lam=params.lambda_few_shot if few_shot else params.lambda_zero_shot,
                    gammas=params.gammas if few_shot else (0.0,), iterations=params.iterations,
                    z_iterations=params.z_iterations, neighbors=params.neighbors, confident=params.confident,
                    aligned=params.pairing == "aligned")


def labelled(train: SplitReader, val: SplitReader) -> Support:
    """The run's shots (train split, un-augmented global features) and its validation split."""
    return Support(torch.from_numpy(train.read("global")), torch.from_numpy(np.asarray(train.labels)),
                   torch.from_numpy(val.read("global")), torch.from_numpy(np.asarray(val.labels)))


def score_transclip(head: Head, meta: dict[str, Any], test: SplitReader, params: TransClipParams,
                    support: Support | None) -> dict[str, Any]:
    """The evaluation record of `head` refined by TransCLIP on `test`; `support` (`labelled`) when params.support."""
    scores = head.scores(test).numpy()  # [Q, C]
    record = score_head(head, meta, test, scores)
    record.pop("attention", None)  # the head's own attention maps describe its inductive predictions
    y_hat = torch.from_numpy(to_probabilities(scores, head.units)).float()  # [Q, C]
    query = torch.from_numpy(test.read("global"))  # [Q, D]
    z, selected = transclip(query, y_hat, settings_of(params), support)
    inductive = record["metrics"]
    record["metrics"] = classification_metrics(z.numpy(), np.asarray(test.labels), "probabilities")
    record["transductive"] = {
        "method": "transclip", "mode": "few-shot" if params.support else "zero-shot", "params": as_dict(params),
        "selected": selected, "reads": READS,
        "inductive_metrics": {k: v for k, v in inductive.items() if k != "confusion"}}
    return record

"""Stage 3 as a library call: score one fitted head on the test split (the only stage that opens it).

Writes results/<head>/k<K>-s<seed>/evaluation.json: metrics (top-1, mean
per-class accuracy, ECE, confusion matrix) with the full provenance of the run; for heads that expose attention
over the spatial grid (vt_clip), the attention of the true and predicted class on a few test images, so that the
report can draw attention maps from the JSON alone. metrics.json beside it holds the scalars for `dvc metrics`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.encode.config import EncodeParams
from pipeline.encode.plan import cache_folder
from pipeline.evaluate.metrics import classification_metrics
from pipeline.heads.io import load_head
from pipeline.store import FeatureSplit
from pipeline.store.atomic import write_json_atomic
from pipeline.store.provenance import fingerprint
from pipeline.train.config import TrainParams
from pipeline.train.run import run_folder

log = logging.getLogger(__name__)
ATTENTION_IMAGES = 4  # test images whose attention maps are kept


def attention_examples(head: Any, test: FeatureSplit, predictions: np.ndarray, root: str) -> list[dict[str, Any]]:
    """For the first test images: path, true and predicted class, and their attention grids [h, w]."""
    rows = np.arange(min(ATTENTION_IMAGES, test.n))
    attention = head.attention(test, rows).numpy()  # [n, C, HW]
    side = int(round(attention.shape[-1] ** 0.5))
    out = []
    for i, row in enumerate(rows):
        true, pred = int(test.labels[row]), int(predictions[row])
        out.append({"image": str(Path(root) / test.image_ids[row]), "true": true, "predicted": pred,
                    "attention_true": attention[i, true].reshape(side, side).round(5).tolist(),
                    "attention_predicted": attention[i, pred].reshape(side, side).round(5).tolist()})
    return out


def evaluate_head(encode: EncodeParams, train: TrainParams, name: str, results_dir: str | Path) -> dict[str, Any]:
    """Score the fitted head (train.out_dir/...) on the test split of its cache; write and return the record."""
    folder = cache_folder(encode)
    head, meta = load_head(run_folder(train.out_dir, name, train.shots, train.seed))
    prov = meta["provenance"]
    test = FeatureSplit(folder / "test.h5", expect={
        "encoder.model": prov["encoder"]["model"], "encoder.pretrained": prov["encoder"]["pretrained"],
        "dataset.file_list_sha256": prov["dataset"]["file_list_sha256"]})
    scores = head.logits(test).numpy()  # [N, C]
    record = {
        "head": name, "shots": train.shots, "seed": train.seed, "dataset": encode.dataset.name,
        "model": prov["encoder"]["model"], "pretrained": prov["encoder"]["pretrained"],
        "random_weights": prov["encoder"]["random_weights"], "head_params": meta["params"],
        "selected": meta["selected"], "classnames": prov["dataset"]["classnames"],
        "cache_files": {**prov["files"], "test.h5": {"path": str(test.path), "fingerprint": fingerprint(test.provenance)}},
        "metrics": classification_metrics(scores, test.labels, head.scores),
    }
    if hasattr(head, "attention"):
        record["attention"] = attention_examples(head, test, scores.argmax(1), test.build.get("dataset_root", ""))
    out = run_folder(results_dir, name, train.shots, train.seed)
    write_json_atomic(out / "evaluation.json", record)
    write_json_atomic(out / "metrics.json", {k: v for k, v in record["metrics"].items() if k != "confusion"})  # dvc metrics
    log.info("%s k%d s%d: top-1 %.4f, mean per-class %.4f, ECE %.4f -> %s", name, train.shots, train.seed,
             record["metrics"]["top1"], record["metrics"]["mean_per_class_accuracy"], record["metrics"]["ece"], out)
    return record

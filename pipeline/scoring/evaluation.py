"""Stage 3 as a library call: score one fitted head on the test split (the only stage that opens it).

Writes evaluation.json into the run folder: metrics (top-1, mean per-class accuracy, ECE, confusion matrix) with the
full provenance of the run; for heads that expose attention over the spatial grid (vt_clip), the attention of the
true and predicted class on a few test images, so that the report can draw attention maps from the JSON alone.
metrics.json beside it holds the scalars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.registry import layout_of
from pipeline.heads import Head
from pipeline.heads.classes import SubsetSplit, SubsetText
from pipeline.heads.inputs import SplitReader
from pipeline.layout import EVALUATION, METRICS, pair_folder, split_file
from pipeline.params import EncodeParams
from pipeline.runlog import detail_log
from pipeline.scoring.metrics import classification_metrics
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.atomic import write_json_atomic
from pipeline.store.provenance import fingerprint
from pipeline.store.together import check_identity

detail = detail_log()  # the run's own log file (the console with --verbose)
ATTENTION_IMAGES = 4  # test images whose attention maps are kept


def attention_examples(head: Any, test: SplitReader, predictions: np.ndarray, root: str) -> list[dict[str, Any]]:
    """For the first test images: path, true and predicted class, and their attention grids [h, w]."""
    rows = np.arange(min(ATTENTION_IMAGES, test.n))
    attention = head.attention(test, rows).cpu().numpy()  # [n, C, HW]
    side = round(attention.shape[-1] ** 0.5)
    out = []
    for i, row in enumerate(rows):
        true, pred = int(test.labels[row]), int(predictions[row])
        out.append({"image": str(Path(root) / test.image_ids[row]), "true": true, "predicted": pred,
                    "attention_true": attention[i, true].reshape(side, side).round(5).tolist(),  # [h, w]
                    "attention_predicted": attention[i, pred].reshape(side, side).round(5).tolist()})
    return out


def test_split(encode: EncodeParams, meta: dict[str, Any], source: Path) -> FeatureSplit:
    """The test file of the pair, refused unless it comes from the encoder and data set the head (`meta`, read from
    `source`) was fitted on."""
    prov = meta["provenance"]
    folder = pair_folder(encode)
    test = FeatureSplit(split_file(folder, "test"), expect={
        "encoder.model": prov["encoder"]["model"], "encoder.pretrained": prov["encoder"]["pretrained"],
        "dataset.file_list_sha256": prov["dataset"]["file_list_sha256"]})
    check_identity(prov.get("identity"), source, test)
    return test


def score_head(head: Head, meta: dict[str, Any], test: SplitReader,
               scores: np.ndarray | None = None) -> dict[str, Any]:
    """The evaluation record of a fitted head (`meta`: its head.json content) on the test split (its `scores`
    [N, C] when the caller has them already)."""
    prov = meta["provenance"]
    scores = head.scores(test).numpy() if scores is None else scores  # [N, C]
    record = {
        "head": head.name, "shots": prov["shots"], "seed": prov["seed"], "dataset": prov["dataset"]["name"],
        "layout": layout_of(prov["dataset"]),
        "model": prov["encoder"]["model"], "pretrained": prov["encoder"]["pretrained"],
        "random_weights": prov["encoder"]["random_weights"], "head_params": meta["params"],
        "selected": meta["selected"], "classnames": prov["dataset"]["classnames"], "draw": prov.get("draw"),
        "cache_files": {**prov["files"],
                        "test.h5": {"path": str(test.path), "fingerprint": fingerprint(test.provenance)}},
        "metrics": classification_metrics(scores, test.labels, head.units),
    }
    if prov.get("validation_free"):
        record["protocol"] = "validation_free"  # fitted without reading a validation image
    if hasattr(head, "attention"):
        record["attention"] = attention_examples(head, test, scores.argmax(1), test.build.get("dataset_root", ""))
    return record


def harmonic_mean(base: float, novel: float) -> float:
    """CoCoOp's HM = 2 B N / (B + N) of the base and novel accuracies; 0 when both are 0."""
    return 2 * base * novel / (base + novel) if base + novel else 0.0


def score_base_to_novel(head: Head, meta: dict[str, Any], test: FeatureSplit, text: TextFeatures) -> dict[str, Any]:
    """The base-to-novel record (CoCoOp's protocol) of a head fitted on the base classes (head.json's `classes`):
    `metrics` are the base test images scored among the base classes; then the head is retargeted to the novel
    classes' text and the novel test images are scored among the novel classes; HM = 2 B N / (B + N)."""
    base = list(meta["provenance"]["classes"])
    novel = [c for c in range(len(text.classnames)) if c not in set(base)]
    record = score_head(head, meta, SubsetSplit(test, base))
    novel_test = SubsetSplit(test, novel)
    head.retarget(SubsetText(text, novel))
    novel_metrics = classification_metrics(head.scores(novel_test).numpy(), novel_test.labels, head.units)
    b, n = record["metrics"]["top1"], novel_metrics["top1"]
    record["protocol"] = "base_to_novel"
    record["base_to_novel"] = {"base": b, "novel": n, "hm": harmonic_mean(b, n),
                               "base_classes": base, "novel_classes": novel,
                               "novel_metrics": {k: v for k, v in novel_metrics.items() if k != "confusion"}}
    return record


def write_evaluation(record: dict[str, Any], folder: Path) -> None:
    """evaluation.json and metrics.json (the scalars) into a run folder."""
    write_json_atomic(folder / EVALUATION, record)
    write_json_atomic(folder / METRICS, {k: v for k, v in record["metrics"].items() if k != "confusion"})
    detail.info("%s %s k%d s%d: top-1 %.4f, mean per-class %.4f, ECE %.4f", record["head"], record["dataset"],
             record["shots"], record["seed"], record["metrics"]["top1"], record["metrics"]["mean_per_class_accuracy"],
             record["metrics"]["ece"])
    if "base_to_novel" in record:
        b2n = record["base_to_novel"]
        detail.info("%s %s k%d s%d base-to-novel: base %.4f, novel %.4f, HM %.4f", record["head"], record["dataset"],
                 record["shots"], record["seed"], b2n["base"], b2n["novel"], b2n["hm"])

"""Transfer scoring (train.protocol cross_dataset and domain_generalisation): a head fitted on the source data set is
scored on the test split of other data sets, as CoOp, CoCoOp, MaPLe, PromptSRC and CLIP-LoRA report it.

How a head meets a target's classes:
- `text`: heads whose classes enter only through class text (zero-shot, the prompt, adapter and LoRA learners) take
  the target's class names and templates (`Head.retarget`), as the authors build their model with the target's
  names (CoOp's ImageNet-A runs with its 200 names).
- `columns`: heads with per-class parameters (cache, class means, linear probes, residuals) keep the columns of
  their source classes that the target's classes are, when every target class is one of them (ImageNet-V2 and
  -Sketch: all 1000; -A and -R: 200). Classes are matched by their ids (ImageNet's wnids) where both data sets record
  them, else by name (a name that several source classes share is ambiguous and matches none).
- `synthesised`: GDA, on a target outside its classes, builds the target classes' classifier from their text and
  its training views, as its base-to-novel script does; on a subset it keeps its columns.
Otherwise the target is "not applicable" for that head, with the reason; the run's other targets are still scored.
A target's files must come from the encoder the head was fitted with (its test and text files belong together).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.data.registry import layout_of
from pipeline.errors import ClipCacheError, NotApplicable
from pipeline.heads import Head
from pipeline.runlog import detail_log
from pipeline.scoring.metrics import classification_metrics
from pipeline.store import FeatureSplit, TextFeatures
from pipeline.store.provenance import fingerprint
from pipeline.store.together import check_encoder, check_together

detail = detail_log()  # the run's own log file (the console with --verbose)


@dataclass(frozen=True)
class Target:
    """A transfer target's cached test split and text features."""

    name: str  # its grid name
    test: FeatureSplit
    text: TextFeatures


def class_columns(source: dict[str, Any], target: dict[str, Any]) -> list[int] | None:
    """For each class of the target, the index of the same class among the source's (data-set provenance records),
    or None when some target class is not one of the source's."""
    by_ids = bool(source.get("class_ids")) and bool(target.get("class_ids"))
    mine = [str(c) for c in (source["class_ids"] if by_ids else source["classnames"])]
    theirs = [str(c) for c in (target["class_ids"] if by_ids else target["classnames"])]
    index: dict[str, int] = {}
    for column, key in enumerate(mine):
        index[key] = -1 if key in index else column  # a key twice in the source matches nothing
    columns = [index.get(key, -1) for key in theirs]
    return None if not columns or min(columns) < 0 else columns


def keeps_columns(head: Head | type[Head]) -> bool:
    """Whether the head's classes are its own parameters (scored by columns), not only class text."""
    return not head.novel_classes or head.synthesises_classes


def plan_target(head: Head, source: dict[str, Any], target: Target) -> tuple[str, list[int] | None]:
    """('text' | 'columns' | 'synthesised', the columns where 'columns'); NotApplicable naming why it cannot."""
    if not keeps_columns(head):
        return "text", None
    columns = class_columns(source, target.text.provenance["dataset"])
    if columns is not None:
        return "columns", columns
    if head.novel_classes:
        return "synthesised", None
    raise NotApplicable(f"{head.name} has per-class parameters and {target.name}'s classes are not all among "
                        f"{source['name']}'s")


def open_targets(targets: dict[str, tuple[Any, Any]], identity: dict[str, str] | None, source: Any) -> list[Target]:
    """The targets' test and text files (name -> (test path, text path)), each refused unless it comes from the
    encoder the head recorded in `source` (head.json) and its two files belong together."""
    opened = []
    for name, (test_path, text_path) in targets.items():
        test, text = FeatureSplit(test_path), TextFeatures(text_path)
        check_together(test, text)
        check_encoder(identity, source, test)
        opened.append(Target(name, test, text))
    return opened


def score_targets(head: Head, meta: dict[str, Any], targets: list[Target]) -> list[dict[str, Any]]:
    """Per target, in their order: its name (`dataset`), scalar metrics, how the head met its classes (`applied`) and
    its class count; or its name and `not_applicable` (why). Targets scored by columns go first, while the head
    still holds its source classes."""
    source = meta["provenance"]["dataset"]
    plans: dict[str, tuple[str, list[int] | None]] = {}
    results: dict[str, dict[str, Any]] = {}
    for target in targets:
        try:
            plans[target.name] = plan_target(head, source, target)
        except NotApplicable as exc:
            results[target.name] = {"not_applicable": str(exc)}
    ordered = sorted(plans, key=lambda name: plans[name][0] != "columns")
    by_name = {t.name: t for t in targets}
    for name in ordered:
        applied, columns = plans[name]
        target = by_name[name]
        if columns is None:
            head.retarget(target.text)  # the target's classes from its text (GDA: and its own training views)
            scores = head.scores(target.test).numpy()  # [N, C_target]
        else:
            scores = head.scores(target.test).numpy()[:, columns]  # [N, C_source] -> [N, C_target]
        if scores.shape[1] != len(target.text.classnames):
            raise ClipCacheError(f"{head.name} scored {scores.shape[1]} classes on {name}, whose text file holds "
                                 f"{len(target.text.classnames)}")
        metrics = classification_metrics(scores, target.test.labels, head.units)
        results[name] = {**{k: v for k, v in metrics.items() if k != "confusion"}, "applied": applied,
                         "n_classes": scores.shape[1],
                         "cache_files": {"test.h5": {"path": str(target.test.path),
                                                     "fingerprint": fingerprint(target.test.provenance)},
                                         "text.h5": {"path": str(target.text.path),
                                                     "fingerprint": fingerprint(target.text.provenance)}}}
        detail.info("%s transferred to %s (%s, %d classes): top-1 %.4f", head.name, name, applied, scores.shape[1],
                 metrics["top1"])
    return [{"dataset": t.name, "layout": layout_of(t.test.provenance["dataset"]), **results[t.name]} for t in targets]


def transfer_average(targets: list[dict[str, Any]]) -> float | None:
    """The mean top-1 over the targets (the papers' 'Average' column); None unless the head applies to every one."""
    if not targets or any("top1" not in r for r in targets):
        return None
    return float(np.mean([r["top1"] for r in targets]))

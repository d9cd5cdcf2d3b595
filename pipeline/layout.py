"""Every path of the on-disk layout, in one place; imports no model code.

```
<cache_dir>/<data set>/<model>__<pretrained>/          stage 1: text.h5, test.h5, k<K>-s<seed>/{train,val}.h5
<cache_dir>/<data set>/image-hashes.json               the images' sha256 by (path, size, mtime) (pipeline/data)
<results_dir>/<head>/<data set>/<model>__<pretrained>/k<K>-s<seed>[-b2n|-vfree|-xd|-dg][-transclip]/   (the protocol;
                                                         -transclip: scored transductively)
    head.safetensors, head.json, fit.json                the fitted head (stage 2)
    evaluation.json, metrics.json                        its test-split evaluation (stage 3)
    run.log                                              a sweep run's detail: its epochs, selections, scores
    dvclive/                                             a trained head's curves (pipeline/heads/curves.py): DVCLive's
                                                         plots/metrics/{train_loss,val_acc,lr}.tsv and metrics.json
    run.json                                             the run's fingerprint: written last, marks the run complete
<results_dir>/metrics/<head>.json                      every run's scalars of one head, for `dvc metrics`
```
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.backbone.naming import model_label, pretrained_label

if TYPE_CHECKING:
    from pipeline.params import EncodeParams

IMAGE_HASHES = "image-hashes.json"  # in cache/<data set>/: every image's sha256, shared by its models
TEXT_FILE = "text.h5"  # the per-class text features of every template set, in the cache folder
SPLIT_FILE = "{split}.h5"  # test.h5 in the cache folder; train.h5 and val.h5 in each k<K>-s<seed> folder
HEAD_WEIGHTS, HEAD_META = "head.safetensors", "head.json"  # a fitted head: its tensors; its params, shapes, provenance
FIT_RECORD = "fit.json"  # validation accuracy, selection, per-epoch history and fit time of a fitted head
EVALUATION, METRICS = "evaluation.json", "metrics.json"  # the test-split record; its scalars
RUN_RECORD = "run.json"  # the run's fingerprint, written last
RUN_LOG = "run.log"  # a sweep run's detail lines: each epoch's loss and validation accuracy, what it selected
CURVES = "dvclive"  # a trained head's per-epoch curves and final metrics, written with DVCLive (heads/curves.py)
CURVES_SUMMARY = f"{CURVES}/metrics.json"  # DVCLive's summary: last values, the kept epoch, the test metrics


def pair_label(model: str, pretrained: str) -> str:
    """<model>__<pretrained>: how a (model, pretrained) pair is named in paths."""
    return f"{model_label(model)}__{pretrained_label(pretrained)}"


def cache_folder(cache_dir: str | Path, dataset: str, model: str, pretrained: str) -> Path:
    """cache/<data set>/<model>__<pretrained>."""
    return Path(cache_dir) / dataset / pair_label(model, pretrained)


def pair_folder(encode: EncodeParams) -> Path:
    """The cache folder of a (data set, model) pair of the grid."""
    return cache_folder(encode.cache_dir, encode.dataset.name, encode.model.name, encode.model.pretrained)


def few_shot_folder(folder: Path, shots: int, seed: int) -> Path:
    """The few-shot train/val files of one (K, seed) inside a cache folder."""
    return folder / f"k{shots}-s{seed}"


def split_file(folder: Path, split: str, shots: int | None = None, seed: int | None = None) -> Path:
    """A split's file in a cache folder: test.h5 there, train.h5 / val.h5 in the few-shot folder of (shots, seed)."""
    if split == "test":
        return folder / SPLIT_FILE.format(split=split)
    if shots is None or seed is None:
        raise ValueError(f"the {split} split of a cache folder needs its shots and seed")
    return few_shot_folder(folder, shots, seed) / SPLIT_FILE.format(split=split)


PROTOCOL_SUFFIX = {"all": "", "base_to_novel": "-b2n", "validation_free": "-vfree",  # a run folder's name by protocol
                   "cross_dataset": "-xd", "domain_generalisation": "-dg"}  # (fitted on the source, under its name)


def run_folder(results_dir: str | Path, head: str, dataset: str, pair: str, shots: int, seed: int,
               protocol: str = "all", transductive: str = "") -> Path:
    """<results_dir>/<head>/<data set>/<model>__<pretrained>/k<K>-s<seed>[-b2n|-vfree|-xd|-dg][-<transductive method>]:
    one run's files (a transductive run, `transductive: transclip`, is named by its method; a transfer run by its
    source data set)."""
    name = f"k{shots}-s{seed}{PROTOCOL_SUFFIX[protocol]}" + (f"-{transductive}" if transductive else "")
    return Path(results_dir) / head / dataset / pair / name


def head_metrics_file(results_dir: str | Path, head: str) -> Path:
    """<results_dir>/metrics/<head>.json: the scalars of every run of one head (`dvc metrics show`)."""
    return Path(results_dir) / "metrics" / f"{head}.json"

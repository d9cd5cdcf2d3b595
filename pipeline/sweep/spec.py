"""What a run is, as the sweep driver plans it: its inputs, folder, key and the cache files it reads; and what it
reports back. Torch-free, so that planning a sweep and skipping its finished runs loads no model library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.layout import TEXT_FILE, pair_folder, pair_label, run_folder, split_file
from pipeline.params import EncodeParams, as_dict
from pipeline.sweep.fingerprint import file_fingerprint, run_inputs
from pipeline.transductive_params import TransClipParams


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs; picklable, so an engine can ship it to a worker."""

    encode: EncodeParams  # the (data set, model) pair and the cache location
    head: str
    head_params: dict[str, Any]  # heads.<head> of params.yaml (defaults filled in by the head's Params)
    shots: int
    seed: int
    results_dir: str  # root of the run folders
    device: str = "auto"  # runtime.device, resolved on the worker
    protocol: str = "all"  # 'all' classes, 'base_to_novel' (fit the base half, score base and novel), 'validation_free'
    transductive: TransClipParams | None = None  # scored by TransCLIP with the test features (asked for), or not
    targets: tuple[EncodeParams, ...] = ()  # cross_dataset / domain_generalisation: the pairs scored besides the source

    @property
    def method(self) -> str:
        """'' for the head's own predictions, 'transclip' for a transductive run (its folder's suffix)."""
        return "" if self.transductive is None else "transclip"

    @property
    def pair(self) -> str:
        return pair_label(self.encode.model.name, self.encode.model.pretrained)

    @property
    def folder(self) -> Path:
        return run_folder(self.results_dir, self.head, self.encode.dataset.name, self.pair, self.shots, self.seed,
                          self.protocol, self.method)

    @property
    def key(self) -> str:
        """<data set>/<model>__<pretrained>/<head>/k<K>-s<seed>: the run's name in logs and reports."""
        return f"{self.encode.dataset.name}/{self.pair}/{self.head}/{self.folder.name}"

    def cache_files(self) -> dict[str, Path]:
        """The cache files a run reads: few-shot train and val, text, test; and a transfer target's test and text
        (test@<target>, text@<target>)."""
        root = pair_folder(self.encode)
        files = {"train": split_file(root, "train", self.shots, self.seed),
                 "val": split_file(root, "val", self.shots, self.seed), "text": root / TEXT_FILE,
                 "test": split_file(root, "test")}
        for target in self.targets:
            files |= {f"test@{target.dataset.name}": split_file(pair_folder(target), "test"),
                      f"text@{target.dataset.name}": pair_folder(target) / TEXT_FILE}
        return files

    def inputs(self) -> dict[str, Any]:
        """The run's canonical inputs (the cache files' fingerprints read from the files)."""
        files = {name: file_fingerprint(path) for name, path in self.cache_files().items()
                 if not (name == "val" and self.protocol == "validation_free")}  # never read there
        transductive = None if self.transductive is None else {"method": self.method,
                                                               "params": as_dict(self.transductive)}
        return run_inputs(self.head, self.head_params, self.shots, self.seed, files, self.protocol, transductive)


@dataclass
class RunResult:
    """What a run reports back to the sweep."""

    key: str
    status: str  # 'done' (fitted and scored now), 'skipped' (already on disk), 'n/a' (cannot exist), 'failed'
    fingerprint: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # fit, evaluate, total (the run's own time)
    metrics: dict[str, Any] = field(default_factory=dict)  # top1, mean_per_class_accuracy, ece, n_test
    error: str = ""  # the failure, one line (the traceback is logged on the worker)
    worker: str = ""  # host:pid that executed it

"""Read the per-class text features file (text.h5): for each template set, [C, T, D] and the normalised [C, D]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ClipCacheError
from pipeline.store.reader import checked


class TextFeatures:
    """Text embeddings of every class under every template set that was encoded (small: read whole)."""

    def __init__(self, path: str | Path, expect: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        with checked(self.path, expect) as (handle, self.provenance, self.build, _):
            self._arrays = {name: handle[f"text/{name}/per_template"][()] for name in handle["text"]}  # [C, T, D]
            self._means = {name: handle[f"text/{name}/mean"][()] for name in handle["text"]}  # [C, D]

    @property
    def classnames(self) -> list[str]:
        return list(self.provenance["dataset"]["classnames"])

    @property
    def template_sets(self) -> list[str]:
        return sorted(self._arrays)

    @property
    def logit_scale(self) -> float:
        """The model's exp(logit_scale), for zero-shot logits."""
        return float(self.provenance["encoder"]["logit_scale"])

    def templates(self, name: str) -> list[str]:
        return list(self.provenance["templates"][self._known(name)])

    def per_template(self, name: str) -> np.ndarray:
        """[C, T, D] raw text embeddings of every (class, template)."""
        return self._arrays[self._known(name)]

    def mean(self, name: str) -> np.ndarray:
        """[C, D] L2-normalised template-ensemble class weights."""
        return self._means[self._known(name)]

    def _known(self, name: str) -> str:
        if name not in self._arrays:
            raise ClipCacheError(f"{str(self.path)!r} has no template set {name!r}; present: "
                                 f"{', '.join(self.template_sets)}")
        return name

"""Read the per-class text features file (text.h5): for each template set, [C, T, D] and the normalised [C, D]; and,
where the data set has a descriptions file, every description's embedding (ragged: [S, D] with per-class offsets) and
their normalised mean per class ("descriptions", CuPL's classifier)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ClipCacheError
from pipeline.store.reader import checked

DESCRIPTIONS = "descriptions"  # the name a head's template_set gives the descriptions' classifier


class TextFeatures:
    """Text embeddings of every class under every template set that was encoded (small: read whole)."""

    def __init__(self, path: str | Path, expect: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        with checked(self.path, expect) as (handle, self.provenance, self.build, _):
            self._arrays = {name: handle[f"text/{name}/per_template"][()] for name in handle["text"]}  # [C, T, D]
            self._means = {name: handle[f"text/{name}/mean"][()] for name in handle["text"]}  # [C, D]
            described = "descriptions" in handle
            self._descriptions = (handle["descriptions/embeddings"][()],  # [S, D] raw
                                  handle["descriptions/offsets"][()]) if described else None  # [C + 1]
            if described:
                self._means[DESCRIPTIONS] = handle["descriptions/mean"][()]  # [C, D]

    @property
    def classnames(self) -> list[str]:
        return list(self.provenance["dataset"]["classnames"])

    @property
    def template_sets(self) -> list[str]:
        """The cached sets a head's `template_set` may name (`descriptions` among them where the file has some)."""
        return sorted(self._means)

    @property
    def logit_scale(self) -> float:
        """The model's exp(logit_scale), for zero-shot logits."""
        return float(self.provenance["encoder"]["logit_scale"])

    def templates(self, name: str) -> list[str]:
        return list(self.provenance["templates"][self._known(name)])

    def per_template(self, name: str) -> np.ndarray:
        """[C, T, D] raw text embeddings of every (class, template)."""
        if self._known(name) == DESCRIPTIONS:
            raise ClipCacheError(f"{str(self.path)!r}: descriptions differ in number per class; read them with "
                                 "description_embeddings()")
        return self._arrays[name]

    def description_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """([S, D] raw embeddings of every description, [C + 1] offsets: class c owns rows offsets[c]:offsets[c+1])."""
        if self._descriptions is None:
            raise ClipCacheError(f"{str(self.path)!r} holds no class descriptions: name a descriptions file for its "
                                 "data set in encode.descriptions and encode again")
        return self._descriptions

    def mean(self, name: str) -> np.ndarray:
        """[C, D] L2-normalised template-ensemble class weights."""
        return self._means[self._known(name)]

    def _known(self, name: str) -> str:
        if name not in self._means:
            raise ClipCacheError(f"{str(self.path)!r} has no template set {name!r}; present: "
                                 f"{', '.join(self.template_sets)}")
        return name

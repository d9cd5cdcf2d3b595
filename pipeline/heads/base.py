"""The one contract every head follows.

A head is a torch Module with a frozen params dataclass (`Params`, unknown keys rejected), a `requires` set naming
what it needs from the store, `fit(data) -> self` (selection on data.val only), `scores(split) -> [N, C]` (in its
`units`), and `shapes` (the sizes its tensors were built with) so that `setup(**shapes)` + `load_state_dict`
restores it.

Every head's `setup` has the one signature `setup(self, **shapes: Unpack[Shapes])`: the sizes are named once, in
`Shapes`, and a head reads those it needs. The tensors a head creates in `setup` are declared on its class
(`cache_keys: torch.Tensor`), so that they have types where they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypedDict, Unpack

import torch
from torch import nn

from pipeline.errors import NotApplicable
from pipeline.heads.inputs import (
    ROW_BATCH,
    FitData,
    SplitReader,
    TextReader,
    has_validation,
    split_batches,
    text_classifier,
)
from pipeline.heads.maths import clip_logits
from pipeline.heads.reference import for_dataset

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# what a head may need from the cache -> the datasets that provide it in train and val files
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "global": ("global",),
    "spatial": ("spatial",),
    "views": ("views/global",),
    "spatial_views": ("views/spatial",),
    "spatial_raw": ("spatial_raw",),
    "spatial_raw_views": ("views/spatial_raw",),
    "late_tokens": ("late_tokens",),
    "late_token_views": ("views/late_tokens",),
    "pooled": ("pooled",),
    "pooled_views": ("views/pooled",),
}


class Shapes(TypedDict, total=False):
    """The sizes a head's tensors are built with: the keyword arguments of `setup`, saved in head.json."""

    dim: int  # D, the joint image-text feature size
    classes: int  # C, the classes scored
    keys: int  # M or S: cache keys (tip_adapter) or support points (proker)
    hw: int  # cells of the spatial grid attended over (vt_clip)
    key_dim: int  # width of the attended spatial map (vt_clip)
    width: int  # token width: the ViT's (vpt_late, cavpt) or the text tower's (coop)
    stored: int  # blocks of late tokens the cache holds (vpt_late, cavpt)
    blocks: int  # prompted ViT blocks (vpt_late, cavpt)
    n_ctx: int  # learned text context vectors (coop; vpt_late with text prompts)
    text_width: int  # the text tower's token width (vpt_late with text prompts)
    length: int  # the tokenizer's context length (coop; vpt_late with text prompts)
    channels: int  # feature channels kept (ape)
    text_blocks: int  # blocks of the text tower carrying adapters (clip_lora)


SHAPE_NAMES = frozenset(Shapes.__annotations__)


class Head(nn.Module):
    """Base class: subclasses set `name` (by the registry), `Params`, `requires`, and implement the hooks below."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[DataclassInstance]]  # the frozen params dataclass
    requires: frozenset[str] = frozenset({"global"})  # a class's, or its instance's when params change it
    units: ClassVar[str] = "logits"  # what `scores` returns: 'logits', or 'probabilities' (in [0, 1] units)
    runs: ClassVar[tuple[str, ...]] = ()  # frozen encoder parts run in stage 2 (prompt learners), e.g. ('text tower',)
    batch_rows: ClassVar[int] = ROW_BATCH  # rows per batch when scoring a split (token heads use fewer)
    novel_classes: ClassVar[bool] = False  # can score classes it was not fitted on (base-to-novel): see `retarget`
    # its classes are parameters of its own even so (GDA's class means): transferred to a subset of its classes it
    # keeps their columns, and only synthesises classes outside them (pipeline/scoring/transfer.py)
    synthesises_classes: ClassVar[bool] = False
    # the (parameter, value) pairs its authors fix for a run that reads no validation image (train.protocol:
    # validation_free), over the run's own; None: it selects on validation, with no such form ("not applicable" there)
    validation_free: ClassVar[tuple[tuple[str, Any], ...] | None] = None
    # the zero-shot classifier's buffers, created by `text_buffers` in the setup of the heads that use it
    class_weights: torch.Tensor  # [C, D] normalised text features
    logit_scale: torch.Tensor  # [] the model's logit scale (exp applied)

    def __init__(self, params: Any) -> None:
        super().__init__()
        self.params = params
        self.shapes: Shapes = {}  # e.g. {"dim": D, "classes": C}; set by fit, stored beside the weights
        self.selected: dict[str, Any] = {}  # hyper-parameters and epoch chosen on validation
        self.history: list[dict[str, float]] = []  # per-epoch validation record of trained heads

    def setup(self, **shapes: Unpack[Shapes]) -> None:
        """Create the head's tensors for these sizes (called by fit, and before load_state_dict)."""
        self.shapes = shapes.copy()

    def prepare(self, data: FitData, template_set: str | None, **shapes: Unpack[Shapes]) -> None:
        """Seeded setup of the head's tensors on the data's device, zero-shot buffers filled from `template_set`."""
        torch.manual_seed(data.seed)
        self.setup(**shapes)
        self.to(data.device)
        if template_set is not None:
            self.load_text(data, template_set)

    def use_dataset_values(self, data: FitData) -> None:
        """Apply the authors' per-data-set values (when params.per_dataset) for the data set being fitted; head.json
        then records the params the fit used, and `selected['per_dataset']` what was applied."""
        self.params, applied = for_dataset(self.name, self.params, data.dataset_layout)
        if applied:
            self.selected["per_dataset"] = {k: list(v) if isinstance(v, tuple) else v for k, v in applied.items()}

    def text_buffers(self, classes: int, dim: int) -> None:
        """Buffers of the zero-shot classifier: class_weights [C, D] and the model's logit scale."""
        self.register_buffer("class_weights", torch.zeros(classes, dim))
        self.register_buffer("logit_scale", torch.zeros(()))

    def load_text(self, data: FitData, template_set: str) -> None:
        """Fill the zero-shot buffers from the cached text features of one template set."""
        self.class_weights.copy_(data.class_weights(template_set))
        self.logit_scale.fill_(data.text.logit_scale)

    def zero_shot(self, image_feats: torch.Tensor) -> torch.Tensor:
        """CLIP zero-shot logits [N, C] of normalised features [N, D]."""
        return clip_logits(image_feats, self.class_weights, self.logit_scale)

    def fit(self, data: FitData) -> Head:
        """Fit on data.train, choose hyper-parameters on data.val; return self."""
        raise NotImplementedError

    def retarget(self, text: TextReader) -> None:
        """Score the classes of `text` from now on (base-to-novel: the novel classes, never seen in training).

        The default serves heads whose only per-class state is the zero-shot classifier: it is rebuilt from the new
        classes' text features; a head with per-class parameters cannot, and says so."""
        if not self.novel_classes:
            raise NotApplicable(f"{self.name} has per-class parameters: it cannot score classes it was not fitted on")
        self.class_weights = text_classifier(text, self.params.template_set, self.device())  # [C', D]
        self.shapes["classes"] = int(self.class_weights.shape[0])

    def batch_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits [B, C] of one row batch from `split_batches` (globals normalised)."""
        raise NotImplementedError

    def batch_inputs(self) -> tuple[str, ...]:
        """Datasets `batch_scores` reads."""
        return ("global",)

    @torch.no_grad()
    def scores(self, split: SplitReader) -> torch.Tensor:
        """[N, C] scores (in `units`) of every image of a split, streamed in row batches."""
        self.eval()
        batches = split_batches(split, self.device(), self.batch_inputs(), self.batch_rows)
        scored = [self.batch_scores(b).float().cpu() for b in batches]
        return torch.cat(scored) if scored else torch.zeros(0, self.shapes.get("classes", 0))  # [0, C]: no images

    def device(self) -> torch.device:
        """Where the head's tensors live."""
        return next(iter(self.state_dict().values())).device

    def param_groups(self) -> list[dict[str, Any]]:
        """What the training loop optimises: groups of trainable parameters, each with an optional 'lr_scale'."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def extra_state(self) -> dict[str, Any]:
        """JSON-able state saved beside the weights (selected hyper-parameters live here)."""
        return {"selected": self.selected, "shapes": self.shapes}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.selected = dict(state.get("selected", {}))


def val_accuracy(head: Head, split: SplitReader) -> float:
    """Accuracy of a head on a split (used on val only during fit)."""
    logits = head.scores(split)
    return float((logits.argmax(-1).numpy() == split.labels).mean()) if split.n else 0.0


def recorded_val_accuracy(head: Head, split: SplitReader) -> float | None:
    """The validation accuracy a fit records (never selects with); None in a validation-free run."""
    return val_accuracy(head, split) if has_validation(split) else None




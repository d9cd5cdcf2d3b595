"""PromptSRC: IVLP's deep prompts regularised by the frozen model (self-regulating constraints) and averaged over
epochs with Gaussian weights.

Paper: Khattak, Wasim, Naseer, Khan, Yang, Khan, "Self-regulating Prompts: Foundational Model Adaptation without
Forgetting", ICCV 2023, arXiv 2307.06948. Code: github muzairkhattak/PromptSRC at
bb95c77b634d63488f2cad81ff4a72d53bdd06d5, trainers/promptsrc.py (VLPromptLearner, CustomCLIP, PromptSRC
.forward_backward, get_gauss, state_dict_weighting / _add), trainers/imagenet_templates.py,
configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml (base-to-novel) and ..._ep50_..._few_shot.yaml.
The loss of a minibatch, with f / t the prompted image and class features and f0 / t0 the frozen ones (all
normalised; t0 the mean of the raw text features of 60 ImageNet templates, "textual diversity"):
    CE(s f t^T, y) + 25 * mean|t - t0| + 10 * mean|f - f0| + KL(softmax(s f0 t0^T) || softmax(s f t^T)) * B / numel
(their F.kl_div with reduction 'sum' divided by the logits' element count). After each epoch e the prompts are
accumulated with weight N(e; mean, std) / sum over the epochs (Gaussian prompt aggregation); the aggregate is shipped.
Defaults (base-to-novel config): 4 text and 4 image tokens, depth 9 in both towers, SGD 0.0025, batch 4, 20 epochs
(one constant warm-up epoch), GPA mean 15 and std 1; their few-shot config: 50 epochs, mean 30 / std 30 (ImageNet,
Caltech101, OxfordPets, Food101, UCF101, SUN397) or 45 / 5 (the other five).
Their 60 templates are the first 60 of CLIP's 80 ImageNet templates, the cache's `imagenet80` set: f0 is the cached
feature of the same augmented view the prompted tower sees (theirs encodes the same augmented image with the frozen
tower), t0 comes from the cache's raw per-template features. The rest is IVLP's (pipeline/heads/vl_prompts.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import ClipCacheError
from pipeline.head_params.promptsrc import PromptSRCParams
from pipeline.heads.base import recorded_val_accuracy
from pipeline.heads.inputs import FitData
from pipeline.heads.ivlp import IVLP
from pipeline.heads.loop import Schedule, train
from pipeline.heads.maths import normalize
from pipeline.heads.registry import register_head

TEACHER_SET, TEACHER_TEMPLATES = "imagenet80", 60  # their IMAGENET_TEMPLATES: the first 60 of CLIP's 80


def gaussian_weights(epochs: int, mean: float, std: float) -> np.ndarray:
    """Their GPA weights: the normal density at epochs 1..E, normalised to sum 1."""
    e = np.arange(1, epochs + 1, dtype=np.float64)
    density = np.exp(-0.5 * ((e - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
    return density / density.sum()


@register_head("promptsrc")
class PromptSRC(IVLP):
    Params = PromptSRCParams

    def run_training(self, data: FitData, schedule: Schedule) -> None:
        p = self.params
        if p.gpa_std <= 0:
            raise ClipCacheError(f"heads.promptsrc.gpa_std must be positive, got {p.gpa_std!r}")
        teacher = self.frozen_text(data)  # [C, D]
        weights = gaussian_weights(schedule.epochs, p.gpa_mean, p.gpa_std)
        aggregate: dict[str, torch.Tensor] = {}

        def epoch_end(epoch: int) -> None:  # their state_dict_weighting and state_dict_add, on float tensors
            for key, value in self.state_dict().items():
                if not value.is_floating_point():
                    aggregate[key] = value.clone()  # token ids and slots: unchanged by training
                elif key in aggregate:
                    aggregate[key] = aggregate[key] + value * float(weights[epoch - 1])
                else:
                    aggregate[key] = value * float(weights[epoch - 1])

        train(self, data, schedule, ("late_tokens", "global"), lambda batch: self.loss(batch, teacher),
              epoch_end=epoch_end)
        self.load_state_dict(aggregate)
        self.selected.update({"val_acc": recorded_val_accuracy(self, data.val), "keep": "gpa",
                              "gpa": {"mean": p.gpa_mean, "std": p.gpa_std}})

    def frozen_text(self, data: FitData) -> torch.Tensor:
        """t0 [C, D]: the mean of the raw features of their 60 templates, normalised."""
        try:
            raw = data.text.per_template(TEACHER_SET)  # [C, 80, D]
        except (ClipCacheError, KeyError) as exc:
            raise ClipCacheError(f"heads.promptsrc needs the cached '{TEACHER_SET}' text features (CLIP's 80 ImageNet "
                                 f"templates, the first 60 of which are theirs): add it to encode.templates") from exc
        if raw.shape[1] < TEACHER_TEMPLATES:
            raise ClipCacheError(f"heads.promptsrc needs {TEACHER_TEMPLATES} templates of '{TEACHER_SET}', the cache "
                                 f"holds {raw.shape[1]}")
        mean = torch.from_numpy(np.asarray(raw[:, :TEACHER_TEMPLATES], dtype=np.float32)).mean(dim=1)  # [C, D]
        return normalize(mean).to(data.device)

    def loss(self, batch: dict[str, torch.Tensor], teacher: torch.Tensor) -> torch.Tensor:
        """Their forward_backward's loss on one minibatch (f0: the cached frozen feature of the same view)."""
        p = self.params
        text = self.text_features()  # [C, D]
        image = self.image_features(batch["late_tokens"])  # [B, D]
        logits = self.logit_scale * image @ text.T  # [B, D] x [D, C] -> [B, C]
        frozen_image = batch["global"]  # [B, D], normalised
        zero_shot = self.logit_scale * frozen_image @ teacher.T  # [B, D] x [D, C] -> [B, C]
        scl_text = F.l1_loss(text, teacher, reduction="mean") * p.text_loss_weight
        scl_image = F.l1_loss(image, frozen_image, reduction="mean") * p.image_loss_weight
        scl_logits = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(zero_shot, dim=1), reduction="sum",
                              log_target=True) / logits.numel()
        return F.cross_entropy(logits, batch["labels"]) + scl_logits + scl_text + scl_image

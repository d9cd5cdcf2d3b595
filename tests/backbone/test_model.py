"""Loading (model, pretrained) pairs: names, tags, local checkpoints, random weights, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.backbone import encode_classes, load_encoder
from pipeline.backbone.model import resolve_architecture, resolve_pretrained
from pipeline.errors import ClipCacheError
from tests.helpers import TINY

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", ["RN50", "RN101", "ViT-B-32", "ViT-B-16", "roberta-ViT-B-32",
                                  "xlm-roberta-base-ViT-B-32"])
def test_the_coop_openclip_backbones_are_accepted_by_name(name: str) -> None:
    assert resolve_architecture(name)[0] == name
    assert resolve_pretrained(name, "none")["random_weights"] is True


def test_known_tags_are_accepted_and_unknown_ones_named() -> None:
    assert resolve_pretrained("RN50", "openai")["pretrained_kind"] == "tag"
    with pytest.raises(ClipCacheError, match=r"'not-a-tag'.*'RN50'"):
        resolve_pretrained("RN50", "not-a-tag")


def test_unknown_model_is_one_line_naming_it() -> None:
    with pytest.raises(ClipCacheError, match=r"'ViT-B-33'.*did you mean") as info:
        resolve_architecture("ViT-B-33")
    assert "\n" not in str(info.value)


def test_missing_checkpoint_file_is_named(tmp_path) -> None:
    with pytest.raises(ClipCacheError, match=r"missing\.pt"):
        resolve_pretrained("RN50", str(tmp_path / "missing.pt"))


def test_random_weights_are_loud_and_reproducible(caplog) -> None:
    first = load_encoder(TINY["vit"], "none", CPU)
    second = load_encoder(TINY["vit"], "none", CPU)
    assert first.provenance["random_weights"] is True and first.provenance["pretrained"] == "none"
    assert "RANDOM WEIGHTS" in caplog.text
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), "'none' must build the same random model in every process (resume depends on it)"


def test_local_checkpoint_file_gives_that_checkpoints_features(tmp_path) -> None:
    """Save a differently-initialised model, load it by path: its weights, not the 'none' ones, are used."""
    torch.manual_seed(123)
    import open_clip

    source = open_clip.create_model(resolve_architecture(TINY["resnet"])[0], pretrained=None).eval()
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    loaded = load_encoder(TINY["resnet"], str(path), CPU)
    random = load_encoder(TINY["resnet"], "none", CPU)
    assert loaded.provenance["pretrained_kind"] == "file" and len(loaded.provenance["checkpoint_sha256"]) == 64
    pixels = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        np.testing.assert_allclose(loaded.model.encode_image(pixels), source.encode_image(pixels), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(random.model.encode_image(pixels), source.encode_image(pixels))


def test_corrupt_checkpoint_is_one_line(tmp_path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipCacheError, match=r"broken\.pt"):
        load_encoder(TINY["resnet"], str(path), CPU)


def test_text_features_per_template_and_normalised_mean() -> None:
    encoder = load_encoder(TINY["vit"], "none", CPU)
    templates = ["a photo of a {}.", "art of the {}."]
    per_template, mean = encode_classes(encoder.model, encoder.tokenizer, ["cat", "dog", "fox"], templates, CPU)
    assert per_template.shape == (3, 2, 32) and mean.shape == (3, 32)
    with torch.inference_mode():
        dog_art = encoder.model.encode_text(encoder.tokenizer(["art of the dog."]))[0]
    torch.testing.assert_close(per_template[1, 1], dog_art, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mean.norm(dim=-1), torch.ones(3))
    expected = torch.nn.functional.normalize(per_template, dim=-1).mean(1)
    torch.testing.assert_close(mean, torch.nn.functional.normalize(expected, dim=-1))

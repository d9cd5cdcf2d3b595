"""CoOp's prompt layout and the text tower fed embeddings (pipeline.prompts.text), on the tiny open_clip model's real
tokenizer and towers: exact token ids and slot positions, the context-length edge, and encode() against
encode_text() for each projection and pool a tower can have."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.backbone import load_encoder
from pipeline.errors import ClipCacheError
from pipeline.prompts.text import TextTower, _prefix, _used, phrase_embedding, prompt_layout
from tests.helpers import CONFIGS, TINY

SOS, EOS = 49406, 49407  # the OpenAI tokenizer's start and end of text


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(TINY["vit"], "none", torch.device("cpu"))


def test_used_and_prefix(encoder) -> None:
    empty, dot, name, phrase = encoder.tokenizer(["", ".", "red thing.", "a photo of a"])
    assert (_used(empty), _used(dot), _used(name), _used(phrase)) == (2, 3, 5, 6)
    assert _prefix(empty, dot) == 1
    assert _used(torch.tensor([5, 7, 7, 7])) == 1 and _used(torch.tensor([3, 3])) == 0
    assert _used(torch.tensor([4, 9, 2])) == 2  # no padding: the last id counts as its own padding


@pytest.mark.parametrize(("n_ctx", "position", "written", "slots"), [
    (3, "middle", ["X red thing X X.", "X cat X X."], [[1, 4, 5], [1, 3, 4]]),
    (2, "middle", ["X red thing X.", "X cat X."], [[1, 4], [1, 3]]),
    (1, "middle", ["red thing X.", "cat X."], [[3], [2]]),
    (3, "end", ["X X X red thing.", "X X X cat."], [[1, 2, 3], [1, 2, 3]]),
    (0, "end", ["red thing.", "cat."], [[], []]),
])
def test_layout_ids_and_slots(encoder, n_ctx: int, position: str, written: list[str], slots: list[list[int]]) -> None:
    """The layout is the hand-written prompt ('X' in every slot) and `slots` point at exactly those X's."""
    layout = prompt_layout(encoder.tokenizer, ["red_thing", "cat"], n_ctx, position)
    ids = encoder.tokenizer(written)
    assert torch.equal(layout.ids, ids) and layout.ids.dtype == torch.long
    assert layout.slots.tolist() == slots and layout.slots.dtype == torch.long
    x = encoder.tokenizer(["X"])[0, 1]
    for c in range(2):
        others = [i for i in range(ids.shape[1]) if i not in slots[c]]
        assert bool((ids[c, layout.slots[c]] == x).all()) and not bool((ids[c, others] == x).any())


def test_the_context_fills_the_text_context_exactly(encoder) -> None:
    """"cat." uses 4 of the 77 tokens: 73 context slots fit (no padding left), 74 do not."""
    layout = prompt_layout(encoder.tokenizer, ["cat"], 73, "end")
    assert layout.ids.shape == (1, 77)
    assert layout.ids[0, 0] == SOS and layout.ids[0, -1] == EOS and layout.ids[0, -3] == 2368  # ... cat . EOS
    assert layout.slots.tolist() == [list(range(1, 74))]
    with pytest.raises(ClipCacheError) as error:
        prompt_layout(encoder.tokenizer, ["cat"], 74, "end")
    assert str(error.value) == "class name 'cat' with n_ctx=74 does not fit the text context of 77 tokens"
    with pytest.raises(ClipCacheError) as error:
        prompt_layout(encoder.tokenizer, ["cat"], 2, "front")
    assert str(error.value) == "class_token_position must be 'end' or 'middle', got 'front'"


def test_phrase_embedding_is_the_phrase_tokens(encoder) -> None:
    tower = TextTower(encoder.model)
    ours = phrase_embedding(tower, encoder.tokenizer, "a photo of a")
    ids = encoder.tokenizer(["a photo of a"])[0, 1:5]
    torch.testing.assert_close(ours, encoder.model.token_embedding(ids))
    assert ours.shape == (4, 32)
    with pytest.raises(ClipCacheError) as error:
        phrase_embedding(tower, encoder.tokenizer, "")
    assert str(error.value) == "ctx_init '' has no tokens"


def test_tower_kind_width_and_embed(encoder) -> None:
    tower = TextTower(encoder.model)
    assert (tower.kind, tower.width, tower.device) == ("clip", 32, torch.device("cpu"))
    assert tower.src is encoder.model
    ids = encoder.tokenizer(["cat."])
    torch.testing.assert_close(tower.embed(ids), encoder.model.token_embedding(ids))


@pytest.mark.parametrize(("text_cfg", "custom"), [({"proj_type": "linear", "pool_type": "eos", "eos_id": EOS}, True),
                                               ({"proj_type": "linear", "pool_type": "eos", "eos_id": EOS}, False),
                                               ({"proj_type": "none", "pool_type": "last"}, True),
                                               ({"pool_type": "last"}, False),
                                               ({"pool_type": "first", "no_causal_mask": True}, True),
                                               ({"pool_type": "first", "no_causal_mask": True, "pad": True}, True)])
def test_encode_is_encode_text_for_every_projection_and_pool(text_cfg: dict, custom: bool, tmp_path: Path) -> None:
    """A linear projection, none, the eos / last / first pools, a tower with a pad mask, as open_clip's CLIP (the
    model holds the text modules) or CustomTextCLIP (model.text): the context-free prompts through embed + encode
    give encode_text's features."""
    config = json.loads((CONFIGS / "tiny-ViT.json").read_text())
    pad = text_cfg.pop("pad", False)
    config["text_cfg"].update(text_cfg)
    config["custom_text"] = custom
    path = tmp_path / "tiny-text.json"
    path.write_text(json.dumps(config))
    encoder = load_encoder(str(path), "none", torch.device("cpu"))
    tower = TextTower(encoder.model)
    assert tower.kind == "clip" and tower.src is (encoder.model.text if custom else encoder.model)
    if pad:
        tower.src.use_pad_mask = True  # as TextTransformer(use_pad_mask=True): padding masked out of attention
    ids = prompt_layout(encoder.tokenizer, ["red thing", "cat"], 2, "middle").ids
    with torch.no_grad():
        torch.testing.assert_close(tower.encode(tower.embed(ids), ids), encoder.model.encode_text(ids))

"""A tiny Hugging Face (RoBERTa) text tower on disk: config, word-level tokenizer and an open_clip model config that
points at them, so the hf-text-tower code path runs offline with random weights (the roberta-ViT-B-32 layout)."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ["<s>", "<pad>", "</s>", "<unk>", ".", "X", "a", "photo", "of", "red", "green", "blue", "thing", "dog", "cat"]


def make_hf_model(root: Path) -> Path:
    """root/hf (config + tokenizer) and root/tiny-roberta-ViT.json; returns the model-config path."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, RobertaConfig

    hf = root / "hf"
    vocab = {word: i for i, word in enumerate(WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                             special_tokens=[("<s>", 0), ("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(hf)
    RobertaConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=80, pad_token_id=1, bos_token_id=0,
                  eos_token_id=2).save_pretrained(hf)
    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": 64, "layers": 2, "width": 48, "head_width": 16, "patch_size": 16},
              "text_cfg": {"hf_model_name": str(hf), "hf_tokenizer_name": str(hf), "hf_pooler_type": "mean_pooler",
                           "hf_proj_type": "linear", "hf_model_pretrained": False, "context_length": 77}}
    path = root / "tiny-roberta-ViT.json"
    path.write_text(json.dumps(config))
    return path

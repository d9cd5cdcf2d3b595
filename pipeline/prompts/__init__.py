"""Learnable prompts fed to the frozen parts of an open_clip model that the cache cannot hold.

`text.TextTower`: the text tower taking token embeddings (CoOp's context vectors) instead of token ids.
`text.prompt_layout`: tokenizer-agnostic placement of n_ctx context slots around each class name.
`vision.LateViT`: the last k blocks of a ViT, its pool and projection, run on cached late tokens with prompts.
"""

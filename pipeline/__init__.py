"""clipcache: encode once with frozen open_clip models, adapt few-shot heads on the cached tensors."""

__version__ = "0.1.0"

"""Frozen open_clip encoders: (model, pretrained) -> global features, spatial maps, text features."""

from pipeline.encoders.device import pick_device
from pipeline.encoders.image import encode_images, require_spatial, tower_kind
from pipeline.encoders.model import Encoder, load_encoder
from pipeline.encoders.text import encode_classes

__all__ = ["Encoder", "encode_classes", "encode_images", "load_encoder", "pick_device", "require_spatial", "tower_kind"]

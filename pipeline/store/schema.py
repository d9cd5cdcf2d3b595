"""The layout of a split file (train/val/test .h5). The README's "Cache schema" section documents it.

Row datasets have N rows (one per image kept); view datasets have V x N rows. All are contiguous and
uncompressed (docs/DESIGN.md: fastest random batch reads), written whole by the consolidation step.
"""

from __future__ import annotations

# name -> (axis that holds the images, meaning)
ROW_DATASETS: dict[str, str] = {
    "global": "[N, D] the model's encode_image output, not L2-normalised",
    "spatial": "[N, HW, D] spatial map in the joint space (ViT tokens x proj; ResNet c_proj(v_proj(.)); timm towers: "
               "each token through the pool's one-token path and the heads)",
    "spatial_raw": "[N, HW, C_s] spatial map before the projection (ResNet layer 4; ViT tokens after ln_post; timm "
                   "towers: patch tokens after the trunk's final norm)",
    "late_tokens": "[N, T, width] ViT token sequence (prefix and patches) entering block L-k (k = "
                   "features.late_tokens)",
    "pooled": "[N, width] the pooled feature before the final projection (ViT: ln_post(class token); ResNet: the "
              "attention pool before c_proj; timm towers: the trunk's pre-logits): global = pooled @ projection",
    "labels": "[N] int64 class index",
    "item_index": "[N] int64 index of the image in the data set's source split list",
    "image_id": "[N] str path of the image relative to the data-set root",
}
VIEW_DATASETS: dict[str, str] = {
    "views/global": "[V, N, D] global features of the augmented views",
    "views/spatial": "[V, N, HW, D] spatial maps of the augmented views",
    "views/spatial_raw": "[V, N, HW, C_s] pre-projection maps of the augmented views",
    "views/late_tokens": "[V, N, 1+HW, width] late tokens of the augmented views",
    "views/pooled": "[V, N, width] pooled features of the augmented views",
    "views/box": "[V, N, 5] int32 crop (top, left, height, width, flipped) of each view",
}
VIEW_AXIS = 1  # images are the second axis of view datasets: [V, N, ...]


def image_axis(name: str) -> int:
    """Which axis of dataset `name` indexes images."""
    return VIEW_AXIS if name.startswith("views/") else 0


def known(name: str) -> bool:
    """Whether `name` is a dataset of the schema."""
    return name in ROW_DATASETS or name in VIEW_DATASETS

# dataset -> the encode setting that produces it (named in the error when a cache lacks it)
ENABLED_BY: dict[str, str] = {
    "spatial": "encode.features.spatial: true",
    "spatial_raw": "encode.features.spatial_raw: true",
    "views/global": "encode.views.count > 0 (train files only)",
    "views/spatial": "encode.views.count > 0 and encode.views.spatial: true (train files only)",
    "views/spatial_raw": "encode.views.count > 0, encode.views.spatial and encode.features.spatial_raw: true (train "
                         "files only)",
    "views/box": "encode.views.count > 0 (train files only)",
    "late_tokens": "encode.features.late_tokens: k > 0 (CLIP ViT and timm ViT / Eva models)",
    "views/late_tokens": "encode.features.late_tokens: k > 0 and encode.views.count > 0 (train files only)",
    "pooled": "encode.features.pooled: true (ViT, ResNet and timm ViT / Eva models with linear projections)",
    "views/pooled": "encode.features.pooled: true and encode.views.count > 0 (train files only)",
}

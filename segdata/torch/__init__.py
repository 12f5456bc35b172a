"""The PyTorch bridge: unified datasets as ``torch.utils.data.Dataset``\\ s, training transforms,
tail-aware samplers and class weights (this subpackage imports torch; ``import segdata`` does not).

>>> from segdata.torch import SegmentationDataset, train_transform   # doctest: +SKIP
>>> data = SegmentationDataset("cityscapes-unified", "train", transform=train_transform(512))  # doctest: +SKIP
>>> sample = data[0]  # {"image": (3, H, W) float32, "label": (H, W) int64, "image_id": str}  # doctest: +SKIP
>>> batches = loader(SegmentationDataset("cityscapes-unified", "val"), 8, num_workers=4)  # doctest: +SKIP

Train ids are ``0..K-1`` of a :class:`segdata.vocab.Vocabulary`; unlabeled pixels, classes
outside the vocabulary and classes flagged ``ignore`` carry ``vocab.ignore_index`` (255 unless
the vocabulary has more than 255 classes, then 65535).
"""

from __future__ import annotations

from .batching import BatchLoader, loader
from .data import SegmentationDataset, default_vocabulary
from .samplers import RepeatFactorSampler, class_counts, class_presence, class_weights, repeat_factors
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Resize,
    eval_transform,
    train_transform,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchLoader",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomScale",
    "RepeatFactorSampler",
    "Resize",
    "SegmentationDataset",
    "class_counts",
    "class_presence",
    "class_weights",
    "default_vocabulary",
    "eval_transform",
    "loader",
    "repeat_factors",
    "train_transform",
]

"""Pixel losses of ``segdata train``: cross-entropy with an ignore index, class-balanced
cross-entropy (Cui et al. 2019) and online hard example mining (OHEM).

Conventions: ``logits`` are ``(B, K, H, W)`` floats, ``target`` ``(B, H, W)`` int64 train ids
``0..K-1``; pixels equal to ``ignore_index`` (the vocabulary's, 255 unless it has more than 255
classes) carry no loss and count in no mean. Every loss returns a scalar: the mean over the pixels
it keeps (weighted as documented); a batch without any kept pixel gives ``0`` (still connected to
the graph, so that a step with it is a no-op and not a NaN).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ClassBalancedCrossEntropy",
    "CrossEntropy",
    "OhemCrossEntropy",
    "build_loss",
    "effective_number_weights",
    "ohem_mask",
]

LOSSES = ("ce", "class-balanced", "ohem")


def _zero(logits: torch.Tensor) -> torch.Tensor:
    return logits.sum() * 0.0


class CrossEntropy(nn.Module):
    """Cross-entropy averaged over the non-ignored pixels.

    With ``weight`` (one positive float per class) it is PyTorch's weighted mean:
    ``sum_i w[y_i] * loss_i / sum_i w[y_i]`` over non-ignored pixels ``i``.
    """

    def __init__(self, ignore_index: int = 255, weight: torch.Tensor | None = None):
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not bool((target != self.ignore_index).any()):
            return _zero(logits)
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        return F.cross_entropy(logits, target, weight=weight, ignore_index=self.ignore_index)


def effective_number_weights(counts, beta: float = 0.9999) -> np.ndarray:
    """Class weights by the effective number of samples (Cui et al. 2019, "Class-Balanced Loss
    Based on Effective Number of Samples"): ``w_c = (1 - beta) / (1 - beta ** n_c)``, scaled so
    that the weights of the classes with samples sum to their number; a class with ``n_c = 0``
    gets weight 0 (it has no pixel to weigh).

    ``counts`` are per-class sample counts (images or pixels); ``beta`` in [0, 1): 0 gives equal
    weights, values near 1 approach inverse frequency. :func:`segdata.torch.samplers.class_weights`
    computes the same weights from a dataset's segment table.

    >>> effective_number_weights([1, 3], beta=0.5).round(4).tolist()  # raw 1/1 and 0.5/0.875
    [1.2727, 0.7273]
    """
    n = np.asarray(counts, dtype=np.float64)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    if (n < 0).any():
        raise ValueError("counts must be >= 0")
    present = n > 0
    w = np.zeros_like(n)
    w[present] = (1.0 - beta) / (1.0 - np.power(beta, n[present]))
    if present.any():
        w[present] *= present.sum() / w[present].sum()
    return w


class ClassBalancedCrossEntropy(CrossEntropy):
    """Cross-entropy weighted per class by the effective number of samples (Cui et al. 2019):
    PyTorch's weighted mean (see :class:`CrossEntropy`) with ``weight`` = class-balanced weights,
    from :func:`segdata.torch.samplers.class_weights` or :func:`effective_number_weights`."""

    def __init__(self, weight, ignore_index: int = 255):
        super().__init__(ignore_index=ignore_index, weight=torch.as_tensor(np.asarray(weight), dtype=torch.float32))


def ohem_mask(logits: torch.Tensor, target: torch.Tensor, ignore_index: int, thresh: float | None, min_kept: int):
    """The pixels OHEM keeps, as mmsegmentation's ``OHEMPixelSampler`` picks them (no gradient).

    With ``thresh`` (a probability): the valid pixels' softmax probabilities of their true class,
    sorted ascending; ``threshold = max(thresh, p[min(min_kept, n_valid - 1)])``; the pixels with
    ``p < threshold`` are kept (a loss above ``-log(threshold)``): the hard ones, and at least the
    ``min_kept`` hardest when fewer are below ``thresh``. Without ``thresh``: the ``min_kept``
    pixels of highest cross-entropy (ties by position).

    Returns a ``(B, H, W)`` bool tensor; ignored pixels are never kept.
    """
    with torch.no_grad():
        valid = target != ignore_index
        keep = torch.zeros_like(valid)
        n_valid = int(valid.sum())
        if n_valid == 0:
            return keep
        safe = torch.where(valid, target, torch.zeros_like(target))
        if thresh is not None:
            prob = torch.softmax(logits.float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
            sorted_prob = torch.sort(prob[valid]).values
            threshold = max(float(thresh), float(sorted_prob[min(min_kept, n_valid - 1)]))
            keep = valid & (prob < threshold)
        else:
            losses = F.cross_entropy(logits.float(), safe, reduction="none")
            losses = torch.where(valid, losses, torch.full_like(losses, -math.inf)).flatten()
            top = torch.topk(losses, min(min_kept, n_valid), sorted=True).indices
            keep = keep.flatten()
            keep[top] = True
            keep = keep.view_as(valid)
        return keep


class OhemCrossEntropy(nn.Module):
    """Cross-entropy over the hard pixels only (online hard example mining), averaged over the
    pixels kept by :func:`ohem_mask` (computed over the whole batch, as mmsegmentation does).

    Parameters
    ----------
    ignore_index : int
    thresh : float or None
        Probability threshold: pixels whose true-class probability is below it are hard
        (mmsegmentation's Cityscapes configs: 0.7). None: keep the ``min_kept`` highest losses.
    min_kept : int or None
        At least this many pixels are kept per batch (mmsegmentation's configs: 100000 for eight
        512x1024 crops). None: a sixteenth of the batch's valid pixels (at least 1), which keeps
        the same share on any crop size.
    """

    def __init__(self, ignore_index: int = 255, thresh: float | None = 0.7, min_kept: int | None = None):
        super().__init__()
        if thresh is not None and not 0.0 < thresh <= 1.0:
            raise ValueError(f"thresh must be in (0, 1], got {thresh}")
        if min_kept is not None and min_kept < 1:
            raise ValueError(f"min_kept must be >= 1, got {min_kept}")
        self.ignore_index = int(ignore_index)
        self.thresh = thresh
        self.min_kept = min_kept

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = int((target != self.ignore_index).sum())
        min_kept = self.min_kept if self.min_kept is not None else max(1, valid // 16)
        keep = ohem_mask(logits, target, self.ignore_index, self.thresh, min_kept)
        if not bool(keep.any()):
            return _zero(logits)
        kept_target = torch.where(keep, target, torch.full_like(target, self.ignore_index))
        return F.cross_entropy(logits, kept_target, ignore_index=self.ignore_index)


def build_loss(name: str, ignore_index: int = 255, class_weights=None) -> nn.Module:
    """The loss ``name`` (one of :data:`LOSSES`); ``class_weights`` (K floats) for
    ``class-balanced``."""
    if name == "ce":
        return CrossEntropy(ignore_index)
    if name == "class-balanced":
        if class_weights is None:
            raise ValueError("the class-balanced loss needs class weights")
        return ClassBalancedCrossEntropy(class_weights, ignore_index)
    if name == "ohem":
        return OhemCrossEntropy(ignore_index)
    raise ValueError(f"unknown loss {name!r}; losses: {', '.join(LOSSES)}")

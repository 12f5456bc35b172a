"""The figures each anchor tool would print for the same counts (``segdata eval --convention``).

Every convention is a set of functions of the per-class sums ``tp``, ``gt``, ``pred`` and ``miss``
(arrays of any shape, classes last: the whole dataset, one image, or bootstrap resamples), so the
intervals follow the same rule as the estimate. Where they differ:

=============  ===============================  ==============================  =====================
convention     a class absent from both sides   predicted, absent from the gt   misses (no prediction)
=============  ===============================  ==============================  =====================
segdata        IoU null, left out of the mean   IoU 0, counted                  false negatives
mmseg          NaN, left out (``nanmean``)      IoU 0, counted                  false negatives
detectron2     NaN, left out                    **left out** (no gt pixels)     not counted at all
cityscapes     NaN, left out                    IoU 0, counted                  false negatives
ade-devkit     IoU 0, **counted** (eps)         IoU 0, counted                  false negatives
=============  ===============================  ==============================  =====================

- mmsegmentation (``IoUMetric``, ``mean_iou``): per-class ``intersect / union`` over the dataset's
  sums, ``np.nanmean``; ``aAcc`` = sum of intersections / sum of labelled pixels; ``mAcc`` the
  nan-mean of ``intersect / label``; printed in percent, 2 decimals.
- detectron2 (``SemSegEvaluator``, its main branch since 2022-07, commit f3c1bc19; v0.6 counted
  predicted-only classes as 0): a class enters the means only when it has ground-truth pixels
  (``iou_valid = acc_valid & (union > 0)``), so a class predicted but absent from the ground truth
  is left out; a pixel whose prediction is no class (our miss column) falls in the extra bin and
  is not counted in ``pos_gt``; ``fwIoU`` weighted by ``pos_gt``, ``mACC``, ``pACC``; percent.
- cityscapes (``evalPixelLevelSemanticLabeling``): the mean over the classes not flagged
  ``ignoreInEval`` skipping NaN; a prediction of an ignored label is a false negative of the pixel's
  class; iIoU in :mod:`segdata.eval.instances`; printed with 3 decimals.
- ade-devkit (the ADE20K scene-parsing devkit, ``intersectionAndUnion``): IoU = sum of
  intersections / sum of (eps + union) over the images (eps = ``np.spacing(1)``), so an absent class
  scores 0 and counts in the mean over all classes; pixel accuracy over labelled pixels; no mean
  accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SelectionError
from ..metrics import accuracy_of, iou_of, mean_present

NAMES = ("segdata", "mmseg", "detectron2", "cityscapes", "ade-devkit")
ADE_EPS = float(np.spacing(1))  #: the devkit's epsilon in the IoU denominator (MATLAB eps, once per image)


def _f(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True)
class Convention:
    """One tool's rules. Figures are fractions; ``scale`` and ``decimals`` say how the tool prints them."""

    name: str
    description: str
    scale: float = 1.0
    decimals: int = 4
    misses_counted: bool = True
    absent_counts_zero: bool = False
    needs_ground_truth: bool = False
    mean_accuracy_defined: bool = True
    fw_iou_defined: bool = True

    def _gt(self, gt, miss):
        gt = _f(gt)
        return gt if self.misses_counted or miss is None else gt - _f(miss)

    def iou(self, tp, gt, pred, miss=None, seen=None) -> np.ndarray:
        """Per-class IoU; NaN where the class is left out of the means. ``seen``: the classes with
        ground truth in the whole sample, for bootstrap resamples (:func:`segdata.metrics.iou_of`);
        the devkit's rule scores every class, seen or not."""
        tp, g, pred = _f(tp), self._gt(gt, miss), _f(pred)
        if self.absent_counts_zero:
            return tp / (g + pred - tp + ADE_EPS)
        values = iou_of(tp, g, pred, seen=seen)
        return np.where(g > 0, values, np.nan) if self.needs_ground_truth else values

    def accuracy(self, tp, gt, miss=None) -> np.ndarray:
        """Per-class accuracy (recall); NaN where the class has no ground truth."""
        return accuracy_of(tp, self._gt(gt, miss))

    def miou(self, tp, gt, pred, miss=None, classes=None, seen=None) -> np.ndarray:
        values = self.iou(tp, gt, pred, miss, seen)
        if classes is not None:
            values = values[..., np.asarray(classes, dtype=np.int64)]
        return mean_present(values)

    def mean_accuracy(self, tp, gt, miss=None, classes=None) -> np.ndarray:
        values = self.accuracy(tp, gt, miss)
        if classes is not None:
            values = values[..., np.asarray(classes, dtype=np.int64)]
        return mean_present(values)

    def pixel_accuracy(self, tp, gt, miss=None) -> np.ndarray:
        tp, g = _f(tp).sum(axis=-1), self._gt(gt, miss).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(g > 0, tp / np.where(g > 0, g, 1), np.nan)

    def fw_iou(self, tp, gt, pred, miss=None) -> np.ndarray:
        g = self._gt(gt, miss)
        values = self.iou(tp, gt, pred, miss)
        total = g.sum(axis=-1)
        weighted = np.where(g > 0, np.nan_to_num(values) * g, 0.0).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, weighted / np.where(total > 0, total, 1), np.nan)

    def printed(self, figures: dict) -> dict:
        """The figures as the tool prints them (scaled and rounded), keyed by the tool's names."""
        keys = _PRINTED[self.name]
        out = {}
        for ours, theirs in keys.items():
            value = figures.get(ours)
            out[theirs] = None if value is None or value != value else round(value * self.scale, self.decimals)
        return out


_PRINTED = {
    "segdata": {
        "miou": "miou",
        "pixel_accuracy": "pixel_accuracy",
        "mean_accuracy": "mean_accuracy",
        "fw_iou": "fw_iou",
    },
    "mmseg": {"pixel_accuracy": "aAcc", "miou": "mIoU", "mean_accuracy": "mAcc"},
    "detectron2": {"miou": "mIoU", "fw_iou": "fwIoU", "mean_accuracy": "mACC", "pixel_accuracy": "pACC"},
    "cityscapes": {"miou": "IoU Score Average", "mean_iiou": "iIoU Score Average"},
    "ade-devkit": {"miou": "Mean IoU", "pixel_accuracy": "Pixel accuracy"},
}

CONVENTIONS = {
    "segdata": Convention(
        "segdata",
        "absent classes (no ground truth, no prediction) are null and left out of every mean; "
        "a class predicted but absent from the ground truth scores 0 and counts",
    ),
    "mmseg": Convention(
        "mmseg",
        "mmsegmentation IoUMetric: dataset sums, IoU = intersect / union, np.nanmean over classes; "
        "aAcc over labelled pixels; percent, 2 decimals",
        scale=100.0,
        decimals=2,
        fw_iou_defined=False,
    ),
    "detectron2": Convention(
        "detectron2",
        "detectron2 SemSegEvaluator (main since 2022-07): a class enters the means only with ground-truth "
        "pixels (a predicted-only class is left out); pixels predicted as no class are not counted; "
        "fwIoU weighted by ground-truth pixels; percent",
        scale=100.0,
        decimals=4,
        misses_counted=False,
        needs_ground_truth=True,
    ),
    "cityscapes": Convention(
        "cityscapes",
        "cityscapesScripts evalPixelLevelSemanticLabeling: mean over the classes not flagged ignoreInEval, "
        "NaN skipped; predictions of ignored labels are false negatives; iIoU weighted by avgClassSize",
        decimals=3,
    ),
    "ade-devkit": Convention(
        "ade-devkit",
        "ADE20K scene-parsing devkit: IoU = intersection / (eps + union) summed over the images, so an absent "
        "class scores 0 and counts in the mean over all classes; pixel accuracy over labelled pixels",
        absent_counts_zero=True,
        mean_accuracy_defined=False,
        fw_iou_defined=False,
    ),
}


def get(name: str) -> Convention:
    """The convention called ``name`` (one of :data:`NAMES`)."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise SelectionError(f"--convention must be one of {', '.join(NAMES)}, got {name!r}") from None

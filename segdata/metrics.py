"""Segmentation metrics: a confusion-matrix accumulator and the figures as pure functions of it.

The accumulator has the torchmetrics shape (``update(gt, pred)``, ``merge(other)``,
``compute()``, ``reset()``): int64 counts, one ``bincount`` per image, ignored pixels dropped
before counting. Every figure is a function of the matrix alone, so a figure over a subset of the
classes (a frequency bucket) or over a bootstrap resample of per-image matrices is the same call.

Conventions
-----------
- Classes are ``0 .. C-1`` (0-based, in whatever id space the caller evaluates: train ids, a
  vocabulary's ids). The ground truth's ``ignore_index`` pixels are dropped first, whatever was
  predicted there (mmsegmentation, detectron2 and cityscapesScripts all do so).
- A prediction outside ``0 .. C-1`` (255 "no prediction", a void id) where the ground truth is a
  class is a **miss**: it counts in that class's ground truth and in no class's prediction. The
  confusion matrix therefore has ``C + 1`` columns, the last one for such predictions.
- ``IoU_c = TP / (TP + FP + FN)``; ``accuracy_c = TP / GT`` (recall). A class absent from both
  the ground truth and the prediction is **absent**: its IoU and accuracy are NaN and it is left
  out of every mean, never counted as 0. A class predicted but absent from the ground truth has
  IoU 0 and counts in the mean (mmsegmentation's rule; detectron2 leaves it out).
- ``pixel_accuracy``: correct pixels over all counted ground-truth pixels. ``mean_accuracy``: the
  mean of the per-class accuracies over the classes present in the ground truth.
  ``fw_iou``: the per-class IoU weighted by each class's share of ground-truth pixels.
- mIoU is defined once, at dataset level: matrices are summed over images first.

>>> cm = ConfusionMatrix(3, ignore_index=255)
>>> cm.update(np.array([[0, 0, 1, 255]]), np.array([[0, 1, 1, 2]]))
>>> scores = cm.compute()
>>> scores.iou.tolist(), round(scores.miou, 4)
([0.5, 0.5, nan], 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ConfusionMatrix",
    "Scores",
    "accuracy_of",
    "class_accuracy",
    "confusion_matrix",
    "fw_iou",
    "iou",
    "iou_of",
    "mean_accuracy",
    "mean_present",
    "miou",
    "pixel_accuracy",
    "scores",
]


def confusion_matrix(gt, pred, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """The (C, C + 1) int64 confusion matrix of one image (or any batch of pixels).

    Parameters
    ----------
    gt, pred : array_like of int, same shape
        Ground-truth and predicted class ids per pixel (any integer dtype).
    num_classes : int
        C; classes are ``0 .. C-1``.
    ignore_index : int, optional
        Ground-truth value whose pixels are dropped before counting.

    Returns
    -------
    ndarray of int64, shape (C, C + 1)
        ``m[g, p]`` pixels of ground-truth class ``g`` predicted as ``p``; column ``C`` counts
        predictions outside ``0 .. C-1`` (misses).

    Raises
    ------
    ValueError
        Shapes differ, or a ground-truth value is neither a class nor ``ignore_index``.

    >>> confusion_matrix([0, 1, 1, 9], [0, 1, 255, 0], 2, ignore_index=9).tolist()
    [[1, 0, 0], [0, 1, 1]]
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth and prediction differ in shape: {gt.shape} vs {pred.shape}")
    if gt.dtype.kind not in "iu" or pred.dtype.kind not in "iu":
        raise ValueError(f"expected integer class ids, got {gt.dtype} and {pred.dtype}")
    c = int(num_classes)
    if c < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    g = gt.reshape(-1).astype(np.int64, copy=False)
    p = pred.reshape(-1).astype(np.int64, copy=False)
    if ignore_index is not None:
        keep = g != ignore_index
        if not keep.all():
            g, p = g[keep], p[keep]
    if g.size and (int(g.min()) < 0 or int(g.max()) >= c):
        bad = int(g.min()) if int(g.min()) < 0 else int(g.max())
        raise ValueError(
            f"ground-truth value {bad} is neither a class (0..{c - 1}) nor the ignore index {ignore_index}"
        )
    p = np.where((p < 0) | (p >= c), c, p)
    return np.bincount(g * (c + 1) + p, minlength=c * (c + 1)).reshape(c, c + 1)


def _parts(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TP, GT, PR) per class of a (C, C) or (C, C + k) matrix, as float64."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[1] < m.shape[0]:
        raise ValueError(f"expected a (C, C) or (C, C + 1) confusion matrix, got shape {m.shape}")
    c = m.shape[0]
    tp = np.diagonal(m[:, :c]).astype(np.float64)
    gt = m.sum(axis=1, dtype=np.float64)  # misses (extra columns) included
    pr = m[:, :c].sum(axis=0, dtype=np.float64)
    return tp, gt, pr


def _subset(values: np.ndarray, classes) -> np.ndarray:
    return values if classes is None else values[np.asarray(classes, dtype=np.int64)]


def iou_of(tp, gt, pr, *, seen=None) -> np.ndarray:
    """IoU from per-class sums of any shape (classes last; leading axes for images or bootstrap
    resamples): ``TP / (GT + PR - TP)``, NaN where the union is 0 (an absent class). The one
    definition of IoU, used by :func:`iou` and by the consistency analysis.

    ``seen`` (bool, one per class) marks the classes with ground truth in the whole sample. In a
    bootstrap resample that happens to hold none of a seen class's ground truth, the class is
    *unobserved* there (NaN, left out of the resample's means) rather than scored 0 from the false
    positives the resample kept: otherwise every such resample drags a mean of many classes down,
    the resamples sit below the estimate and no interval method can centre on it. A class without
    ground truth in the whole sample (predicted only) still scores 0 everywhere.

    >>> iou_of(np.array([1, 0, 0]), np.array([2, 0, 1]), np.array([1, 0, 0])).tolist()
    [0.5, nan, 0.0]
    >>> iou_of(np.array([[0, 1]]), np.array([[0, 2]]), np.array([[3, 1]]), seen=np.array([True, True])).tolist()
    [[nan, 0.5]]
    """
    tp, gt, pr = (np.asarray(x, dtype=np.float64) for x in (tp, gt, pr))
    union = gt + pr - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)
    if seen is not None:
        values = np.where((gt == 0) & np.asarray(seen, dtype=bool), np.nan, values)
    return values


def accuracy_of(tp, gt) -> np.ndarray:
    """Accuracy (recall) ``TP / GT`` from per-class sums of any shape; NaN where GT is 0."""
    tp, gt = np.asarray(tp, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gt > 0, tp / np.where(gt > 0, gt, 1), np.nan)


def mean_present(values, axis: int = -1):
    """Mean over ``axis`` of the values that are not NaN (absent classes left out, never 0); NaN
    where all are. The one mean of every per-class figure (mIoU, mean accuracy, a bucket's).

    >>> float(mean_present(np.array([0.5, np.nan, 0.0])))
    0.25
    """
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    count = ok.sum(axis=axis)
    total = np.where(ok, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nanmean(values: np.ndarray) -> float:
    return float(mean_present(values))


def iou(matrix: np.ndarray) -> np.ndarray:
    """(C,) IoU per class: TP / (TP + FP + FN); NaN for a class absent from both sides."""
    return iou_of(*_parts(matrix))


def class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """(C,) accuracy (recall) per class: TP / GT; NaN for a class without ground-truth pixels."""
    tp, gt, _ = _parts(matrix)
    return accuracy_of(tp, gt)


def miou(matrix: np.ndarray, classes=None) -> float:
    """Mean IoU over ``classes`` (indices; default all), absent classes left out; NaN when every
    class is absent."""
    return _nanmean(_subset(iou(matrix), classes))


def mean_accuracy(matrix: np.ndarray, classes=None) -> float:
    """Mean per-class accuracy over ``classes`` present in the ground truth."""
    return _nanmean(_subset(class_accuracy(matrix), classes))


def pixel_accuracy(matrix: np.ndarray, classes=None) -> float:
    """Correct pixels over ground-truth pixels (of ``classes``, when given); NaN without any."""
    tp, gt, _ = _parts(matrix)
    tp, gt = _subset(tp, classes), _subset(gt, classes)
    total = gt.sum()
    return float(tp.sum() / total) if total > 0 else float("nan")


def fw_iou(matrix: np.ndarray, classes=None) -> float:
    """Frequency-weighted IoU: sum of IoU times the class's share of ground-truth pixels (of
    ``classes``, when given); classes without ground truth weigh 0."""
    _, gt, _ = _parts(matrix)
    values, weights = _subset(iou(matrix), classes), _subset(gt, classes)
    total = weights.sum()
    if total <= 0:
        return float("nan")
    present = weights > 0
    return float((values[present] * weights[present]).sum() / total)


@dataclass(frozen=True)
class Scores:
    """The figures of one confusion matrix (see the module docstring for the conventions).

    Attributes
    ----------
    pixel_accuracy, mean_accuracy, miou, fw_iou : float
        NaN where undefined (no ground truth at all).
    iou, accuracy : ndarray of float64, shape (C,)
        Per class; NaN where absent.
    present : ndarray of bool, shape (C,)
        The class has ground-truth or predicted pixels (its IoU is defined).
    """

    pixel_accuracy: float
    mean_accuracy: float
    miou: float
    fw_iou: float
    iou: np.ndarray
    accuracy: np.ndarray
    present: np.ndarray

    def __post_init__(self) -> None:
        if self.iou.shape != self.accuracy.shape or self.iou.shape != self.present.shape or self.iou.ndim != 1:
            raise ValueError(
                f"iou, accuracy and present must be (C,) arrays of one length, got "
                f"{self.iou.shape}, {self.accuracy.shape}, {self.present.shape}"
            )

    def _repr_html_(self) -> str:
        from .render.html import scores_card

        return scores_card(self)

    def to_dict(self) -> dict:
        """JSON-ready: NaN written as None."""

        def clean(x):
            return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)

        return {
            "pixel_accuracy": clean(self.pixel_accuracy),
            "mean_accuracy": clean(self.mean_accuracy),
            "miou": clean(self.miou),
            "fw_iou": clean(self.fw_iou),
            "iou": [clean(v) for v in self.iou.tolist()],
            "accuracy": [clean(v) for v in self.accuracy.tolist()],
            "present": [bool(v) for v in self.present.tolist()],
        }


def scores(matrix: np.ndarray, classes=None) -> Scores:
    """Every figure of ``matrix``; the means over ``classes`` (indices) when given, the per-class
    arrays always over all classes."""
    values = iou(matrix)
    return Scores(
        pixel_accuracy=pixel_accuracy(matrix, classes),
        mean_accuracy=mean_accuracy(matrix, classes),
        miou=_nanmean(_subset(values, classes)),
        fw_iou=fw_iou(matrix, classes),
        iou=values,
        accuracy=class_accuracy(matrix),
        present=~np.isnan(values),
    )


class ConfusionMatrix:
    """Accumulates a (C, C + 1) int64 confusion matrix over images.

    Parameters
    ----------
    num_classes : int
        C; classes are ``0 .. C-1``.
    ignore_index : int, optional
        Ground-truth value whose pixels are dropped (255 in the train-id spaces).

    Examples
    --------
    >>> a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    >>> a.update([0, 1], [0, 0]); b.update([1, 1], [1, 1])
    >>> a.merge(b).matrix.tolist()
    [[1, 0, 0], [1, 2, 0]]
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    def __repr__(self) -> str:
        return f"ConfusionMatrix({self.num_classes}, ignore_index={self.ignore_index}, pixels={int(self.matrix.sum())})"

    def update(self, gt, pred) -> None:
        """Count one image (or batch) of ground truth and prediction (same shape)."""
        self.matrix += confusion_matrix(gt, pred, self.num_classes, self.ignore_index)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts (same classes and ignore index) into this one; returns self."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) into a "
                f"{self.num_classes}-class one (ignore {self.ignore_index})"
            )
        self.matrix += other.matrix
        return self

    def reset(self) -> None:
        self.matrix[:] = 0

    def compute(self, classes=None) -> Scores:
        """:func:`scores` of the accumulated matrix."""
        return scores(self.matrix, classes)

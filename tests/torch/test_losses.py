"""The losses of segdata.torch.losses against hand computations on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segdata.torch.losses import (  # noqa: E402
    ClassBalancedCrossEntropy,
    CrossEntropy,
    OhemCrossEntropy,
    build_loss,
    effective_number_weights,
    ohem_mask,
)


def _nll(logits_row, target):
    """-log softmax(logits_row)[target], by hand."""
    z = np.asarray(logits_row, dtype=np.float64)
    return math.log(np.exp(z).sum()) - z[target]


# one image, 2 classes, 1x4 pixels; the third pixel is ignore (255)
LOGITS = [[0.0, 2.0], [1.0, 0.0], [3.0, 3.0], [0.0, 0.5]]  # per pixel: class 0, class 1
TARGET = [1, 0, 255, 0]


def _tensors():
    logits = torch.tensor(LOGITS, dtype=torch.float32).T.reshape(1, 2, 1, 4)
    target = torch.tensor(TARGET).reshape(1, 1, 4)
    return logits, target


def test_cross_entropy_drops_ignored_pixels():
    logits, target = _tensors()
    expected = np.mean([_nll(LOGITS[i], TARGET[i]) for i in (0, 1, 3)])
    assert float(CrossEntropy(255)(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_of_an_all_ignored_batch_is_zero_not_nan():
    logits, _ = _tensors()
    logits.requires_grad_(True)
    value = CrossEntropy(255)(logits, torch.full((1, 1, 4), 255))
    assert float(value.detach()) == 0.0
    value.backward()
    assert float(logits.grad.abs().sum()) == 0.0


def test_effective_number_weights_by_hand():
    # Cui et al.: (1 - b) / (1 - b ** n); b = 0.5: n=1 -> 1, n=3 -> 0.5 / 0.875; n=0 -> 0
    raw = np.array([1.0, 0.5 / 0.875])
    expected = raw * 2 / raw.sum()
    w = effective_number_weights([1, 3, 0], beta=0.5)
    assert w[:2] == pytest.approx(expected)
    assert w[2] == 0.0
    assert effective_number_weights([5, 50], beta=0.0).tolist() == [1.0, 1.0]  # beta 0: equal


def test_class_balanced_loss_is_the_weighted_mean():
    logits, target = _tensors()
    w = [0.25, 1.75]
    per_pixel = [(w[TARGET[i]], _nll(LOGITS[i], TARGET[i])) for i in (0, 1, 3)]
    expected = sum(a * b for a, b in per_pixel) / sum(a for a, _ in per_pixel)
    assert float(ClassBalancedCrossEntropy(w, 255)(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_ohem_threshold_keeps_pixels_below_the_probability():
    logits, target = _tensors()
    # true-class probabilities: p0 = s(2) = 0.881, p1 = s(1) = 0.731, p3 = s(-0.5) = 0.378
    keep = ohem_mask(logits, target, 255, thresh=0.8, min_kept=1)
    assert keep.reshape(-1).tolist() == [False, True, False, True]
    # at least min_kept: the threshold rises to the (min_kept)-th smallest probability, 0.881,
    # and the pixels strictly below it are kept (mmsegmentation's rule)
    keep = ohem_mask(logits, target, 255, thresh=0.5, min_kept=2)
    assert keep.reshape(-1).tolist() == [False, True, False, True]
    keep = ohem_mask(logits, target, 255, thresh=0.5, min_kept=1)
    assert keep.reshape(-1).tolist() == [False, False, False, True]


def test_ohem_without_threshold_keeps_the_highest_losses():
    logits, target = _tensors()
    keep = ohem_mask(logits, target, 255, thresh=None, min_kept=2)
    assert keep.reshape(-1).tolist() == [False, True, False, True]


def test_ohem_loss_is_the_mean_over_kept_pixels():
    logits, target = _tensors()
    expected = np.mean([_nll(LOGITS[i], TARGET[i]) for i in (1, 3)])
    loss = OhemCrossEntropy(255, thresh=0.8, min_kept=1)(logits, target)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_build_loss_names():
    assert isinstance(build_loss("ce"), CrossEntropy)
    assert isinstance(build_loss("ohem"), OhemCrossEntropy)
    with pytest.raises(ValueError, match="class weights"):
        build_loss("class-balanced")
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal")

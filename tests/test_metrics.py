"""The metrics core against a per-pixel brute force and against the rules of the tools users
compare with (mmsegmentation's dataset-level IoU, detectron2's mean over ground-truth classes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segdata.metrics import (
    ConfusionMatrix,
    class_accuracy,
    confusion_matrix,
    fw_iou,
    iou,
    mean_accuracy,
    miou,
    pixel_accuracy,
)


def brute_force(pairs, c, ignore):
    """Per-class TP, FP, FN counted pixel by pixel in plain Python."""
    tp, fp, fn = [0] * c, [0] * c, [0] * c
    for gt, pred in pairs:
        for g, p in zip(gt.ravel().tolist(), pred.ravel().tolist()):
            if g == ignore:
                continue
            if p == g:
                tp[g] += 1
            else:
                fn[g] += 1
                if 0 <= p < c:
                    fp[p] += 1
    return tp, fp, fn


def random_pairs(seed, n=6, c=7, shape=(9, 13)):
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        gt = rng.integers(0, c, size=shape)
        gt[rng.random(shape) < 0.1] = 255
        pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, c, size=shape))
        pred[rng.random(shape) < 0.05] = 255  # no prediction: a miss
        pairs.append((gt.astype(np.uint8), pred.astype(np.uint8)))
    return pairs


@pytest.mark.parametrize("seed", range(5))
def test_figures_equal_a_per_pixel_count(seed):
    c = 7
    pairs = random_pairs(seed, c=c)
    cm = ConfusionMatrix(c, ignore_index=255)
    for gt, pred in pairs:
        cm.update(gt, pred)
    tp, fp, fn = brute_force(pairs, c, 255)
    expected_iou = [t / (t + f + n) if t + f + n else math.nan for t, f, n in zip(tp, fp, fn)]
    np.testing.assert_allclose(iou(cm.matrix), expected_iou, rtol=0, atol=1e-15)
    expected_acc = [t / (t + n) if t + n else math.nan for t, n in zip(tp, fn)]
    np.testing.assert_allclose(class_accuracy(cm.matrix), expected_acc, rtol=0, atol=1e-15)
    gt_pixels = [t + n for t, n in zip(tp, fn)]
    assert pixel_accuracy(cm.matrix) == pytest.approx(sum(tp) / sum(gt_pixels), abs=1e-15)
    assert fw_iou(cm.matrix) == pytest.approx(
        sum(g * v for g, v in zip(gt_pixels, expected_iou) if g) / sum(gt_pixels), abs=1e-15
    )
    s = cm.compute()
    assert s.miou == pytest.approx(np.nanmean(expected_iou), abs=1e-15)
    assert s.mean_accuracy == pytest.approx(np.nanmean(expected_acc), abs=1e-15)


def test_batches_merged_equal_one_pass():
    pairs = random_pairs(11)
    one = ConfusionMatrix(7, 255)
    one.update(np.stack([g for g, _ in pairs]), np.stack([p for _, p in pairs]))
    parts = [ConfusionMatrix(7, 255), ConfusionMatrix(7, 255)]
    for k, (gt, pred) in enumerate(pairs):
        parts[k % 2].update(gt, pred)
    assert np.array_equal(parts[0].merge(parts[1]).matrix, one.matrix)
    assert one.matrix.dtype == np.int64 and one.matrix.shape == (7, 8)


def test_absent_class_is_nan_and_left_out_predicted_only_class_counts_zero():
    # class 2: in neither; class 3: predicted only (on class-0 pixels)
    gt = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 3, 1, 1, 1])
    m = confusion_matrix(gt, pred, 4)
    values = iou(m)
    assert values[0] == pytest.approx(2 / 3) and values[1] == 1.0
    assert math.isnan(values[2]) and values[3] == 0.0
    assert miou(m) == pytest.approx((2 / 3 + 1 + 0) / 3)  # absent class 2 left out, never 0
    assert mean_accuracy(m) == pytest.approx((2 / 3 + 1) / 2)  # accuracy over classes with ground truth
    assert math.isnan(miou(m, classes=[2]))  # a bucket of absent classes: NaN


def test_predictions_on_ignored_pixels_do_not_count():
    gt = np.array([255, 255, 1, 1])
    pred = np.array([0, 1, 1, 1])
    m = confusion_matrix(gt, pred, 2, ignore_index=255)
    assert m.tolist() == [[0, 0, 0], [0, 2, 0]]
    assert math.isnan(iou(m)[0])  # predicted only where the ground truth is ignored: absent


def test_no_prediction_is_a_miss_of_the_ground_truth_class():
    m = confusion_matrix([1, 1, 1, 1], [1, 255, 1, 7], 2)
    assert m.tolist() == [[0, 0, 0], [0, 2, 2]]
    assert iou(m)[1] == 0.5 and pixel_accuracy(m) == 0.5


def test_a_bucket_is_the_same_figure_over_its_classes():
    pairs = random_pairs(3)
    cm = ConfusionMatrix(7, 255)
    for gt, pred in pairs:
        cm.update(gt, pred)
    bucket = [1, 4, 6]
    assert miou(cm.matrix, bucket) == pytest.approx(np.nanmean(iou(cm.matrix)[bucket]), abs=1e-15)
    assert cm.compute(bucket).miou == miou(cm.matrix, bucket)


def test_mmseg_and_detectron2_rules_on_the_same_matrix():
    """Re-implemented from their documented rules: mmsegmentation's IoUMetric averages every
    class with a union (predicted-only classes score 0); detectron2's SemSegEvaluator averages the
    classes with ground-truth pixels only. segdata's default is mmsegmentation's."""
    gt = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 3, 3])
    m = confusion_matrix(gt, pred, 4)
    tp = np.array([1, 2, 0, 0.0])
    union = np.array([2, 3, 2, 2.0])
    mmseg = np.nanmean(tp / union)
    has_gt = np.array([2, 2, 2, 0]) > 0
    detectron2 = (tp / union)[has_gt].mean()
    assert miou(m) == pytest.approx(mmseg)
    assert miou(m) != pytest.approx(detectron2)
    assert miou(m, classes=np.flatnonzero(has_gt)) == pytest.approx(detectron2)


def test_more_than_255_classes_in_16_bit_maps():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3688, size=(64, 64)).astype(np.uint16)
    pred = gt.copy()
    pred[:8] = (pred[:8] + 1) % 3688
    m = confusion_matrix(gt, pred, 3688)
    assert m.shape == (3688, 3689) and int(np.trace(m[:, :3688])) == 56 * 64
    assert pixel_accuracy(m) == 56 / 64


@pytest.mark.parametrize(
    "gt,pred,message",
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), "differ in shape"),
        (np.array([0, 5]), np.array([0, 0]), "ground-truth value 5"),
        (np.array([0.0]), np.array([0]), "integer class ids"),
    ],
)
def test_bad_input_is_named(gt, pred, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(gt, pred, 3, ignore_index=255)


def test_merge_refuses_another_class_space():
    with pytest.raises(ValueError, match="cannot merge"):
        ConfusionMatrix(3).merge(ConfusionMatrix(4))


def test_to_dict_writes_nan_as_null():
    s = ConfusionMatrix(3).compute()
    d = s.to_dict()
    assert d["miou"] is None and d["iou"] == [None, None, None] and d["present"] == [False] * 3

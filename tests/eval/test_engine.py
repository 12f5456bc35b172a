"""The eval engine's own pieces: the per-image counting (C kernel and numpy alike), Counts, the id
spaces, prediction discovery and reading. Figures against the official tools are in the other
tests of this folder."""

from __future__ import annotations

import numpy as np
import pytest

from segdata.errors import InputError
from segdata.eval.counting import Counts, count_pair
from segdata.eval.predictions import find_predictions, read_prediction
from segdata.maskio import encode_png
from segdata.metrics import confusion_matrix


def _random_case(rng, h=37, w=131, n_seg=40, k=7, pred_values=12, dtype=np.uint8):
    seg = rng.integers(0, n_seg, (h, w)).astype(dtype)
    seg_lut = rng.integers(-1, k, n_seg).astype(np.int64)
    seg_lut[0] = -1
    pred = rng.integers(0, pred_values, (h, w)).astype(dtype)
    pred_lut = np.full(1 << 16, -2, dtype=np.int32)
    pred_lut[:pred_values] = rng.integers(0, k + 1, pred_values)  # k = no prediction
    return seg, seg_lut, pred, pred_lut


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_count_pair_equals_a_per_pixel_confusion_matrix(dtype):
    rng = np.random.default_rng(3)
    k = 7
    seg, seg_lut, pred, pred_lut = _random_case(rng, k=k, dtype=dtype)
    cells, pixels, hits = count_pair(seg, pred, seg_lut, pred_lut, k)
    flat = np.zeros(k * (k + 1), dtype=np.int64)
    flat[cells] = pixels
    gt = seg_lut[seg]
    p = pred_lut[pred]
    expected = confusion_matrix(np.where(gt >= 0, gt, 255), np.where(p < k, p, -1), k, ignore_index=255)
    np.testing.assert_array_equal(flat.reshape(k, k + 1), expected)
    # hits: per segment, the pixels predicted as the segment's class
    for s in range(len(seg_lut)):
        m = seg == s
        want = int(((p[m] == seg_lut[s]) & (seg_lut[s] >= 0)).sum())
        assert hits[s] == want


def test_count_pair_native_and_numpy_agree():
    rng = np.random.default_rng(5)
    k = 9
    seg, seg_lut, pred, pred_lut = _random_case(rng, k=k, n_seg=60, pred_values=20)
    native = count_pair(seg, pred, seg_lut, pred_lut, k)
    # a 16-bit prediction with values beyond the kernel's dense table goes through numpy
    wide = pred.astype(np.uint16)
    numpy_path = count_pair(seg.astype(np.int32), wide.astype(np.int64), seg_lut, pred_lut, k)
    for a, b in zip(native, numpy_path):
        np.testing.assert_array_equal(a, b)


def test_a_value_outside_the_id_space_names_the_prediction():
    rng = np.random.default_rng(1)
    seg, seg_lut, pred, pred_lut = _random_case(rng)
    pred[3, 4] = 200  # not in the table
    with pytest.raises(InputError, match=r"pred\.png: value 200 is outside the id space"):
        count_pair(seg, pred, seg_lut, pred_lut, 7, where=("gt.png", "pred.png"))


def test_counts_from_cells_per_image_sums():
    rng = np.random.default_rng(2)
    k = 5
    images = []
    matrices = []
    for i in range(3):
        seg, seg_lut, pred, pred_lut = _random_case(rng, k=k)
        cells, pixels, hits = count_pair(seg, pred, seg_lut, pred_lut, k)
        images.append((f"im{i}", cells, pixels, hits))
        m = np.zeros(k * (k + 1), dtype=np.int64)
        m[cells] = pixels
        matrices.append(m.reshape(k, k + 1))
    counts = Counts.from_cells(k, images)
    np.testing.assert_array_equal(counts.matrix, sum(matrices))
    for i, m in enumerate(matrices):
        np.testing.assert_array_equal(counts.tp[i], np.diagonal(m[:, :k]))
        np.testing.assert_array_equal(counts.gt[i], m.sum(axis=1))
        np.testing.assert_array_equal(counts.pred[i], m[:, :k].sum(axis=0))
        np.testing.assert_array_equal(counts.miss[i], m[:, k])
    both = counts.merge(Counts.from_cells(k, images[:1]))
    np.testing.assert_array_equal(both.matrix, counts.matrix + matrices[0])
    assert both.tp.shape == (4, k)


def test_find_predictions_exact_names_and_cityscapes_suffixes(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x_1_2.png").write_bytes(b"")
    (tmp_path / "a" / "b" / "y_3_4_leftImg8bit.png").write_bytes(b"")
    (tmp_path / "zz.png").write_bytes(b"")
    found, missing = find_predictions(tmp_path, ["x_1_2", "y_3_4", "w_5_6"])
    assert found == {"x_1_2": tmp_path / "a" / "x_1_2.png", "y_3_4": tmp_path / "a" / "b" / "y_3_4_leftImg8bit.png"}
    assert missing == ["w_5_6"]
    (tmp_path / "y_3_4_other.png").write_bytes(b"")
    with pytest.raises(InputError, match="a second prediction for image y_3_4"):
        find_predictions(tmp_path, ["y_3_4"])


def test_read_prediction_refuses_colour_files_and_other_sizes(tmp_path):
    from PIL import Image

    grey = tmp_path / "grey.png"
    grey.write_bytes(encode_png(np.arange(12, dtype=np.uint8).reshape(3, 4)))
    assert read_prediction(grey, (3, 4)).tolist() == np.arange(12).reshape(3, 4).tolist()
    with pytest.raises(InputError, match=r"prediction is 4x3, the image is 5x3"):
        read_prediction(grey, (3, 5))
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((3, 4, 3), dtype=np.uint8)).save(rgb)
    with pytest.raises(InputError, match="8-bit RGB PNG: a prediction must be a single-channel grey PNG"):
        read_prediction(rgb, (3, 4))
    pal = tmp_path / "pal.png"
    Image.fromarray(np.zeros((3, 4), dtype=np.uint8)).convert("P").save(pal)
    with pytest.raises(InputError, match="palette PNG"):
        read_prediction(pal, (3, 4))


def _rare_classes_with_scattered_false_positives(seed=0, n=200, k=300):
    """Per-image sums of a model on a long tail: class c's ground truth sits in 1-4 images, where
    it is mostly found; its false positives are scattered over 20 other images."""
    rng = np.random.default_rng(seed)
    tp = np.zeros((n, k))
    gt = np.zeros((n, k))
    pred = np.zeros((n, k))
    for c in range(k):
        holders = rng.choice(n, size=rng.integers(1, 5), replace=False)
        size = rng.integers(200, 2000, size=len(holders))
        found = (size * rng.uniform(0.6, 0.95, size=len(holders))).astype(int)
        gt[holders, c] += size
        tp[holders, c] += found
        pred[holders, c] += found
        elsewhere = rng.choice(n, size=20, replace=False)
        pred[elsewhere, c] += rng.integers(5, 40, size=20)
    return {"tp": tp, "gt": gt, "pred": pred}


def test_bootstrap_interval_of_a_long_tail_miou_holds_its_estimate():
    from segdata.bootstrap import bca_intervals
    from segdata.metrics import iou_of, mean_present

    sums = _rare_classes_with_scattered_false_positives()
    seen = sums["gt"].sum(axis=0) > 0

    def with_seen(s):
        return mean_present(iou_of(s["tp"], s["gt"], s["pred"], seen=seen))[:, None]

    def scored_zero(s):  # the rule without `seen`: a resample that lost a class's ground truth scores it 0
        return mean_present(iou_of(s["tp"], s["gt"], s["pred"]))[:, None]

    good = bca_intervals(sums, with_seen, n_resamples=400, seed=1)
    bad = bca_intervals(sums, scored_zero, n_resamples=400, seed=1)
    assert good.estimate[0] == bad.estimate[0]  # the same estimate: only resamples differ
    assert good.low[0] <= good.estimate[0] <= good.high[0]
    # without the rule, (nearly) every resample falls below the estimate: no interval holds it
    assert (bad.distribution[:, 0] < bad.estimate[0]).mean() > 0.975
    assert not (bad.low[0] <= bad.estimate[0] <= bad.high[0])

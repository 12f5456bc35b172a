"""``segdata eval --convention X``: the figures each tool would print for the same files, against
oracles written from each tool's own rules (read in their sources, named per oracle), on one
hand-made case whose counts are written out below and checked by hand.

The case: five evaluated classes a, b, c, d, e and a class ``void`` flagged ignore.

- ``d`` is in neither the ground truth nor the prediction (absent);
- ``e`` is predicted (twice) but absent from the ground truth (predicted only);
- ``void`` and unlabeled (class id 0) pixels carry predictions of a and e, which count nowhere;
- three pixels are misses: predicted 0 (no prediction) twice, and once the void class.

Hand count over both images (TP, ground truth, prediction on counted pixels):
a 6 / 8 / 7, b 9 / 12 / 9, c 4 / 6 / 5, d 0 / 0 / 0, e 0 / 0 / 2; 26 counted pixels, 19 correct.
IoU a 6/9, b 9/12, c 4/7, e 0/2; accuracy a 6/8, b 9/12, c 4/6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.eval.helpers import class_rows, eval_json, per_class, pixel_counts, write_grey, write_unified

NAMES = ["a", "b", "c", "d", "e", "void"]
EVALUATED = NAMES[:5]
VOID = 6  # class id of "void" (flagged ignore)
EPS = np.spacing(1)  # MATLAB's eps, the ADE20K devkit's

# ground truth in class ids (0 = unlabeled, 6 = void) and predictions in class ids (0 = no prediction)
GT1 = np.array(
    [
        [1, 1, 1, 2, 2, 2],
        [1, 1, 1, 2, 2, 2],
        [3, 3, 6, 6, 2, 2],
        [3, 3, 6, 6, 0, 0],
    ]
)
PRED1 = np.array(
    [
        [1, 1, 5, 2, 2, 1],
        [1, 1, 1, 3, 2, 2],
        [3, 0, 1, 5, 2, 2],
        [3, 3, 5, 1, 5, 1],
    ]
)
GT2 = np.array([[2, 2, 3, 3], [2, 2, 1, 1]])
PRED2 = np.array([[2, 0, 3, 5], [2, 2, 1, 6]])

HAND = {  # the counts of the module docstring, by hand
    "tp": [6, 9, 4, 0, 0],
    "gt": [8, 12, 6, 0, 0],
    "pred": [7, 9, 5, 0, 2],
}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    base = tmp_path_factory.mktemp("conventions")
    train = np.array([[1, 2, 3, 4], [5, 6, 0, 1]])  # every class seen once in training
    ds = write_unified(
        base / "ds",
        class_rows(NAMES, ignore={VOID}),
        [("t1", "train", train), ("v1", "val", GT1), ("v2", "val", GT2)],
    )
    pred = base / "pred"
    write_grey(pred / "v1.png", PRED1.astype(np.uint8))
    write_grey(pred / "v2.png", PRED2.astype(np.uint8))
    return ds, pred


def eval_index(classes: np.ndarray) -> np.ndarray:
    """Class ids -> eval index 0..4 (a..e); unlabeled and void -> -1 (ground truth: ignored;
    prediction: a miss)."""
    lut = np.full(256, -1)
    lut[1:6] = np.arange(5)
    return lut[classes]


def counts():
    pairs = [(eval_index(GT1), eval_index(PRED1)), (eval_index(GT2), eval_index(PRED2))]
    tp, gt, pred = pixel_counts(pairs, 5)
    return tp.astype(float), gt.astype(float), pred.astype(float)


def test_hand_count():
    tp, gt, pred = counts()
    assert tp.tolist() == HAND["tp"] and gt.tolist() == HAND["gt"] and pred.tolist() == HAND["pred"]


# --------------------------------------------------------------------------- oracles


def nan_div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def oracle_segdata():
    """segdata (issue 12): IoU = TP / (TP + FP + FN); absent from both sides = null, left out of
    every mean; predicted only = 0 and counts. Accuracy = TP / GT, null without ground truth;
    mean accuracy over classes with ground truth; pixel accuracy = correct / counted pixels;
    fwIoU = sum of IoU weighted by ground-truth share."""
    tp, gt, pred = counts()
    iou = nan_div(tp, gt + pred - tp)
    acc = nan_div(tp, gt)
    return {
        "iou": iou,
        "accuracy": acc,
        "miou": np.nanmean(iou),
        "mean_accuracy": np.nanmean(acc),
        "pixel_accuracy": tp.sum() / gt.sum(),
        "fw_iou": np.nansum(np.where(gt > 0, iou, 0) * gt / gt.sum()),
    }


def oracle_mmseg():
    """mmsegmentation ``IoUMetric`` (mmseg/evaluation/metrics/iou_metric.py): per image, pixels
    with label == ignore_index dropped (predictions there too); ``histc`` of intersect, pred and
    label over 0..C-1 (a prediction outside the classes is in no bin); summed over the data set;
    IoU = I / U, Acc = I / label (0/0 = NaN); summary = ``nanmean``; aAcc = sum I / sum label."""
    tp, gt, pred = counts()
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (gt + pred - tp)
        acc = tp / gt
    return {
        "iou": iou,
        "accuracy": acc,
        "miou": np.nanmean(iou),
        "mean_accuracy": np.nanmean(acc),
        "pixel_accuracy": tp.sum() / gt.sum(),
    }


def detectron2_matrix() -> np.ndarray:
    """detectron2's ``SemSegEvaluator.process`` on the case: ground truth's ignore set to C, then
    one ``bincount((C + 1) * pred + gt)`` into a (C+1) x (C+1) matrix, rows = prediction. Its
    predictions are an argmax and never "no prediction"; a miss is fed as its extra bin C (the
    documented choice of docs/conventions.md: "pixels predicted as no class are not counted")."""
    c = 5
    conf = np.zeros((c + 1, c + 1), dtype=np.int64)
    for gt, pred in ((GT1, PRED1), (GT2, PRED2)):
        g, p = eval_index(gt), eval_index(pred)
        g = np.where(g < 0, c, g)
        p = np.where(p < 0, c, p)
        conf += np.bincount(((c + 1) * p + g).ravel(), minlength=conf.size).reshape(conf.shape)
    return conf


def oracle_detectron2():
    """detectron2 ``SemSegEvaluator.evaluate`` as on its main branch since commit f3c1bc19
    (2022-07-06, "Fix semantic errors in code for calculating IoU metrics"): tp = diagonal,
    pos_gt / pos_pred = column / row sums of the matrix without its extra row and column;
    acc_valid = pos_gt > 0; iou_valid = acc_valid and union > 0, so a class predicted but absent
    from the ground truth is left out; mIoU = sum(iou[iou_valid]) / sum(iou_valid); fwIoU = sum of
    iou x pos_gt / sum(pos_gt) over iou_valid; mACC over acc_valid; pACC = sum tp / sum pos_gt."""
    conf = detectron2_matrix()
    tp = conf.diagonal()[:-1].astype(float)
    pos_gt = conf[:-1, :-1].sum(axis=0).astype(float)
    pos_pred = conf[:-1, :-1].sum(axis=1).astype(float)
    class_weights = pos_gt / pos_gt.sum()
    acc = np.full(5, np.nan)
    iou = np.full(5, np.nan)
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = np.logical_and(acc_valid, union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    return {
        "iou": iou,
        "accuracy": acc,
        "miou": np.sum(iou[iou_valid]) / np.sum(iou_valid),
        "mean_accuracy": np.sum(acc[acc_valid]) / np.sum(acc_valid),
        "pixel_accuracy": np.sum(tp) / np.sum(pos_gt),
        "fw_iou": np.sum(iou[iou_valid] * class_weights[iou_valid]),
    }


def oracle_detectron2_v06():
    """detectron2 v0.6 (2021-10-25, the last release) and before: iou_valid = (pos_gt + pos_pred) >
    0 and mIoU = sum(iou[acc_valid]) / sum(iou_valid): a class predicted but absent from the
    ground truth adds 0 to the numerator and 1 to the denominator (counted as 0); fwIoU over
    acc_valid. Not the rule of detectron2 today (see :func:`oracle_detectron2`)."""
    conf = detectron2_matrix()
    tp = conf.diagonal()[:-1].astype(float)
    pos_gt = conf[:-1, :-1].sum(axis=0).astype(float)
    pos_pred = conf[:-1, :-1].sum(axis=1).astype(float)
    acc_valid = pos_gt > 0
    iou_valid = (pos_gt + pos_pred) > 0
    iou = np.full(5, np.nan)
    iou[acc_valid] = tp[acc_valid] / (pos_gt + pos_pred - tp)[acc_valid]
    return {"iou": iou, "miou": np.sum(iou[acc_valid]) / np.sum(iou_valid)}


def oracle_cityscapes():
    """cityscapesScripts ``evalPixelLevelSemanticLabeling``: TP = diagonal; FN = row sum - TP
    (predicting a void id is a miss); FP = column sum over non-ignored ground-truth rows; IoU =
    TP / (TP + FP + FN), NaN when that is 0; the average skips NaN."""
    tp, gt, pred = counts()
    fn = gt - tp
    fp = pred - tp
    denom = tp + fp + fn
    iou = nan_div(tp, denom)
    valid = [v for v in iou if not math.isnan(v)]
    return {"iou": iou, "miou": sum(valid) / len(valid)}


def oracle_ade_devkit():
    """ADE20K SceneParsing devkit (CSAILVision/sceneparsing, evaluationCode/intersectionAndUnion.m
    and utils_eval.py, demoEvaluation.m): prediction zeroed where the label is 0; per image
    histograms of intersection, prediction and label over classes 1..K (0 not counted: a
    prediction 0 is a miss); IoU = sum I / sum (eps + U) over images, so a class absent from both
    sides scores 0; mean over all K classes; accuracy = correct / labelled pixels."""
    n_images = 2
    pairs = [(eval_index(GT1), eval_index(PRED1)), (eval_index(GT2), eval_index(PRED2))]
    inter = np.zeros(5)
    union = np.zeros(5)
    correct = labelled = 0
    for gt, pred in pairs:
        # the devkit's ids: label 1..K, 0 = not labelled; prediction 0 = nothing
        lab = gt + 1
        prd = (pred + 1) * (lab > 0)
        for k in range(1, 6):
            i = ((prd == k) & (lab == k)).sum()
            inter[k - 1] += i
            union[k - 1] += (prd == k).sum() + (lab == k).sum() - i
        correct += ((prd == lab) & (lab > 0)).sum()
        labelled += (lab > 0).sum()
    iou = inter / (union + n_images * EPS)  # sum over images of (eps + U)
    return {"iou": iou, "miou": iou.mean(), "pixel_accuracy": correct / labelled}


ORACLES = {
    "segdata": oracle_segdata,
    "mmseg": oracle_mmseg,
    "detectron2": oracle_detectron2,
    "cityscapes": oracle_cityscapes,
    "ade-devkit": oracle_ade_devkit,
}


def test_oracles_agree_with_the_hand_count():
    """The oracles on the hand case, against figures computed by hand (fractions)."""
    a, b, c = 6 / 9, 9 / 12, 4 / 7
    s = oracle_segdata()
    assert s["miou"] == pytest.approx((a + b + c + 0) / 4, abs=1e-12)
    assert s["mean_accuracy"] == pytest.approx((6 / 8 + 9 / 12 + 4 / 6) / 3, abs=1e-12)
    assert s["pixel_accuracy"] == pytest.approx(19 / 26, abs=1e-12)
    assert s["fw_iou"] == pytest.approx((8 * a + 12 * b + 6 * c) / 26, abs=1e-12)
    assert math.isnan(s["iou"][3]) and s["iou"][4] == 0
    assert oracle_mmseg()["miou"] == pytest.approx((a + b + c) / 4 + 0, abs=1e-12)
    # detectron2: the 3 misses are in no count: a 6 / 7 / 7, b 9 / 11 / 9, c 4 / 5 / 5
    a2, b2, c2 = 6 / 8, 9 / 11, 4 / 6
    d2 = oracle_detectron2()
    assert d2["miou"] == pytest.approx((a2 + b2 + c2) / 3, abs=1e-12)
    assert math.isnan(d2["iou"][4])  # predicted only: left out
    assert d2["pixel_accuracy"] == pytest.approx(19 / 23, abs=1e-12)
    assert d2["fw_iou"] == pytest.approx((7 * a2 + 11 * b2 + 5 * c2) / 23, abs=1e-12)
    assert oracle_detectron2_v06()["miou"] == pytest.approx((a2 + b2 + c2) / 4, abs=1e-12)
    assert oracle_cityscapes()["miou"] == pytest.approx((a + b + c) / 4, abs=1e-12)
    ade = oracle_ade_devkit()
    assert ade["miou"] == pytest.approx((a + b + c) / 5, abs=1e-12)
    assert ade["iou"][3] == 0 and ade["iou"][4] == 0
    assert ade["pixel_accuracy"] == pytest.approx(19 / 26, abs=1e-12)


# --------------------------------------------------------------------------- segdata eval


def convention_figures(report: dict) -> dict:
    """The figures the report gives for its convention: the ``convention`` object where it holds
    them, else the top level."""
    conv = report.get("convention") or {}
    return conv if "miou" in conv else report


def class_values(report: dict, key: str) -> list:
    """Per-class ``key`` (a..e) from the convention's figures, else from ``per_class``."""
    figures = convention_figures(report)
    if isinstance(figures.get("per_class"), list):
        entries = {e["name"]: e for e in figures["per_class"]}
    else:
        entries = per_class(report)
    return [entries[name].get(key) for name in EVALUATED]


def close(ours, want) -> bool:
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return ours is None or (isinstance(ours, float) and math.isnan(ours))
    return ours is not None and abs(ours - want) <= 1e-9


@pytest.mark.parametrize("convention", list(ORACLES))
def test_convention_equals_oracle(case, convention):
    ds, pred = case
    args = [ds, "--pred", pred, "--pred-ids", "unified", "--bootstrap", "0"]
    if convention != "segdata":
        args += ["--convention", convention]
    report = eval_json(*args)
    want = ORACLES[convention]()
    got = convention_figures(report)
    assert report["settings"]["convention"] == convention
    for key in ("miou", "mean_accuracy", "pixel_accuracy", "fw_iou"):
        if key in want:
            assert close(got.get(key), float(want[key])), (convention, key, got.get(key), want[key])
    for key in ("iou", "accuracy"):
        if key in want:
            values = class_values(report, key)
            for name, ours, theirs in zip(EVALUATED, values, want[key].tolist()):
                assert close(ours, theirs), (convention, key, name, ours, theirs)


def test_default_rule_absent_and_predicted_only(case):
    """segdata's own rule, read off per_class: d absent (iou null, present false, out of the
    mean), e predicted only (iou 0, in the mean), void not a class of the report."""
    ds, pred = case
    report = eval_json(ds, "--pred", pred, "--pred-ids", "unified", "--bootstrap", "0")
    entries = per_class(report)
    assert sorted(entries) == EVALUATED
    assert entries["d"]["iou"] is None and entries["d"]["present"] is False
    assert entries["e"]["iou"] == 0
    assert entries["a"]["iou"] == pytest.approx(6 / 9, abs=1e-12)
    assert entries["c"]["accuracy"] == pytest.approx(4 / 6, abs=1e-12)
    assert entries["e"]["accuracy"] is None
    assert report["miou"] == pytest.approx((6 / 9 + 9 / 12 + 4 / 7 + 0) / 4, abs=1e-12)
    assert report["pixel_accuracy"] == pytest.approx(19 / 26, abs=1e-12)


def test_conventions_differ_where_the_tools_differ(case):
    """The same files, five mIoUs: the three distinct values the rules give."""
    ds, pred = case
    got = {}
    for convention in ORACLES:
        report = eval_json(ds, "--pred", pred, "--pred-ids", "unified", "--bootstrap", "0", "--convention", convention)
        got[convention] = convention_figures(report)["miou"]
    a, b, c = 6 / 9, 9 / 12, 4 / 7
    assert got["segdata"] == pytest.approx((a + b + c) / 4, abs=1e-9)
    assert got["mmseg"] == pytest.approx((a + b + c) / 4, abs=1e-9)
    assert got["cityscapes"] == pytest.approx((a + b + c) / 4, abs=1e-9)
    assert got["detectron2"] == pytest.approx((6 / 8 + 9 / 11 + 4 / 6) / 3, abs=1e-9)  # misses dropped
    assert got["ade-devkit"] == pytest.approx((a + b + c) / 5, abs=1e-9)


def test_mmseg_printed_as_mmseg_prints(case):
    """mmsegmentation's summary: ``np.round(np.nanmean(values) * 100, 2)`` for IoU and Acc (keys
    mIoU, mAcc) and aAcc, in percent with 2 decimals (IoUMetric.compute_metrics)."""
    ds, pred = case
    report = eval_json(ds, "--pred", pred, "--pred-ids", "unified", "--bootstrap", "0", "--convention", "mmseg")
    want = oracle_mmseg()
    printed = report["convention"]["printed"]
    assert printed["mIoU"] == float(np.round(np.nanmean(want["iou"]) * 100, 2))
    assert printed["mAcc"] == float(np.round(np.nanmean(want["accuracy"]) * 100, 2))
    assert printed["aAcc"] == float(np.round(want["pixel_accuracy"] * 100, 2))

"""``segdata eval`` on Cityscapes against the official evaluation, cityscapesScripts'
``evalPixelLevelSemanticLabeling`` (2.3.0), run in-process on the same files.

The official tool is the reference: its per-class IoU, the mean IoU, the per-class instance-level
IoU (iIoU, printed "nIoU") and their mean must equal segdata's figures to 1e-9, with predictions
in labelIds (``--pred-ids source``) and in trainIds (``--pred-ids train``, 255 = no prediction).
Predictions are the ground truth with deterministic damage: blocks of another class, salt noise,
pixels set to ignored labelIds, instance interiors replaced, a class predicted where the ground
truth has none. Two data sets: the real samples (SEGDATA_SAMPLES; skipped without it, failing if
it is set but incomplete) and a generated Cityscapes (:mod:`segdata.synthetic.cityscapes`), which
runs everywhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import segdata
from segdata.convert import convert
from segdata.converters import cityscapes
from segdata.synthetic.cityscapes import generate_cityscapes
from tests.conftest import require
from tests.eval.helpers import eval_json, read_grey, write_grey

cspix = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling", reason="cityscapesScripts")
cslabels = pytest.importorskip("cityscapesscripts.helpers.labels")

REAL_VAL = ["frankfurt_000000_000294", "frankfurt_000000_000576", "frankfurt_000000_001016", "frankfurt_000000_001236"]
LABELS = [label for label in cslabels.labels if label.id >= 0]
EVALUATED = [label for label in LABELS if not label.ignoreInEval]
IGNORED_IDS = [label.id for label in LABELS if label.ignoreInEval]
INSTANCE_CLASSES = [label.name for label in EVALUATED if label.hasInstances]
# labelId -> trainId (255 for every ignored labelId) and trainId -> labelId (255 -> 0, "unlabeled")
TO_TRAIN = np.full(256, 255, dtype=np.int64)
for _label in EVALUATED:
    TO_TRAIN[_label.id] = _label.trainId
TO_LABEL = np.zeros(256, dtype=np.int64)
for _label in EVALUATED:
    TO_LABEL[_label.trainId] = _label.id


@pytest.fixture(autouse=True)
def numpy_in1d(monkeypatch):
    # cityscapesScripts 2.3.0 calls np.in1d (the instance-level part of this evaluation), which
    # NumPy 2.4 removed; np.isin is its replacement. In the test only, never in segdata.
    if not hasattr(np, "in1d"):
        monkeypatch.setattr(np, "in1d", np.isin, raising=False)


# --------------------------------------------------------------------------- the official tool


def official(gt_label_files: list[Path], pred_files: list[Path], out: Path, monkeypatch) -> dict:
    """evalPixelLevelSemanticLabeling.evaluateImgLists on the given files, in-process: instance
    scores on, quiet, its JSON written under ``out`` (read back and returned)."""
    args = cspix.args
    monkeypatch.setattr(args, "evalInstLevelScore", True)
    monkeypatch.setattr(args, "evalPixelAccuracy", False)
    monkeypatch.setattr(args, "quiet", True)
    monkeypatch.setattr(args, "colorized", False)
    monkeypatch.setattr(args, "JSONOutput", True)
    monkeypatch.setattr(args, "exportFile", str(out / "resultPixelLevelSemanticLabeling.json"))
    with contextlib.redirect_stdout(io.StringIO()):
        result = cspix.evaluateImgLists([str(p) for p in pred_files], [str(p) for p in gt_label_files], args)
    written = json.loads((out / "resultPixelLevelSemanticLabeling.json").read_text())
    assert written["averageScoreClasses"] == pytest.approx(result["averageScoreClasses"], nan_ok=True)
    return result


# --------------------------------------------------------------------------- predictions


def damaged(label_ids: np.ndarray, instance_ids: np.ndarray, seed: int) -> np.ndarray:
    """A labelId prediction: the ground truth with deterministic damage (values 0..33)."""
    rng = np.random.default_rng(seed)
    pred = label_ids.astype(np.int64).copy()
    h, w = pred.shape
    evaluated = [label.id for label in EVALUATED]
    # instance interiors replaced (their border kept), for about half of the instances
    for value in np.unique(instance_ids[instance_ids >= 1000]).tolist():
        if rng.random() < 0.5:
            rows, cols = np.nonzero(instance_ids == value)
            box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
            inner = ndimage.binary_erosion(instance_ids[box] == value, iterations=int(rng.integers(1, 4)))
            pred[box][inner] = rng.choice([7, 11, 21, 26, 24, 0])
    # blocks of another class (evaluated or ignored)
    for _ in range(5):
        bh, bw = int(rng.integers(h // 20, h // 6)), int(rng.integers(w // 20, w // 6))
        y, x = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        pred[y : y + bh, x : x + bw] = rng.choice(evaluated + IGNORED_IDS)
    # salt: 3% of pixels any labelId, 2% an ignored labelId
    salt = rng.random((h, w))
    pred[salt < 0.03] = rng.integers(0, 34, size=int((salt < 0.03).sum()))
    ign = (salt >= 0.03) & (salt < 0.05)
    pred[ign] = rng.choice(IGNORED_IDS, size=int(ign.sum()))
    # a class the ground truth of this image may not hold: a train (31) and a wall (12) strip
    pred[h // 2 : h // 2 + h // 16, : w // 8] = 31
    pred[: h // 32, w // 2 :] = 12
    return pred


def write_predictions(pairs: dict[str, tuple[Path, Path]], folder: Path, seed: int) -> dict[str, dict[str, Path]]:
    """For each image (labelIds file, instanceIds file): a labelId prediction under
    ``folder/source``, its trainId version under ``folder/train`` (255 = no prediction) and that
    one mapped back to labelIds (255 -> 0) under ``folder/train_as_label`` for the official tool.
    Names: ``<image_id>.png`` in nested city folders, as found recursively."""
    out: dict[str, dict[str, Path]] = {}
    for k, (image_id, (labels_png, instances_png)) in enumerate(sorted(pairs.items())):
        city = image_id.split("_")[0]
        pred = damaged(read_grey(labels_png), read_grey(instances_png), seed + k)
        train = TO_TRAIN[pred]
        assert (train == 255).any() and (train < 19).any()
        files = {
            "source": write_grey(folder / "source" / city / f"{image_id}.png", pred.astype(np.uint8)),
            "train": write_grey(folder / "train" / city / f"{image_id}.png", train.astype(np.uint8)),
            "train_as_label": write_grey(
                folder / "train_as_label" / city / f"{image_id}.png", TO_LABEL[train].astype(np.uint8)
            ),
        }
        out[image_id] = files
    return out


# --------------------------------------------------------------------------- comparison


def same(ours, theirs) -> bool:
    if theirs is None or (isinstance(theirs, float) and math.isnan(theirs)):
        return ours is None or (isinstance(ours, float) and math.isnan(ours))
    return ours is not None and abs(ours - theirs) <= 1e-9


def assert_equals_official(report: dict, ref: dict) -> None:
    by_train = {entry["train_id"]: entry for entry in report["per_class"]}
    assert sorted(by_train) == list(range(19))
    checked_iiou = 0
    for label in EVALUATED:
        entry = by_train[label.trainId]
        assert same(entry["iou"], ref["classScores"][label.name]), (label.name, entry["iou"], ref["classScores"])
        if label.hasInstances:
            assert "iiou" in entry, label.name
            assert same(entry["iiou"], ref["classInstScores"][label.name]), (label.name, entry["iiou"])
            checked_iiou += 1
        else:
            assert entry.get("iiou") is None, label.name
    assert checked_iiou == 8
    assert same(report["miou"], ref["averageScoreClasses"])
    assert same(report["mean_iiou"], ref["averageScoreInstClasses"])
    convention = report.get("convention") or {}
    if "miou" in convention:
        assert same(convention["miou"], ref["averageScoreClasses"])


def check(unified: Path, gt_files: dict[str, tuple[Path, Path]], tmp: Path, monkeypatch, seed: int) -> dict:
    """Predictions for every image of ``gt_files``; segdata eval in both id spaces against the
    official tool; returns the official result (for the caller's sanity checks)."""
    preds = write_predictions(gt_files, tmp / "pred", seed)
    ids = sorted(gt_files)
    gt_labels = [gt_files[i][0] for i in ids]
    ref_source = official(gt_labels, [preds[i]["source"] for i in ids], tmp / "official_source", monkeypatch)
    ref_train = official(gt_labels, [preds[i]["train_as_label"] for i in ids], tmp / "official_train", monkeypatch)

    source = eval_json(unified, "--pred", tmp / "pred" / "source", "--pred-ids", "source", "--convention", "cityscapes")
    assert source["settings"]["images"] == len(ids)
    assert_equals_official(source, ref_source)
    train = eval_json(unified, "--pred", tmp / "pred" / "train", "--pred-ids", "train", "--convention", "cityscapes")
    assert_equals_official(train, ref_train)
    # the default convention gives Cityscapes' own per-class figures too (same rules)
    default = eval_json(unified, "--pred", tmp / "pred" / "source", "--pred-ids", "source")
    assert_equals_official(default, ref_source)
    return ref_source


def assert_meaningful(ref: dict) -> None:
    """The damage makes a case worth testing: neither mean is 0 or 1, some class is imperfect,
    and a class absent from the ground truth but predicted (train) scores 0."""
    scores = [v for v in ref["classScores"].values() if not math.isnan(v)]
    assert 0.0 < ref["averageScoreClasses"] < 1.0
    assert 0.0 < ref["averageScoreInstClasses"] < 1.0
    assert any(v < 0.999 for v in scores)
    assert ref["classScores"]["train"] == 0.0


# --------------------------------------------------------------------------- tests


def test_real_samples_equal_official(samples, tmp_path, monkeypatch):
    root = require(samples / "cityscapes")
    gt_files = {}
    for image_id in REAL_VAL:
        folder = root / "gtFine" / "val" / "frankfurt"
        gt_files[image_id] = (
            require(folder / f"{image_id}_gtFine_labelIds.png"),
            require(folder / f"{image_id}_gtFine_instanceIds.png"),
        )
    unified = tmp_path / "cs"
    convert(cityscapes, root, unified, workers=2)
    ref = check(unified, gt_files, tmp_path, monkeypatch, seed=12)
    assert_meaningful(ref)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    base = tmp_path_factory.mktemp("cs-gen")
    src = generate_cityscapes(base / "src", 24, image_size=(512, 1024), seed=5, workers=2, polygons=False)
    convert(cityscapes, src, base / "unified", workers=2)
    ds = segdata.open(base / "unified")
    val = sorted(ds.images.image_id[ds.images.split == "val"])
    files = {}
    for image_id in val:
        city = image_id.split("_")[0]
        folder = src / "gtFine" / "val" / city
        files[image_id] = (folder / f"{image_id}_gtFine_labelIds.png", folder / f"{image_id}_gtFine_instanceIds.png")
    return base / "unified", files


def test_generated_cityscapes_equal_official(generated, tmp_path, monkeypatch):
    unified, gt_files = generated
    assert len(gt_files) == 4
    ref = check(unified, gt_files, tmp_path, monkeypatch, seed=3)
    assert_meaningful(ref)


def test_generated_cityscapes_submission_names(generated, tmp_path, monkeypatch):
    """Predictions named as the Cityscapes benchmark submits them (``<image_id>_leftImg8bit.png``,
    all in one folder) are found and give the same figures as the official tool."""
    unified, gt_files = generated
    ids = sorted(gt_files)
    preds = []
    for k, image_id in enumerate(ids):
        labels_png, instances_png = gt_files[image_id]
        pred = damaged(read_grey(labels_png), read_grey(instances_png), 40 + k)
        preds.append(write_grey(tmp_path / "sub" / f"{image_id}_leftImg8bit.png", pred.astype(np.uint8)))
    ref = official([gt_files[i][0] for i in ids], preds, tmp_path, monkeypatch)
    report = eval_json(unified, "--pred", tmp_path / "sub", "--pred-ids", "source", "--convention", "cityscapes")
    assert_equals_official(report, ref)

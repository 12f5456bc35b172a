"""``segdata eval --by-frequency --buckets pixel-terciles`` and ``--freq-split`` on a data set whose
buckets and bucket means are counted by hand.

The rule (segdata/eval/buckets.py, analyses/longtail.py ``BucketRule`` and ``assign_buckets``):
terciles of the training pixel share among the classes *seen* in the frequency split (linear
interpolation between order statistics, numpy's default: edge ``q`` sits at position
``q * (n - 1)`` of the sorted shares); a class goes to ``low`` when its share is ``<=`` the first
edge, ``mid`` when ``<=`` the second, ``high`` above; a class with no pixel in the frequency split
goes to ``unseen`` and takes no part in the edges. Shares are fractions of the split's *evaluated*
pixels: pixels of ``void`` (an ignore class) and unlabeled pixels count nowhere.

Nine evaluated classes and ``void``:

=====  ============  =====================  ==========  ====================  ==================
class  train pixels  bucket (train)         val pixels  bucket (--freq-split  val: TP / GT / pred
                     edges 4/32 and 6/32                val) edges 3.33/38     IoU
                                                        and 5.67/38
=====  ============  =====================  ==========  ====================  ==================
a      1             low                    9           high                  6 / 9 / 6    2/3
b      2             low                    8           high                  8 / 8 / 10   4/5
c      4             low (tie on the edge)  1           low                   0 / 1 / 0    0
d      4             low (tie on the edge)  2           low                   2 / 2 / 3    2/3
e      6             mid (tie on the edge)  3           low                   3 / 3 / 3    1
f      6             mid (tie on the edge)  4           mid                   4 / 4 / 4    1
g      0             unseen                 6           high                  3 / 6 / 3    1/2
u      0             unseen                 5           mid                   5 / 5 / 8    5/8
z      9             high                   0           unseen                0 / 0 / 1    0 (predicted only)
void   5 (ignored)   -                      2           -                     predicted as e: counts nowhere
=====  ============  =====================  ==========  ====================  ==================

Train: the seven seen classes sorted are 1 2 4 4 6 6 9 pixels (of 32), so the edges sit exactly on
positions 2 and 4: 4/32 and 6/32, and the classes tied with an edge go below it. Counting the two
unseen classes (0 pixels) in the terciles would move the edges to 1.67/32 and 4.67/32 (b, c, d in
``mid``, e, f in ``high``): the tests tell the two apart.

Val: the eight seen classes sorted are 1 2 3 4 5 6 8 9 pixels (of 38); the edges are at positions
7/3 and 14/3: 3 + 1/3 and 5 + 2/3 pixels.
"""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest

from segdata.errors import SelectionError
from segdata.eval import evaluate
from tests.eval.helpers import (
    class_rows,
    error_line,
    eval_json,
    per_class,
    pixel_counts,
    run_cli,
    write_grey,
    write_unified,
    write_vocab,
)

NAMES = ["a", "b", "c", "d", "e", "f", "g", "u", "z", "void"]
A, B, C, D, E, FF, G, U, Z, VOID = range(1, 11)
EVALUATED = NAMES[:-1]

TRAIN_PIXELS = {"a": 1, "b": 2, "c": 4, "d": 4, "e": 6, "f": 6, "g": 0, "u": 0, "z": 9}
VAL_PIXELS = {"a": 9, "b": 8, "c": 1, "d": 2, "e": 3, "f": 4, "g": 6, "u": 5, "z": 0}

BUCKET_TRAIN = {"a": "low", "b": "low", "c": "low", "d": "low", "e": "mid", "f": "mid", "z": "high"}
BUCKET_TRAIN |= {"g": "unseen", "u": "unseen"}
BUCKET_VAL = {"c": "low", "d": "low", "e": "low", "f": "mid", "u": "mid", "a": "high", "b": "high", "g": "high"}
BUCKET_VAL |= {"z": "unseen"}

IOU = {
    "a": F(6, 9),
    "b": F(8, 10),
    "c": F(0),
    "d": F(2, 3),
    "e": F(1),
    "f": F(1),
    "g": F(3, 6),
    "u": F(5, 8),
    "z": F(0),
}

# train image t1: a 1, b 2, c 4, d 4, void 5 pixels (16); t2: e 6, f 6, z 9 and 3 unlabeled (24)
TRAIN1 = np.repeat([A, B, C, D, VOID], [1, 2, 4, 4, 5]).reshape(4, 4)
TRAIN2 = np.repeat([E, FF, Z, 0], [6, 6, 9, 3]).reshape(4, 6)
# val image v1: a 9, b 8, c 1, d 2, e 3, f 4, g 6, u 5, void 2 pixels (40)
VAL_FLAT = np.repeat([A, B, C, D, E, FF, G, U, VOID], [9, 8, 1, 2, 3, 4, 6, 5, 2])
PRED_FLAT = VAL_FLAT.copy()
PRED_FLAT[6:8] = B  # two of a's nine pixels predicted b
PRED_FLAT[8] = Z  # one of a's pixels predicted z (z: predicted only)
PRED_FLAT[17] = D  # c's only pixel predicted d
PRED_FLAT[30:33] = U  # the last three of g's six pixels (27..32) predicted u
PRED_FLAT[38:40] = E  # the void pixels predicted e: counted nowhere
VAL1 = VAL_FLAT.reshape(5, 8)
PRED1 = PRED_FLAT.reshape(5, 8)


def mean(names) -> float:
    return float(sum(IOU[n] for n in names) / len(names))


@pytest.fixture(scope="module")
def terciles(tmp_path_factory):
    base = tmp_path_factory.mktemp("terciles")
    images = [("t1", "train", TRAIN1), ("t2", "train", TRAIN2), ("v1", "val", VAL1)]
    ds = write_unified(base / "ds", class_rows(NAMES, ignore={VOID}), images)
    pred = base / "pred"
    write_grey(pred / "v1.png", PRED1.astype(np.uint8))
    return ds, pred


def test_hand_counts_of_the_table():
    """The table of the module docstring, recounted pixel by pixel, and the tercile edges it
    states checked against numpy's linear quantile of the shares."""
    for image_pixels, split in ((TRAIN_PIXELS, [TRAIN1, TRAIN2]), (VAL_PIXELS, [VAL1])):
        for k, name in enumerate(EVALUATED):
            assert sum(int((img == k + 1).sum()) for img in split) == image_pixels[name], name
    lut = np.full(16, -1)
    lut[1:10] = np.arange(9)  # void (10) and unlabeled (0) are not evaluated
    tp, gt, pred = pixel_counts([(lut[VAL1], lut[PRED1])], 9)
    for k, name in enumerate(EVALUATED):
        assert F(int(tp[k]), int(gt[k] + pred[k] - tp[k])) == IOU[name], name
    train = np.array([v for v in TRAIN_PIXELS.values() if v], dtype=np.float64) / 32
    assert np.quantile(train, [1 / 3, 2 / 3]).tolist() == [4 / 32, 6 / 32]
    val = np.array([v for v in VAL_PIXELS.values() if v], dtype=np.float64) / 38
    assert np.quantile(val, [1 / 3, 2 / 3]) == pytest.approx([(3 + 1 / 3) / 38, (5 + 2 / 3) / 38], abs=1e-15)


def _check(report: dict, bucket_of: dict, pixels: dict, total: int, means: list[tuple]) -> None:
    entries = per_class(report)
    assert sorted(entries) == sorted(EVALUATED)
    for name in EVALUATED:
        e = entries[name]
        assert e["bucket"] == bucket_of[name], (name, e["bucket"])
        assert e["iou"] == pytest.approx(float(IOU[name]), abs=1e-12), name
        assert e["train_images"] == (1 if pixels[name] else 0), name
        assert e["train_pixel_share"] == pytest.approx(pixels[name] / total, abs=1e-15), name
    buckets = report["buckets"]
    assert [b["name"] for b in buckets] == [m[0] for m in means]
    for b, (name, classes, value) in zip(buckets, means):
        assert (b["classes"], b["classes_present"]) == (classes, classes), name
        assert b["miou"] == pytest.approx(value, abs=1e-12), name


TRAIN_MEANS = [
    ("low", 4, (2 / 3 + 4 / 5 + 0 + 2 / 3) / 4),  # 8/15
    ("mid", 2, 1.0),
    ("high", 1, 0.0),
    ("unseen", 2, (1 / 2 + 5 / 8) / 2),  # 9/16
]
VAL_MEANS = [
    ("low", 3, (0 + 2 / 3 + 1) / 3),  # 5/9
    ("mid", 2, (1 + 5 / 8) / 2),  # 13/16
    ("high", 3, (2 / 3 + 4 / 5 + 1 / 2) / 3),  # 59/90
    ("unseen", 1, 0.0),
]


def test_table_means_by_hand():
    """The bucket means above, from the table's fractions."""
    for bucket_of, means in ((BUCKET_TRAIN, TRAIN_MEANS), (BUCKET_VAL, VAL_MEANS)):
        for name, classes, value in means:
            members = [n for n in EVALUATED if bucket_of[n] == name]
            assert len(members) == classes
            assert mean(members) == pytest.approx(value, abs=1e-15)
    assert [m[2] for m in TRAIN_MEANS] == pytest.approx([8 / 15, 1, 0, 9 / 16], abs=1e-15)
    assert [m[2] for m in VAL_MEANS] == pytest.approx([5 / 9, 13 / 16, 59 / 90, 0], abs=1e-15)


def test_pixel_terciles_library(terciles):
    ds, pred = terciles
    result = evaluate(ds, pred, pred_ids="unified", by_frequency=True, buckets="pixel-terciles", bootstrap=0)
    _check(result.to_dict(), BUCKET_TRAIN, TRAIN_PIXELS, 32, TRAIN_MEANS)
    assert result.miou == pytest.approx(mean(EVALUATED), abs=1e-12)


def test_pixel_terciles_cli(terciles):
    ds, pred = terciles
    report = eval_json(ds, "--pred", pred, "--pred-ids", "unified", "--by-frequency", "--buckets", "pixel-terciles")
    _check(report, BUCKET_TRAIN, TRAIN_PIXELS, 32, TRAIN_MEANS)
    assert report["miou"] == pytest.approx(mean(EVALUATED), abs=1e-12)
    assert (report["settings"]["buckets"], report["settings"]["freq_split"]) == ("pixel-terciles", "train")


def test_freq_split_val_library(terciles):
    ds, pred = terciles
    result = evaluate(
        ds, pred, pred_ids="unified", by_frequency=True, buckets="pixel-terciles", freq_split="val", bootstrap=0
    )
    _check(result.to_dict(), BUCKET_VAL, VAL_PIXELS, 38, VAL_MEANS)
    assert result.settings["freq_split"] == "val"


def test_freq_split_val_cli(terciles):
    ds, pred = terciles
    args = [ds, "--pred", pred, "--pred-ids", "unified", "--by-frequency", "--buckets", "pixel-terciles"]
    report = eval_json(*args, "--freq-split", "val", "--bootstrap", "0")
    _check(report, BUCKET_VAL, VAL_PIXELS, 38, VAL_MEANS)
    assert (report["settings"]["buckets"], report["settings"]["freq_split"]) == ("pixel-terciles", "val")
    # the figures that do not depend on the buckets are the same as with the train split
    train = eval_json(*args, "--bootstrap", "0")
    assert report["miou"] == train["miou"]
    assert report["pixel_accuracy"] == train["pixel_accuracy"] == pytest.approx(31 / 38, abs=1e-12)


def test_freq_split_lvis(terciles):
    """LVIS counts images of the frequency split: every class seen on train is in 1 training image
    (rare), g and u in none; on val, every class but z is in the one val image."""
    ds, pred = terciles
    args = [ds, "--pred", pred, "--pred-ids", "unified", "--by-frequency", "--bootstrap", "0"]
    for split, unseen in (("train", {"g", "u"}), ("val", {"z"})):
        report = eval_json(*args, "--freq-split", split)
        entries = per_class(report)
        for name in EVALUATED:
            assert entries[name]["bucket"] == ("unseen" if name in unseen else "rare"), (split, name)
        rare = [n for n in EVALUATED if n not in unseen]
        want = [("rare", len(rare), mean(rare)), ("unseen", len(unseen), mean(unseen))]
        got = [(b["name"], b["classes"], b["miou"]) for b in report["buckets"]]
        assert [g[:2] for g in got] == [w[:2] for w in want], split
        assert [g[2] for g in got] == pytest.approx([w[2] for w in want], abs=1e-12), split


def test_unknown_freq_split(terciles):
    """A split the dataset does not have is a selection (usage) error: exit 2, one line naming the
    split asked for and listing the ones there are; the library raises SelectionError."""
    ds, pred = terciles
    args = ["--pred", pred, "--pred-ids", "unified", "--by-frequency", "--buckets", "pixel-terciles"]
    result = run_cli("eval", ds, *args, "--freq-split", "nosuch", "--bootstrap", "0")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "--freq-split" in line and "no split 'nosuch'" in line and "splits: train, val" in line, line
    # the same for --split, and both said before any prediction is read (an empty --pred folder)
    empty = ds.parent / "no-predictions"
    empty.mkdir()
    result = run_cli("eval", ds, "--pred", empty, "--split", "tset", "--bootstrap", "0")
    assert result.exit_code == 2 and "--split: " in error_line(result) and "'tset'" in error_line(result)
    # --freq-split and --buckets mean nothing without --by-frequency: a usage error, not ignored
    result = run_cli("eval", ds, "--pred", pred, "--pred-ids", "unified", "--freq-split", "val")
    assert result.exit_code == 2 and "--freq-split applies with --by-frequency only" in error_line(result)
    with pytest.raises(SelectionError, match="nosuch"):
        evaluate(ds, pred, pred_ids="unified", by_frequency=True, freq_split="nosuch", bootstrap=0)


def test_merged_vocabulary_class_terciles(terciles, tmp_path):
    """c and d merged into one evaluated class ``cd``: its training pixels are summed (8 of 32), so
    six classes are seen, 1 2 6 6 8 9 pixels, edges at positions 5/3 and 10/3: 2 + 2/3 * 4 = 4.67
    and 6 + 1/3 * 2 = 6.67 pixels. ``cd`` on val: ground truth 1 + 2, prediction 3 (c's pixel was
    predicted d), IoU 3/3."""
    ds, pred = terciles
    entries = [("a", [A]), ("b", [B]), ("cd", [C, D]), ("e", [E]), ("f", [FF]), ("g", [G]), ("u", [U]), ("z", [Z])]
    vocab = write_vocab(tmp_path / "v.json", entries)
    args = [ds, "--pred", pred, "--pred-ids", "unified", "--vocab", vocab, "--by-frequency", "--bootstrap", "0"]
    report = eval_json(*args, "--buckets", "pixel-terciles")
    got = per_class(report)
    assert got["cd"]["iou"] == pytest.approx(1.0, abs=1e-12)
    assert got["cd"]["train_pixel_share"] == pytest.approx(8 / 32, abs=1e-15)
    want = {"a": "low", "b": "low", "e": "mid", "f": "mid", "cd": "high", "z": "high", "g": "unseen", "u": "unseen"}
    assert {n: e["bucket"] for n, e in got.items()} == want
    means = {b["name"]: (b["classes"], b["miou"]) for b in report["buckets"]}
    assert list(means) == ["low", "mid", "high", "unseen"]
    assert means["low"] == (2, pytest.approx((2 / 3 + 4 / 5) / 2, abs=1e-12))
    assert means["mid"] == (2, pytest.approx(1.0, abs=1e-12))
    assert means["high"] == (2, pytest.approx((1 + 0) / 2, abs=1e-12))
    assert means["unseen"] == (2, pytest.approx((1 / 2 + 5 / 8) / 2, abs=1e-12))


def test_unknown_bucket_rule(terciles):
    """``terciles`` is `analyze longtail`'s name, not eval's (``pixel-terciles``): with no such
    file it is a usage error, exit 2, one line naming the rules."""
    ds, pred = terciles
    result = run_cli("eval", ds, "--pred", pred, "--pred-ids", "unified", "--by-frequency", "--buckets", "terciles")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "--buckets terciles" in line and "pixel-terciles" in line, line

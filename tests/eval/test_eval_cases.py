"""``segdata eval`` on hand-made data sets whose figures are counted by hand: frequency buckets
on the LVIS edges, absent and predicted-only classes, predictions on ignored pixels, merged
vocabulary classes, id spaces, 16-bit predictions for 300 classes, and the bad-input errors.

The LVIS set (:func:`lvis`): 101 training images of 4x4 pixels, so that each class is seen in an
exact number of training images:

==========  ===========  ==========================  ==============================
class       train imgs   bucket (LVIS paper rule:     val: TP / GT / prediction
                         1-10 / 11-100 / > 100)
==========  ===========  ==========================  ==============================
r1          1            rare                          3 / 4 / 4   IoU 3/5
r10         10           rare                          2 / 4 / 2   IoU 2/4
c11         11           common                        4 / 4 / 6   IoU 4/6
c100        100          common                        3 / 4 / 3   IoU 3/4
f101        101          frequent                      11 / 14 / 12 IoU 11/15
unseen      0            (never seen in training)      2 / 4 / 3   IoU 2/5
absent      50           common                        0 / 0 / 0   absent
ponly       5            rare                          0 / 0 / 1   IoU 0 (predicted only)
void        -            ignore                        predictions on it count nowhere
==========  ===========  ==========================  ==============================
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

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

R1, R10, C11, C100, F101, UNSEEN, VOID, ABSENT, PONLY = range(1, 10)
NAMES = ["r1", "r10", "c11", "c100", "f101", "unseen", "void", "absent", "ponly"]
EVALUATED = [n for n in NAMES if n != "void"]

VAL1 = np.array(
    [
        [R1, R1, R1, R1, R10, R10, R10, R10],
        [C11, C11, C11, C11, C100, C100, C100, C100],
        [F101] * 8,
        [UNSEEN, UNSEEN, UNSEEN, UNSEEN, VOID, VOID, 0, 0],
    ]
)
PRED1 = np.array(
    [
        [R1, R1, R1, F101, R10, R10, C11, C11],
        [C11, C11, C11, C11, C100, C100, C100, 0],
        [F101] * 6 + [R1, UNSEEN],
        [UNSEEN, UNSEEN, 0, 0, R1, F101, R10, UNSEEN],
    ]
)
VAL2 = np.array([[F101, F101, F101, F101], [F101, F101, VOID, VOID]])
PRED2 = np.array([[F101, F101, PONLY, F101], [F101, F101, PONLY, PONLY]])

IOU = {
    "r1": 3 / 5,
    "r10": 2 / 4,
    "c11": 4 / 6,
    "c100": 3 / 4,
    "f101": 11 / 15,
    "unseen": 2 / 5,
    "absent": None,
    "ponly": 0.0,
}
TRAIN_IMAGES = {"r1": 1, "r10": 10, "c11": 11, "c100": 100, "f101": 101, "unseen": 0, "absent": 50, "ponly": 5}
BUCKET = {"r1": "rare", "r10": "rare", "ponly": "rare", "c11": "common", "c100": "common", "absent": "common"}
BUCKET["f101"] = "frequent"


def train_image(j: int) -> np.ndarray:
    """Training image ``j`` (0..100): one pixel per edge class while ``j`` is below its count."""
    img = np.full(16, F101)
    for pixel, (cls, seen) in enumerate([(R1, 1), (R10, 10), (C11, 11), (C100, 100), (ABSENT, 50), (PONLY, 5)]):
        if j < seen:
            img[pixel] = cls
    img[15] = VOID
    return img.reshape(4, 4)


@pytest.fixture(scope="module")
def lvis(tmp_path_factory):
    base = tmp_path_factory.mktemp("lvis")
    images = [(f"t{j:03d}", "train", train_image(j)) for j in range(101)]
    images += [("v1", "val", VAL1), ("v2", "val", VAL2)]
    ds = write_unified(base / "ds", class_rows(NAMES, ignore={VOID}), images)
    pred = base / "pred"
    write_grey(pred / "v1.png", PRED1.astype(np.uint8))
    write_grey(pred / "nested" / "v2.png", PRED2.astype(np.uint8))  # found recursively
    return ds, pred


def to_index(classes: np.ndarray, order: list[str]) -> np.ndarray:
    lut = np.full(256, -1)
    for k, name in enumerate(order):
        lut[NAMES.index(name) + 1] = k
    return lut[classes]


def test_hand_counts_of_the_table():
    """The table of the module docstring, recounted pixel by pixel."""
    pairs = [
        (to_index(VAL1, EVALUATED), to_index(PRED1, EVALUATED)),
        (to_index(VAL2, EVALUATED), to_index(PRED2, EVALUATED)),
    ]
    tp, gt, pred = pixel_counts(pairs, len(EVALUATED))
    for k, name in enumerate(EVALUATED):
        union = gt[k] + pred[k] - tp[k]
        assert (tp[k] / union if union else None) == IOU[name], name
    seen = dict.fromkeys(EVALUATED, 0)
    for j in range(101):
        for name in EVALUATED:
            seen[name] += bool((train_image(j) == NAMES.index(name) + 1).any())
    assert seen == TRAIN_IMAGES


def buckets_of(report: dict) -> dict:
    return {b["name"]: b for b in report["buckets"]}


def test_lvis_edges_buckets(lvis):
    ds, pred = lvis
    report = eval_json(ds, "--pred", pred, "--pred-ids", "unified", "--by-frequency", "--bootstrap", "0")
    entries = per_class(report)
    assert sorted(entries) == sorted(EVALUATED)
    for name in EVALUATED:
        e = entries[name]
        assert e["train_images"] == TRAIN_IMAGES[name], name
        if IOU[name] is None:
            assert e["iou"] is None and e["present"] is False, name
        else:
            assert e["iou"] == pytest.approx(IOU[name], abs=1e-12), name
            assert e["present"] is True, name
        if name in BUCKET:
            assert e["bucket"] == BUCKET[name], (name, e["bucket"])
    unseen_bucket = entries["unseen"]["bucket"]
    assert unseen_bucket not in ("rare", "common", "frequent")

    buckets = buckets_of(report)
    rare, common, frequent = buckets["rare"], buckets["common"], buckets["frequent"]
    assert rare["miou"] == pytest.approx((3 / 5 + 2 / 4 + 0) / 3, abs=1e-12)  # ponly counts as 0
    assert (rare["classes"], rare["classes_present"]) == (3, 3)
    assert common["miou"] == pytest.approx((4 / 6 + 3 / 4) / 2, abs=1e-12)  # absent left out
    assert (common["classes"], common["classes_present"]) == (3, 2)
    assert frequent["miou"] == pytest.approx(11 / 15, abs=1e-12)
    assert (frequent["classes"], frequent["classes_present"]) == (1, 1)
    assert buckets[unseen_bucket]["miou"] == pytest.approx(2 / 5, abs=1e-12)
    assert buckets[unseen_bucket]["classes"] == 1
    overall = [v for v in IOU.values() if v is not None]
    assert report["miou"] == pytest.approx(sum(overall) / len(overall), abs=1e-12)
    # pixel accuracy: 25 correct of 34 counted pixels (void and unlabeled pixels not counted)
    assert report["pixel_accuracy"] == pytest.approx(25 / 34, abs=1e-12)
    assert report["settings"]["buckets"] == "lvis"


def test_merged_vocabulary_class(lvis, tmp_path):
    """r1 and c100 merged into one evaluated class: its IoU is counted on the merged pixels (TP 6,
    ground truth 8, prediction 7: 6/9) and its training images are the images holding either
    (100, not 101: common, on the edge)."""
    ds, pred = lvis
    vocab = write_vocab(
        tmp_path / "v.json",
        [
            ("r1+c100", [R1, C100]),
            ("r10", [R10]),
            ("c11", [C11]),
            ("f101", [F101]),
            ("unseen", [UNSEEN]),
            ("absent", [ABSENT]),
            ("ponly", [PONLY]),
        ],
    )
    report = eval_json(
        ds, "--pred", pred, "--pred-ids", "unified", "--vocab", vocab, "--by-frequency", "--bootstrap", "0"
    )
    entries = per_class(report)
    merged = entries["r1+c100"]
    assert merged["iou"] == pytest.approx(6 / 9, abs=1e-12)
    assert sorted(merged["class_ids"]) == [R1, C100]
    assert merged["train_id"] == 0
    assert merged["train_images"] == 100
    assert merged["bucket"] == "common"
    assert entries["r10"]["iou"] == pytest.approx(2 / 4, abs=1e-12)
    buckets = buckets_of(report)
    assert buckets["rare"]["miou"] == pytest.approx((2 / 4 + 0) / 2, abs=1e-12)
    assert buckets["common"]["miou"] == pytest.approx((6 / 9 + 4 / 6) / 2, abs=1e-12)

    # the same vocabulary with predictions in its train ids (255 = no prediction)
    to_train = np.full(256, 255)
    for train_id, cids in enumerate([[R1, C100], [R10], [C11], [F101], [UNSEEN], [ABSENT], [PONLY]]):
        to_train[cids] = train_id
    write_grey(tmp_path / "ptrain" / "v1.png", to_train[PRED1].astype(np.uint8))
    write_grey(tmp_path / "ptrain" / "v2.png", to_train[PRED2].astype(np.uint8))
    again = eval_json(
        ds, "--pred", tmp_path / "ptrain", "--pred-ids", "train", "--vocab", vocab, "--by-frequency", "--bootstrap", "0"
    )
    assert [e["iou"] for e in again["per_class"]] == [e["iou"] for e in report["per_class"]]


# --------------------------------------------------------------------------- id spaces


def test_id_spaces_agree_sceneparsing_style(tmp_path):
    """A source with SceneParsing's ids (source id = index 1..K, 0 = other; train id = index - 1,
    what mmsegmentation writes after reduce_zero_label): the same prediction written in source
    ids (0 = nothing), in train ids (255 = nothing) and in unified ids gives the same figures,
    and the one written in source ids but read as train ids does not (the classic off-by-one)."""
    names = ["wall", "floor", "tree", "sky"]
    classes = class_rows(names, train_ids={i: i - 1 for i in range(1, 5)})
    gt = np.array([[1, 1, 2, 2, 0], [3, 3, 4, 4, 0], [1, 2, 3, 4, 0]])
    source = np.array([[1, 2, 2, 2, 3], [3, 0, 4, 1, 4], [1, 2, 4, 4, 0]])
    ds = write_unified(tmp_path / "ds", classes, [("t", "train", gt), ("v", "val", gt)])
    write_grey(tmp_path / "source" / "v.png", source.astype(np.uint8))
    write_grey(tmp_path / "unified" / "v.png", source.astype(np.uint8))  # class_id == source_id here
    write_grey(tmp_path / "train" / "v.png", np.where(source > 0, source - 1, 255).astype(np.uint8))
    reports = {
        space: eval_json(ds, "--pred", tmp_path / space, "--pred-ids", space, "--bootstrap", "0")
        for space in ("source", "train", "unified")
    }
    # hand count (column 4 is unlabeled: not counted): wall TP 2 GT 3 PRED 3 (2/4); floor TP 3
    # GT 3 PRED 4 (3/4); tree TP 1 GT 3 PRED 1 (1/3), its other miss the 0; sky TP 2 GT 3 PRED 3 (2/4)
    want = {"wall": 2 / 4, "floor": 3 / 4, "tree": 1 / 3, "sky": 2 / 4}
    for space, report in reports.items():
        got = {e["name"]: e["iou"] for e in report["per_class"]}
        assert got == pytest.approx(want, abs=1e-12), space
        assert report["settings"]["pred_ids"] == space
    off_by_one = run_cli("eval", ds, "--pred", tmp_path / "source", "--pred-ids", "train", "--bootstrap", "0", "--json")
    if off_by_one.exit_code == 0:  # value 4 is outside train ids 0..3: an error is the better answer
        got = {e["name"]: e["iou"] for e in json.loads(off_by_one.stdout)["per_class"]}
        assert got != pytest.approx(want, abs=1e-12)
    else:
        assert off_by_one.exit_code == 1
        assert "v.png" in error_line(off_by_one)


# --------------------------------------------------------------------------- 16-bit


def test_sixteen_bit_predictions_300_classes(tmp_path):
    """A vocabulary of 300 classes: predictions in its train ids need 16-bit PNGs (values up to
    299; 65535 = no prediction). Hand count on one 20x20 image whose pixel i holds class
    (i mod 300) + 1: classes 1..100 have 2 pixels, the others 1."""
    n = 300
    names = [f"k{i}" for i in range(1, n + 1)]
    gt = (np.arange(400) % n + 1).reshape(20, 20)
    train = np.arange(400).reshape(20, 20) % n + 1  # every class seen in training
    ds = write_unified(tmp_path / "ds", class_rows(names), [("t", "train", train), ("v", "val", gt)])
    vocab = write_vocab(tmp_path / "v300.json", [(name, [i]) for i, name in enumerate(names, start=1)])
    pred = (gt - 1).astype(np.int64)
    pred[gt == 300] = 298  # k300 predicted as k299: k300 IoU 0, k299 TP 1 GT 1 PRED 2
    pred[gt == 257] = 65535  # k257 not predicted: IoU 0
    pred[gt == 3] = 280  # k3 (2 pixels) predicted as k281: both 0; k281 TP 1 GT 1 PRED 3
    path = write_grey(tmp_path / "pred" / "v.png", pred.astype(np.uint16))
    assert Image.open(path).mode == "I;16"
    report = eval_json(ds, "--pred", tmp_path / "pred", "--pred-ids", "train", "--vocab", vocab, "--bootstrap", "0")
    entries = per_class(report)
    assert len(entries) == n
    assert entries["k1"]["iou"] == 1.0 and entries["k256"]["iou"] == 1.0 and entries["k280"]["iou"] == 1.0
    assert entries["k300"]["iou"] == 0.0 and entries["k257"]["iou"] == 0.0 and entries["k3"]["iou"] == 0.0
    assert entries["k299"]["iou"] == pytest.approx(1 / 2, abs=1e-12)
    assert entries["k281"]["iou"] == pytest.approx(1 / 3, abs=1e-12)
    assert entries["k300"]["train_id"] == 299
    assert report["pixel_accuracy"] == pytest.approx((400 - 1 - 1 - 2) / 400, abs=1e-12)
    # 295 classes at 1, k299 1/2, k281 1/3, k3, k257, k300 at 0
    assert report["miou"] == pytest.approx((295 + 1 / 2 + 1 / 3) / 300, abs=1e-12)


# --------------------------------------------------------------------------- bad input


@pytest.fixture()
def small(tmp_path):
    names = ["a", "b", "void"]
    gt = np.array([[1, 1, 2, 2], [1, 3, 2, 0], [2, 2, 1, 1]])
    ds = write_unified(
        tmp_path / "ds", class_rows(names, ignore={3}), [("t", "train", gt), ("v1", "val", gt), ("v2", "val", gt)]
    )
    pred = tmp_path / "pred"
    good = np.array([[0, 0, 1, 1], [0, 1, 1, 255], [1, 0, 0, 0]], dtype=np.uint8)  # train ids a=0, b=1
    write_grey(pred / "v1.png", good)
    write_grey(pred / "v2.png", good)
    out = tmp_path / "out"
    out.mkdir()
    return ds, pred, out, good


def failed(result, out, *needles) -> str:
    assert result.exit_code == 1, result.output
    line = error_line(result)
    for needle in needles:
        assert needle in line, (needle, line)
    assert list(out.iterdir()) == [], "nothing may be written to --out on failure"
    return line


def run_eval(ds, pred, out, *extra):
    return run_cli(
        "eval", ds, "--pred", pred, "--pred-ids", "train", "--bootstrap", "0", "--out", out / "r.json", *extra
    )


def test_good_input_writes_out(small):
    ds, pred, out, good = small
    result = run_eval(ds, pred, out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "r.json").read_text())
    # per image: a GT 5, TP 5, prediction 6 (one b pixel predicted a; the void pixel's b and the
    # unlabeled pixel's 255 not counted); b GT 5, TP 4, prediction 4
    entries = per_class(report)
    assert entries["a"]["iou"] == pytest.approx(5 / 6, abs=1e-12)
    assert entries["b"]["iou"] == pytest.approx(4 / 5, abs=1e-12)
    assert report["pixel_accuracy"] == pytest.approx(9 / 10, abs=1e-12)


def test_missing_prediction(small):
    ds, pred, out, _ = small
    (pred / "v2.png").unlink()
    failed(run_eval(ds, pred, out), out, "v2")
    skipped = run_eval(ds, pred, out, "--missing", "skip")
    assert skipped.exit_code == 0, skipped.output
    report = json.loads((out / "r.json").read_text())
    assert report["settings"]["images"] == 1
    assert any("v2" in str(s) for s in report["settings"]["skipped"])
    assert not any("v1" in str(s) for s in report["settings"]["skipped"])
    assert per_class(report)["a"]["iou"] == pytest.approx(5 / 6, abs=1e-12)


def test_prediction_of_another_size(small):
    ds, pred, out, good = small
    write_grey(pred / "v2.png", np.zeros((3, 5), dtype=np.uint8))
    failed(run_eval(ds, pred, out), out, str(pred / "v2.png"))


def test_value_outside_the_id_space(small):
    ds, pred, out, good = small
    bad = good.copy()
    bad[0, 0] = 7  # train ids are 0..1, 255 = no prediction
    write_grey(pred / "v2.png", bad)
    line = failed(run_eval(ds, pred, out), out, str(pred / "v2.png"))
    assert "7" in line.replace(str(pred / "v2.png"), "")


def test_palette_prediction(small):
    ds, pred, out, good = small
    img = Image.fromarray(good, mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0] + [9, 9, 9] * 254)
    img.save(pred / "v2.png")
    assert Image.open(pred / "v2.png").mode == "P"
    failed(run_eval(ds, pred, out), out, str(pred / "v2.png"))


def test_rgb_prediction(small):
    ds, pred, out, good = small
    Image.fromarray(np.stack([good] * 3, axis=-1), mode="RGB").save(pred / "v2.png")
    failed(run_eval(ds, pred, out), out, str(pred / "v2.png"))


def test_device_without_a_gpu_is_one_line(small):
    """``--device cuda`` where there is no GPU (or no torch bridge): one error line, no traceback."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    ds, pred, out, _ = small
    result = run_eval(ds, pred, out, "--device", "cuda")
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith(("error", "Error"))], result.output
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- size recall, intervals

SIZE_BOXES = {  # instance: (row, col, height, width, pixels predicted as its class, COCO bucket)
    "i1": (100, 30, 10, 10, 50, "small"),  # 100 px, exactly half predicted: found
    "i2": (100, 0, 20, 20, 199, "small"),  # 400 px, one pixel short of half: missed
    "i3": (0, 100, 32, 32, 1024, "medium"),  # 1024 px = 32^2: medium (small is < 32^2); found
    "i4": (100, 50, 31, 33, 0, "small"),  # 1023 px: small; missed
    "i5": (0, 0, 96, 96, 4608, "large"),  # 9216 px = 96^2: large (medium is < 96^2); half: found
    "i6": (40, 100, 40, 40, 0, "medium"),  # 1600 px predicted as background: missed
}


def test_size_recall_on_the_coco_edges(tmp_path):
    """Instances sized exactly on the COCO edges (32^2 and 96^2 pixels) and predicted exactly half
    or one pixel short of half; an instance of an ignored thing class is not counted."""
    names = ["bg", "car", "ign"]
    sem = np.full((200, 200), 1)
    inst = np.zeros((200, 200), dtype=np.int64)
    pred = np.zeros((200, 200), dtype=np.uint8)  # train ids: bg 0, car 1
    for k, (r, c, h, w, hit, _) in enumerate(SIZE_BOXES.values(), start=1):
        sem[r : r + h, c : c + w] = 2
        inst[r : r + h, c : c + w] = k
        box = pred[r : r + h, c : c + w].reshape(-1)
        box[:hit] = 1
        pred[r : r + h, c : c + w] = box.reshape(h, w)
    sem[150:160, 150:160] = 3  # an instance of the ignored class
    inst[150:160, 150:160] = 9
    classes = class_rows(names, ignore={3}, things={2, 3})
    ds = write_unified(tmp_path / "ds", classes, [("t", "train", sem, inst), ("v", "val", sem, inst)])
    write_grey(tmp_path / "pred" / "v.png", pred)
    report = eval_json(ds, "--pred", tmp_path / "pred", "--pred-ids", "train", "--bootstrap", "0")
    recall = report["size_recall"]
    want = {"small": (3, 1 / 3), "medium": (2, 1 / 2), "large": (1, 1.0)}
    for bucket, (instances, share) in want.items():
        assert recall[bucket]["instances"] == instances, (bucket, recall[bucket])
        assert recall[bucket]["recall"] == pytest.approx(share, abs=1e-12), (bucket, recall[bucket])


def test_intervals_contain_their_estimate_and_are_seeded(lvis):
    """BCa intervals over images (seeded): the same seed gives the same interval, and every
    interval, overall and per bucket, contains its own estimate."""
    ds, pred = lvis
    args = [ds, "--pred", pred, "--pred-ids", "unified", "--by-frequency", "--bootstrap", "200", "--seed", "7"]
    first, again = eval_json(*args), eval_json(*args)
    assert first["ci"] == again["ci"]
    assert first["ci"]["method"] == "bca" and first["ci"]["bootstrap"] == 200 and first["ci"]["seed"] == 7
    for key in ("miou", "pixel_accuracy", "mean_accuracy"):
        low, high = first["ci"][key]
        assert low <= first[key] <= high, (key, low, first[key], high)
    for bucket in first["buckets"]:
        if bucket["miou"] is not None and bucket.get("ci") is not None:
            low, high = bucket["ci"]
            assert low <= bucket["miou"] <= high, bucket


# --------------------------------------------------------------------------- ceiling

HUMAN = {"r1": 0.5, "c11": 0.9, "c100": 0.8, "f101": 0.95, "unseen": 0.4, "absent": 0.7}  # r10, ponly: not covered


def write_ceiling(path, reference: str, ids: dict[str, int]):
    """A ceiling file (format version 1, as `analyze consistency --ceiling-out` writes it) whose own
    buckets are all "frequent": the eval must use its own buckets, not these."""
    doc = {
        "format": "segdata-ceiling",
        "format_version": 1,
        "pixel_accuracy": 0.93,
        "miou": 0.77,
        "images": 2,
        "reference": {"dataset": "lvis", "path": reference, "layer": "objects"},
        "annotation": {"dataset": "lvis", "path": reference, "layer": "again"},
        "buckets": {"rule": "lvis", "order": ["frequent"], "values": {"frequent": {"classes": 6, "miou": 0.77}}},
        "classes": [
            {"class_id": ids[name], "name": name, "bucket": "frequent", "pixels": 10, "iou": iou}
            for name, iou in HUMAN.items()
        ],
        "ci": {},
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("match", ["class_id", "name"])
def test_ceiling_per_bucket_uses_the_eval_buckets(lvis, tmp_path, match):
    """The human figure of a bucket is the mean human IoU of the eval's bucket's classes the ceiling
    covers, with how many it covers; per class ``ceiling_iou``. Matched by class id when the
    ceiling's reference is the evaluated dataset, by name otherwise (ids shuffled here)."""
    ds, pred = lvis
    if match == "class_id":
        ceiling = write_ceiling(tmp_path / "c.json", str(ds), {n: NAMES.index(n) + 1 for n in HUMAN})
    else:
        ceiling = write_ceiling(tmp_path / "c.json", "/elsewhere", {n: 100 + k for k, n in enumerate(HUMAN)})
    report = eval_json(
        ds, "--pred", pred, "--pred-ids", "unified", "--by-frequency", "--ceiling", ceiling, "--bootstrap", "0"
    )
    entries = per_class(report)
    for name in EVALUATED:
        want = HUMAN.get(name)
        assert entries[name]["ceiling_iou"] == (pytest.approx(want, abs=1e-12) if want is not None else None), name
    buckets = buckets_of(report)
    assert buckets["rare"]["ceiling_miou"] == pytest.approx(0.5, abs=1e-12)
    assert buckets["rare"]["ceiling_classes"] == 1
    assert buckets["common"]["ceiling_miou"] == pytest.approx((0.9 + 0.8 + 0.7) / 3, abs=1e-12)
    assert buckets["common"]["ceiling_classes"] == 3
    assert buckets["frequent"]["ceiling_miou"] == pytest.approx(0.95, abs=1e-12)
    unseen = entries["unseen"]["bucket"]
    assert buckets[unseen]["ceiling_miou"] == pytest.approx(0.4, abs=1e-12)
    assert report["ceiling"]["miou"] == pytest.approx(sum(HUMAN.values()) / len(HUMAN), abs=1e-12)

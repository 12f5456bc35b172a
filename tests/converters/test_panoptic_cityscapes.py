"""COCO panoptic export of Cityscapes datasets: the official convention (``--convention cityscapes``)
against cityscapesScripts' own ``csCreatePanopticImgs`` (its function ``convert2panoptic``), scored
with the panoptic quality, and the real image file names of the default convention.

References, independent of segdata: the official tool run on the same source files; PNG ids read
with Pillow and numpy; the panoptic quality computed twice, by cityscapesScripts' evaluator
(``evalPanopticSemanticLabeling``, a port of panopticapi's ``pq_compute``; panopticapi itself is
not on PyPI) and by :func:`panoptic_quality` below, written from the definition (Kirillov et al.,
"Panoptic Segmentation", CVPR 2019).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import segdata
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import cityscapes, coco
from segdata.errors import SegdataError
from tests.conftest import require
from tests.fixtures import cityscapes as fx

csprep = pytest.importorskip("cityscapesscripts.preparation.createPanopticImgs", reason="cityscapesScripts 2.3.0")
cseval = pytest.importorskip("cityscapesscripts.evaluation.evalPanopticSemanticLabeling")


@pytest.fixture(autouse=True)
def numpy_in1d(monkeypatch):
    # cityscapesScripts 2.3.0 calls np.in1d (in its pixel- and instance-level evaluations), which
    # NumPy 2.4 removed; np.isin is its replacement. The two functions used here do not reach it,
    # but the patch keeps these tests valid on any NumPy should that change.
    import numpy

    if not hasattr(numpy, "in1d"):
        monkeypatch.setattr(numpy, "in1d", numpy.isin, raising=False)


# --------------------------------------------------------------------------- references


def official(root: Path, out: Path, use_train_id: bool) -> Path:
    """csCreatePanopticImgs (convert2panoptic(cityscapesPath, outputFolder, useTrainId, setNames)) on
    ``root/gtFine``, quietly; only the splits present (the tool exits on a split without files)."""
    out.mkdir(parents=True)
    splits = sorted(p.name for p in (root / "gtFine").iterdir() if p.is_dir())
    with contextlib.redirect_stdout(io.StringIO()):
        csprep.convert2panoptic(str(root / "gtFine"), str(out), use_train_id, splits)
    return out


def png_ids(path: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]


def files_of(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def assert_same_as_official(ours: Path, theirs: Path) -> int:
    """Same files; JSON equal part by part, then byte for byte; PNG pixels equal, then bytes."""
    assert files_of(ours) == files_of(theirs)
    n_png = 0
    for name in files_of(theirs):
        a, b = ours / name, theirs / name
        if name.endswith(".json"):
            da, db = json.loads(a.read_text()), json.loads(b.read_text())
            assert da["categories"] == db["categories"]
            assert da["images"] == db["images"]
            assert [x["image_id"] for x in da["annotations"]] == [x["image_id"] for x in db["annotations"]]
            for x, y in zip(da["annotations"], db["annotations"]):
                assert x["file_name"] == y["file_name"]
                assert x["segments_info"] == y["segments_info"], x["image_id"]
        else:
            assert np.array_equal(png_ids(a), png_ids(b)), name
            n_png += 1
        assert a.read_bytes() == b.read_bytes(), name
    return n_png


def panoptic_quality(gt_json: Path, gt_dir: Path, pred_json: Path, pred_dir: Path) -> dict[int, float]:
    """PQ per category and over categories ("all"), from the definition.

    A ground-truth and a predicted segment of one category match when their IoU exceeds 0.5, the
    IoU counting no predicted pixel that is void (id 0) in the ground truth; crowd ground-truth
    segments never match. Unmatched ground truth that is not crowd is a false negative; an
    unmatched prediction is a false positive unless more than half of it lies on void or on a
    crowd region of its category. PQ_c = sum of matched IoUs / (TP + FP/2 + FN/2), averaged over
    the categories with TP + FP + FN > 0.
    """
    gt_doc, pred_doc = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
    preds = {a["image_id"]: a for a in pred_doc["annotations"]}
    iou_sum, tp, fp, fn = defaultdict(float), defaultdict(int), defaultdict(int), defaultdict(int)
    for g in gt_doc["annotations"]:
        p = preds[g["image_id"]]
        gmap, pmap = png_ids(gt_dir / g["file_name"]), png_ids(pred_dir / p["file_name"])
        gseg = {s["id"]: s for s in g["segments_info"]}
        pseg = {s["id"]: s for s in p["segments_info"]}
        # pixel counts of every (ground truth id, predicted id) pair, from one joint histogram
        pair, count = np.unique(gmap * 2**24 + pmap, return_counts=True)
        joint = dict(zip(zip((pair >> 24).tolist(), (pair & (2**24 - 1)).tolist()), count.tolist()))
        garea = {i: sum(n for (a, _), n in joint.items() if a == i) for i in gseg}
        parea = {i: sum(n for (_, b), n in joint.items() if b == i) for i in pseg}
        on_void = {i: joint.get((0, i), 0) for i in pseg}
        matched_g, matched_p = set(), set()
        for gi, gs in gseg.items():
            if gs["iscrowd"]:
                continue
            for pi, ps in pseg.items():
                if ps["category_id"] != gs["category_id"]:
                    continue
                inter = joint.get((gi, pi), 0)
                union = garea[gi] + parea[pi] - on_void[pi] - inter
                if union and inter / union > 0.5:
                    tp[gs["category_id"]] += 1
                    iou_sum[gs["category_id"]] += inter / union
                    matched_g.add(gi)
                    matched_p.add(pi)
        crowd = {s["category_id"]: s["id"] for s in g["segments_info"] if s["iscrowd"]}
        for gi, gs in gseg.items():
            if gi not in matched_g and not gs["iscrowd"]:
                fn[gs["category_id"]] += 1
        for pi, ps in pseg.items():
            if pi in matched_p:
                continue
            ignored = on_void[pi]
            if ps["category_id"] in crowd:
                ignored += joint.get((crowd[ps["category_id"]], pi), 0)
            if ignored / parea[pi] <= 0.5:
                fp[ps["category_id"]] += 1
    pq = {}
    for c in {x["id"] for x in gt_doc["categories"]}:
        if tp[c] + fp[c] + fn[c]:
            pq[c] = iou_sum[c] / (tp[c] + 0.5 * fp[c] + 0.5 * fn[c])
    pq["all"] = sum(pq.values()) / len(pq)
    return pq


def official_pq(gt_json: Path, gt_dir: Path, pred_json: Path, pred_dir: Path) -> float:
    """cityscapesScripts' evaluator (panopticapi's pq_compute), in this process."""
    gt_doc, pred_doc = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
    categories = {c["id"]: c for c in gt_doc["categories"]}
    preds = {a["image_id"]: a for a in pred_doc["annotations"]}
    pairs = [(g, preds[g["image_id"]]) for g in gt_doc["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        stat = cseval.pq_compute_single_core(0, pairs, str(gt_dir), str(pred_dir), categories)
    return cseval.average_pq(stat, categories)["All"]["pq"]


def both_pq(gt: Path, pred: Path, split: str) -> tuple[float, float]:
    args = (
        gt / f"cityscapes_panoptic_{split}.json",
        gt / f"cityscapes_panoptic_{split}",
        pred / f"cityscapes_panoptic_{split}.json",
        pred / f"cityscapes_panoptic_{split}",
    )
    return official_pq(*args), panoptic_quality(*args)["all"]


# --------------------------------------------------------------------------- datasets


@pytest.fixture()
def small(tmp_path):
    root = fx.small_dataset(tmp_path / "cityscapes")
    convert(cityscapes, root, tmp_path / "unified", workers=1)
    return root, segdata.open(tmp_path / "unified")


@pytest.fixture(scope="module")
def real(samples, tmp_path_factory):
    root = require(samples / "cityscapes")
    out = tmp_path_factory.mktemp("cs-panoptic")
    convert(cityscapes, root, out / "unified", workers=2)
    return root, segdata.open(out / "unified"), out


@pytest.fixture(scope="module")
def real_official(real):
    root, _, out = real
    return {tid: official(root, out / f"official-{tid}", tid) for tid in (False, True)}


# --------------------------------------------------------------------------- the official convention


@pytest.mark.parametrize("use_train_id", [False, True], ids=["labelIds", "trainIds"])
def test_fixture_equals_csCreatePanopticImgs(small, tmp_path, use_train_id):
    root, ds = small
    theirs = official(root, tmp_path / "official", use_train_id)
    report = coco.write(ds, tmp_path / "ours", workers=1, convention="cityscapes", use_train_id=use_train_id)
    assert assert_same_as_official(tmp_path / "ours", theirs) == 3
    # scene_a: out of roi (3), unlabeled (0) void; sky, building, road, 2 cars, the car group, a
    # person; scene_b: 5 stuff classes, ego vehicle (1) void; scene_v: sky, road, bicycle, 2 persons
    assert report["segments"] == 8 + 5 + 5 and report["void_regions"] == 2
    assert report["categories"] == 19 and report["images"] == 3
    doc = json.loads((tmp_path / "ours" / f"cityscapes_panoptic_train{'_trainId' * use_train_id}.json").read_text())
    (a,) = [x for x in doc["annotations"] if x["image_id"] == fx.A]
    group = [s for s in a["segments_info"] if s["id"] == 26]
    assert group == [
        {"id": 26, "category_id": 13 if use_train_id else 26, "area": 3, "bbox": [5, 2, 3, 1], "iscrowd": 1}
    ]
    assert {s["id"] for s in a["segments_info"]} == {7, 11, 23, 26, 24000, 26000, 26001}


@pytest.mark.parametrize("use_train_id", [False, True], ids=["labelIds", "trainIds"])
def test_real_samples_equal_csCreatePanopticImgs(real, real_official, tmp_path, use_train_id):
    _, ds, _ = real
    coco.write(ds, tmp_path / "ours", workers=2, convention="cityscapes", use_train_id=use_train_id)
    assert assert_same_as_official(tmp_path / "ours", real_official[use_train_id]) == 7


def test_real_pq_is_100_and_falls_by_the_definition_without_an_instance(real, real_official, tmp_path):
    _, ds, _ = real
    gt = real_official[False]
    coco.write(ds, tmp_path / "ours", workers=2, convention="cityscapes")
    for split in ("train", "val"):
        assert both_pq(gt, tmp_path / "ours", split) == (1.0, 1.0)
    # drop the largest car of frankfurt_000000_000294 from the prediction (void in the PNG)
    pred = tmp_path / "ours" / "cityscapes_panoptic_val"
    doc_path = tmp_path / "ours" / "cityscapes_panoptic_val.json"
    doc = json.loads(doc_path.read_text())
    (ann,) = [a for a in doc["annotations"] if a["image_id"] == "frankfurt_000000_000294"]
    car = max((s for s in ann["segments_info"] if s["category_id"] == 26 and not s["iscrowd"]), key=lambda s: s["area"])
    ann["segments_info"].remove(car)
    doc_path.write_text(json.dumps(doc))
    ids = png_ids(pred / ann["file_name"])
    ids[ids == car["id"]] = 0
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(pred / ann["file_name"])
    # by hand: every category keeps PQ 1 except car: TP n-1 (IoU 1 each), FN 1, FP 0
    gt_doc = json.loads((gt / "cityscapes_panoptic_val.json").read_text())
    segs = [s for a in gt_doc["annotations"] for s in a["segments_info"]]
    cats = {s["category_id"] for s in segs if not s["iscrowd"]}
    n = sum(1 for s in segs if s["category_id"] == 26 and not s["iscrowd"])
    expected = (len(cats) - 1 + (n - 1) / (n - 1 + 0.5)) / len(cats)
    assert both_pq(gt, tmp_path / "ours", "val") == pytest.approx((expected, expected), abs=1e-12)
    assert expected < 1.0


def test_real_default_convention_scores_pq_100_once_mapped(real, real_official, tmp_path):
    """The segdata convention holds the same segments: mapped onto the official one (class id ->
    labelId, ignoreInEval segments void, the string image ids) it scores PQ 100."""
    _, ds, _ = real
    coco.write(ds, tmp_path / "ours", workers=2)
    label_of = dict(zip(ds.classes.class_id.tolist(), ds.classes.source_id.tolist()))
    void = {label.id for label in cityscapes.LABELS if label.ignoreInEval}
    mapped = tmp_path / "mapped"
    for split in ("train", "val"):
        doc = json.loads((tmp_path / "ours" / "annotations" / f"panoptic_{split}.json").read_text())
        names = {i["id"]: i["segdata_image_id"] for i in doc["images"]}
        (mapped / f"cityscapes_panoptic_{split}").mkdir(parents=True)
        for ann in doc["annotations"]:
            ids = png_ids(tmp_path / "ours" / "annotations" / f"panoptic_{split}" / ann["file_name"])
            keep = []
            for s in ann["segments_info"]:
                s["category_id"] = label_of[s["category_id"]]
                if s["category_id"] in void:
                    ids[ids == s["id"]] = 0
                else:
                    keep.append(s)
            ann["segments_info"], ann["image_id"] = keep, names[ann["image_id"]]
            rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
            Image.fromarray(rgb).save(mapped / f"cityscapes_panoptic_{split}" / ann["file_name"])
        (mapped / f"cityscapes_panoptic_{split}.json").write_text(json.dumps(doc))
        assert both_pq(real_official[False], mapped, split) == (1.0, 1.0)


def test_cityscapes_convention_refuses_other_families(tmp_path):
    from segdata.converters import voc
    from tests.fixtures.voc import small_voc

    convert(voc, small_voc(tmp_path / "voc"), tmp_path / "u", workers=1)
    with pytest.raises(SegdataError, match="converted from Cityscapes only"):
        coco.write(segdata.open(tmp_path / "u"), tmp_path / "pan", workers=1, convention="cityscapes")
    assert not (tmp_path / "pan").exists()


def test_cli_convention_and_its_usage_errors(small, tmp_path):
    root, ds = small
    theirs = official(root, tmp_path / "official", True)
    args = [str(ds.path), "--to", "coco-panoptic", str(tmp_path / "ours"), "--workers", "1"]
    result = CliRunner().invoke(main, ["export", *args, "--convention", "cityscapes", "--use-train-id"])
    assert result.exit_code == 0, result.output
    assert assert_same_as_official(tmp_path / "ours", theirs) == 3
    bad = [
        [str(ds.path), "--to", "coco-panoptic", str(tmp_path / "x"), "--use-train-id"],
        [str(ds.path), "--to", "label-png", str(tmp_path / "x"), "--convention", "cityscapes"],
    ]
    for argv in bad:
        result = CliRunner().invoke(main, ["export", *argv])
        assert result.exit_code == 2 and "appl" in result.output and not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- the default convention


def test_default_file_names_are_the_real_ones_one_scheme_per_split(small, tmp_path):
    root, _ = small
    # train: A gets its image, B has none; val: V has its image
    fx.write_left_image(root / "leftImg8bit" / "train" / "aachen" / f"{fx.A}_leftImg8bit.png", 6, 8)
    convert(cityscapes, root, tmp_path / "u2", workers=1)
    report = coco.write(segdata.open(tmp_path / "u2"), tmp_path / "pan", workers=1)
    assert report["images_without_file"] == 1
    docs = {
        s: json.loads((tmp_path / "pan" / "annotations" / f"panoptic_{s}.json").read_text()) for s in ("train", "val")
    }
    files = {i["segdata_image_id"]: i["file_name"] for d in docs.values() for i in d["images"]}
    assert files == {fx.A: f"{fx.A}_leftImg8bit.png", fx.B: None, fx.V: f"{fx.V}_leftImg8bit.png"}
    pngs = {d: sorted(a["file_name"] for a in doc["annotations"]) for d, doc in docs.items()}
    # a split with an image without file is named by image id throughout; val by the file's stem
    assert pngs == {"train": [f"{fx.A}.png", f"{fx.B}.png"], "val": [f"{fx.V}_leftImg8bit.png"]}
    for split, doc in docs.items():
        for ann in doc["annotations"]:
            assert (tmp_path / "pan" / "annotations" / f"panoptic_{split}" / ann["file_name"]).is_file()


def test_real_default_file_names(real, tmp_path):
    root, ds, _ = real
    coco.write(ds, tmp_path / "pan", workers=2)
    on_disk = {p.name for p in (root / "leftImg8bit").rglob("*_leftImg8bit.png")}
    assert on_disk == {"frankfurt_000000_000294_leftImg8bit.png", "frankfurt_000000_001016_leftImg8bit.png"}
    for split in ("train", "val"):
        doc = json.loads((tmp_path / "pan" / "annotations" / f"panoptic_{split}.json").read_text())
        for image in doc["images"]:
            name = f"{image['segdata_image_id']}_leftImg8bit.png"
            assert image["file_name"] == (name if name in on_disk else None)


def test_copied_images_keep_their_name(small, tmp_path):
    """With --copy-images the dataset's own copy is the file: its name, extension included."""
    root, _ = small
    shutil.rmtree(tmp_path / "unified")
    convert(cityscapes, root, tmp_path / "unified", workers=1, copy_images=True)
    coco.write(segdata.open(tmp_path / "unified"), tmp_path / "pan", workers=1)
    doc = json.loads((tmp_path / "pan" / "annotations" / "panoptic_val.json").read_text())
    assert [i["file_name"] for i in doc["images"]] == [f"{fx.V}_leftImg8bit.png"]

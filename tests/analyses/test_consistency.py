"""Annotation consistency: answers known in advance.

- (one image, both backends: tests/analyses/test_consistency_counting.py; class regions and a
  dataset against itself: tests/analyses/test_consistency_objects.py)
- edits of known size on real Cityscapes maps (rename a region: naming; erase an object:
  quantity; dilate a region: segmentation quality), one by one and together;
- the Cityscapes labelIds against the rasterised ``_polygons.json`` of the same images, counted
  independently with numpy (drawn as cityscapesScripts' json2labelImg draws them);
- the generated ADE20K consistency set against the generator's exact per-edit counts;
- figures against a brute-force confusion matrix, the BCa bootstrap against scipy's on a naive
  loop over the same resamples, process pool against inline against a Dask LocalCluster.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw
from scipy import ndimage, stats

import segdata
from segdata.analyses import consistency as cons
from segdata.analyses.consistency.figures import seen_classes
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k, cityscapes
from segdata.errors import InputError
from segdata.format import SEGMENT_SCHEMA
from segdata.maskio import write_segment_map
from segdata.synthetic import generate_ade20k_consistency
from tests.conftest import require
from tests.fixtures import cityscapes as fx

# cityscapesScripts labels.py: labelIds whose ignoreInEval is True
CITYSCAPES_IGNORE = {0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30}


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# --------------------------------------------------------------------------- class map, ceiling file


@pytest.mark.parametrize(
    "text,expected,raises",
    [
        ("b_class_id,a_class_id\n3,7\n4,\n5,0\n", {3: 7, 4: None, 5: 0}, None),
        ("# comment\nb_class_id,a_class_id\n3,ignore\n", {3: None}, None),
        ("3,7\n", None, "header"),
        ("b_class_id,a_class_id\n3,7\n3,8\n", None, "twice"),
        ("b_class_id,a_class_id\nx,7\n", None, "integers"),
        ("b_class_id,a_class_id\n3,7,1\n", None, "expected"),
    ],
)
def test_read_class_map(tmp_path, text, expected, raises):
    path = tmp_path / "map.csv"
    path.write_text(text)
    if raises:
        with pytest.raises(InputError, match=raises):
            cons.read_class_map(path)
    else:
        assert cons.read_class_map(path) == expected


# --------------------------------------------------------------------------- figures vs brute force


def brute_figures(pairs, ignore, scored):
    """Pixel agreement, excluding void, pixel accuracy, mIoU (B against A) and symmetric mIoU from
    a (a, b, pixels) table, with explicit loops over a dense confusion matrix."""
    k = len(ignore)
    conf = np.zeros((k, k))
    for a, b, n in pairs:
        conf[a, b] += n
    compared = agree = evaluable = agree_ev = gt = tp = 0.0
    for a in range(k):
        for b in range(k):
            n = conf[a, b]
            if a or b:
                compared += n
                agree += n * (a == b)
            if a and b and not ignore[a] and not ignore[b]:
                evaluable += n
                agree_ev += n * (a == b)
            if a and not ignore[a]:
                gt += n
                tp += n * (a == b)
    ious, sious = [], []
    for c in range(1, k):
        if not scored[c]:
            continue
        rows = [a for a in range(k) if a and not ignore[a]]
        t = conf[c, c] if c in rows else 0
        fn = sum(conf[c, b] for b in range(k) if b != c) if c in rows else 0
        fp = sum(conf[a, c] for a in rows if a != c)
        ious.append(t / (t + fp + fn) if t + fp + fn else np.nan)
        keep = [x for x in range(k) if not ignore[x]]
        inter = conf[c, c]
        union = sum(conf[c, b] for b in keep) + sum(conf[a, c] for a in keep) - inter
        sious.append(inter / union if union else np.nan)
    return {
        "pixel_agreement": agree / compared,
        "pixel_agreement_excluding_void": agree_ev / evaluable,
        "pixel_accuracy": tp / gt,
        "miou": np.nanmean(ious),
        "miou_symmetric": np.nanmean(sious),
    }


def test_figures_equal_a_brute_force_confusion_matrix():
    rng = np.random.default_rng(11)
    ignore = np.array([False, False, False, True, False, False, False])
    space = cons.ClassSpace(np.arange(7), tuple("uabcdef"), ignore, ("#000000",) * 7)
    pairs = [(a, b, int(rng.integers(1, 1000))) for a in range(6) for b in range(6) if rng.random() < 0.5]
    pairs.append((6, 0, 17))  # class 6: only in A, only unlabeled in B
    got = cons.pair_figures(np.array(pairs), space)
    want = brute_figures(pairs, ignore, space.scored)
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


def test_a_class_absent_from_both_is_nan_and_left_out_of_the_mean():
    space = cons.ClassSpace(np.arange(4), ("u", "a", "b", "c"), np.zeros(4, bool), ("#000000",) * 4)
    got = cons.pair_figures(np.array([[1, 1, 10], [2, 1, 10]]), space)
    # class 1: TP 10, FP 10 -> 0.5; class 2: TP 0, FN 10 -> 0; class 3: absent -> NaN, not 0
    assert got["miou"] == pytest.approx(0.25)


# --------------------------------------------------------------------------- datasets built in code


@pytest.fixture(scope="module")
def fine_coarse(tmp_path_factory):
    """Cityscapes fixture (three tiny images) converted with its gtCoarse layer."""
    root = fx.small_dataset(tmp_path_factory.mktemp("cs") / "src", coarse=True)
    out = tmp_path_factory.mktemp("csu") / "u"
    convert(cityscapes, root, out, workers=1, options={"coarse": True})
    return out


def test_fine_against_coarse_against_numpy(fine_coarse):
    ds = segdata.open(fine_coarse)
    result = cons.compare(ds, layers="objects,coarse", workers=1, bootstrap=0)
    lab = {r: fx.labels_of(v) for r, v in ((fx.A, fx.scene_a()), (fx.V, fx.scene_v()))}
    coarse = {r: fx.coarse_of(v) for r, v in ((fx.A, fx.scene_a()), (fx.V, fx.scene_v()))}
    compared = agree = evaluable = agree_ev = 0
    for image_id in lab:
        f, c = lab[image_id], coarse[image_id]
        labelled = (f != 0) | (c != 0)  # labelId 0 'unlabeled' is no annotation
        compared += labelled.sum()
        agree += (labelled & (f == c)).sum()
        ev = ~np.isin(f, list(CITYSCAPES_IGNORE)) & ~np.isin(c, list(CITYSCAPES_IGNORE))
        evaluable += ev.sum()
        agree_ev += (ev & (f == c)).sum()
    assert result.unmatched["only_in_a"] == [fx.B]  # B has no gtCoarse: listed, not compared
    assert result.figures["pixel_agreement"] == pytest.approx(agree / compared)
    assert result.figures["pixel_agreement_excluding_void"] == pytest.approx(agree_ev / evaluable)
    assert result.settings["unlabeled_classes"] == [1]  # Cityscapes' own 'unlabeled'


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_image(
    path: Path, image_id: str, layer: str, segmap: np.ndarray, classes: dict[int, int] | None = None
) -> None:
    """Overwrite one mask of a dataset on disk and its segment rows (class changes, areas)."""
    ds = segdata.open(path)
    write_segment_map(ds.mask_path(image_id, layer), segmap)
    seg = pq.read_table(path / "segments.parquet").to_pandas()
    rows = (seg["image_id"] == image_id) & (seg["layer"] == layer)
    areas = np.bincount(segmap.ravel(), minlength=int(seg.loc[rows, "segment_id"].max()) + 1)
    seg.loc[rows, "area"] = areas[seg.loc[rows, "segment_id"].to_numpy()]
    for sid, cid in (classes or {}).items():
        seg.loc[rows & (seg["segment_id"] == sid), "class_id"] = cid
    pq.write_table(pa.Table.from_pandas(seg, schema=SEGMENT_SCHEMA, preserve_index=False), path / "segments.parquet")


def test_identical_annotations_agree_fully_with_an_empty_breakdown(fine_coarse, tmp_path):
    other = copy_dataset(fine_coarse, tmp_path / "copy")
    result = cons.compare(fine_coarse, other, workers=1, bootstrap=20)
    f = result.figures
    assert f["pixel_agreement"] == f["pixel_agreement_excluding_void"] == f["pixel_accuracy"] == 1.0
    assert f["miou"] == f["miou_symmetric"] == f["kappa"] == 1.0
    assert result.breakdown["pixels"] == {"segmentation_quality": 0, "naming": 0, "quantity": 0}
    assert result.ci["pixel_agreement"] == [1.0, 1.0]
    assert result.unmatched == {"only_in_a": [], "only_in_b": [], "size_mismatch": []}


def test_two_datasets_unmatched_images_and_a_class_map(fine_coarse, tmp_path):
    other = copy_dataset(fine_coarse, tmp_path / "b")
    images = pq.read_table(other / "images.parquet").to_pandas()
    pq.write_table(
        pa.Table.from_pandas(images[images["image_id"] != fx.V], preserve_index=False), other / "images.parquet"
    )
    # in B, image A's road (class 8 = labelId 7 + 1) is renamed sidewalk (9); the map sends 9 to road
    ds_b = segdata.open(other)
    rows = ds_b.segments[(ds_b.segments.image_id == fx.A) & (ds_b.segments.layer == "objects")]
    road = int(rows[rows.class_id == 8].segment_id.iloc[0])
    edit_image(other, fx.A, "objects", ds_b.segment_map(fx.A), {road: 9})
    classes = pd.read_parquet(other / "classes.parquet")
    lines = ["b_class_id,a_class_id"] + [f"{c},{c}" for c in classes.class_id if c not in (9, 25, 27)]
    lines += ["9,8", "27,"]  # sidewalk -> road; car left out; person (25) not listed: unmapped
    (tmp_path / "map.csv").write_text("\n".join(lines) + "\n")
    result = cons.compare(fine_coarse, other, class_map=tmp_path / "map.csv", workers=1, bootstrap=0)
    assert result.unmatched["only_in_a"] == [fx.V] and result.unmatched["only_in_b"] == []
    assert result.class_map["left_out"] == [{"class_id": 27, "name": "car"}]
    assert result.class_map["unmapped"] == [{"class_id": 25, "name": "person"}]
    compared = agree = dropped = 0
    for scene, renamed in ((fx.scene_a(), True), (fx.scene_b(), False)):
        f = fx.labels_of(scene)
        a = np.where(f == 0, 0, f + 1)  # labelId 0 'unlabeled' is no annotation
        b = f + 1
        if renamed:
            b[f == 7] = 9
        drop = np.isin(b, [25, 27])
        b = np.where(b == 9, 8, np.where(b == 1, 0, b))
        labelled = ((a != 0) | (b != 0)) & ~drop
        compared += labelled.sum()
        agree += (labelled & (a == b)).sum()
        dropped += drop.sum()
    assert result.figures["pixels"]["compared"] == compared
    assert result.figures["pixels"]["unmapped"] == dropped
    assert result.figures["pixel_agreement"] == pytest.approx(agree / compared)
    assert agree < compared  # image B's own sidewalk now reads as road


def test_vocabularies_that_differ_need_a_class_map(fine_coarse, tmp_path):
    other = copy_dataset(fine_coarse, tmp_path / "b")
    classes = pd.read_parquet(other / "classes.parquet")
    classes.loc[classes.class_id == 8, "name"] = "carriageway"
    classes.to_parquet(other / "classes.parquet", index=False)
    with pytest.raises(ValueError, match="class map"):
        cons.compare(fine_coarse, other, workers=1, bootstrap=0)
    assert run("analyze", "consistency", fine_coarse, other).exit_code == 2


# --------------------------------------------------------------------------- known edits on real maps


@pytest.fixture(scope="module")
def real(samples, tmp_path_factory):
    root = require(samples / "cityscapes")
    out = tmp_path_factory.mktemp("real") / "u"
    convert(cityscapes, root, out, workers=2)
    return out


def known_edits(ds, image_id, r=3):
    """B = A with three edits of known size on disjoint regions: a car instance renamed to truck
    (naming), another instance erased to unlabeled (quantity), a third region dilated by r pixels
    (segmentation quality). Returns (seg_b, lut_b, expected counts)."""
    seg = ds.segment_map(image_id)
    lut = ds.class_lookup(image_id)
    rows = ds.segments[(ds.segments.image_id == image_id) & (ds.segments.layer == "objects")]
    inst = rows[rows.is_instance].sort_values(["area", "segment_id"], ascending=[False, True])
    assert len(inst) >= 3, f"{image_id}: needs three instances"
    rename, erase, grow = (int(s) for s in inst.segment_id.iloc[[0, 1, 2]])
    seg_b = seg.copy()
    lut_b = lut.copy()
    lut_b[rename] = 28  # truck (labelId 27)
    seg_b[seg == erase] = 0
    grown = ndimage.binary_dilation(seg == grow, iterations=r) & ~(seg == grow)
    keep = ~np.isin(seg, [rename, erase])  # the edits stay disjoint
    grown &= keep
    seg_b[grown] = grow
    expected = {
        "naming": int((seg == rename).sum()),
        "quantity": int((seg == erase).sum()),
        "segmentation_quality": int((grown & (lut[seg] != lut[grow])).sum()),
    }
    return seg, lut, seg_b, lut_b, expected, (rename, erase, grow)


def test_known_edits_on_real_cityscapes_maps(real):
    ds = segdata.open(real)
    for image_id in ds.images.image_id:
        seg, lut, seg_b, lut_b, expected, (rename, erase, grow) = known_edits(ds, image_id)
        # each edit alone, then the three together
        assert cons.count_image([seg, seg], [lut, lut_b]).breakdown.tolist() == [0, expected["naming"], 0]
        erased = np.where(seg == erase, 0, seg).astype(seg.dtype)
        assert cons.count_image([seg, erased], [lut, lut]).breakdown.tolist() == [0, 0, expected["quantity"]]
        grown = np.where((seg_b == grow) & (seg != grow), grow, seg).astype(seg.dtype)
        assert cons.count_image([seg, grown], [lut, lut]).breakdown.tolist() == [expected["segmentation_quality"], 0, 0]
        got = cons.count_image([seg, seg_b], [lut, lut_b]).breakdown.tolist()
        assert got == [expected["segmentation_quality"], expected["naming"], expected["quantity"]], image_id
        assert min(expected.values()) > 0


def test_known_edits_through_the_dataset_pipeline(real, tmp_path):
    ds = segdata.open(real)
    image_id = "frankfurt_000000_000576"
    seg, lut, seg_b, lut_b, expected, (rename, erase, grow) = known_edits(ds, image_id)
    other = copy_dataset(real, tmp_path / "edited")
    edit_image(other, image_id, "objects", seg_b, {rename: 28})
    result = cons.compare(real, other, workers=2, bootstrap=0)
    row = result.per_image.set_index("image_id").loc[image_id]
    assert {c: int(row[c]) for c in cons.CATEGORIES} == expected
    others = result.per_image[result.per_image.image_id != image_id]
    assert (others[list(cons.CATEGORIES)].to_numpy() == 0).all()
    assert (others.compared == others.agree).all()
    # Cityscapes' own 'unlabeled' (class 1) counts as no annotation, like the erased pixels
    a = np.where(lut[seg] == 1, 0, lut[seg])
    b = np.where(lut_b[seg_b] == 1, 0, lut_b[seg_b])
    compared = int(((a != 0) | (b != 0)).sum())
    changed = expected["naming"] + expected["quantity"] + expected["segmentation_quality"]
    assert int(row.compared) == compared and int(row.agree) == compared - changed
    assert changed == int(((a != b) & ((a != 0) | (b != 0))).sum())


# --------------------------------------------------------------------------- polygons against labelIds


def rasterise(polygons_json: Path) -> np.ndarray:
    """labelIds drawn from _polygons.json as cityscapesScripts' json2labelImg does: background
    'unlabeled' (0), polygons in file order (later on top), '<x>group' as x when not a label of
    its own, labels with id < 0 (license plate) skipped."""
    table = {label.name: label.id for label in cityscapes.LABELS}
    data = json.loads(polygons_json.read_text())
    img = Image.new("L", (data["imgWidth"], data["imgHeight"]), 0)
    draw = ImageDraw.Draw(img)
    for obj in data["objects"]:
        if obj.get("deleted"):
            continue
        label = obj["label"]
        if label not in table and label.endswith("group"):
            label = label[: -len("group")]
        if table[label] < 0:
            continue
        draw.polygon([tuple(p) for p in obj["polygon"]], fill=table[label])
    return np.asarray(img).astype(np.int64)


def test_labelids_against_their_rasterised_polygons(samples, real, tmp_path):
    root = require(samples / "cityscapes")
    ds = segdata.open(real)
    src = tmp_path / "raster"
    totals = np.zeros(4)
    tp, fp, fn = (np.zeros(34) for _ in range(3))
    for image_id, split in zip(ds.images.image_id, ds.images.split):
        city = image_id.split("_")[0]
        folder = root / "gtFine" / split / city
        raster = rasterise(require(folder / f"{image_id}_gtFine_polygons.json"))
        fx.write_image(src, split, city, image_id, raster, color=False)
        png = np.asarray(Image.open(require(folder / f"{image_id}_gtFine_labelIds.png"))).astype(np.int64)
        labelled = (png != 0) | (raster != 0)
        ev = ~np.isin(png, list(CITYSCAPES_IGNORE)) & ~np.isin(raster, list(CITYSCAPES_IGNORE))
        totals += [labelled.sum(), (labelled & (png == raster)).sum(), ev.sum(), (ev & (png == raster)).sum()]
        gt_ok = ~np.isin(png, list(CITYSCAPES_IGNORE))
        for c in set(range(34)) - CITYSCAPES_IGNORE:
            tp[c] += ((png == c) & (raster == c) & gt_ok).sum()
            fp[c] += ((png != c) & (raster == c) & gt_ok).sum()
            fn[c] += ((png == c) & (raster != c) & gt_ok).sum()
    out = tmp_path / "raster-u"
    convert(cityscapes, src, out, workers=2)
    result = cons.compare(real, out, workers=2, bootstrap=0)
    assert result.figures["pixel_agreement"] == pytest.approx(totals[1] / totals[0], abs=1e-12)
    assert result.figures["pixel_agreement_excluding_void"] == pytest.approx(totals[3] / totals[2], abs=1e-12)
    with np.errstate(invalid="ignore"):
        iou = tp / (tp + fp + fn)
    keep = sorted(set(range(34)) - CITYSCAPES_IGNORE)
    assert result.figures["miou"] == pytest.approx(np.nanmean(iou[keep]), abs=1e-12)
    assert 0.95 < result.figures["pixel_agreement"] < 1.0  # nearly the same: rasterisers differ on edges


# --------------------------------------------------------------------------- the generated consistency set


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    summary = generate_ade20k_consistency(root / "src", 12, image_size=(240, 320), parts=False, workers=2)
    convert(ade20k, summary.path, root / "u", workers=2)
    return summary, root / "u"


def test_breakdown_equals_the_generators_exact_edit_counts(generated):
    summary, path = generated
    result = cons.compare(path, workers=2, bootstrap=0)
    got = result.per_image.set_index("image_id")
    for image in summary.images:
        row = got.loc[image.stem]
        assert int(row.compared) == image.labelled_either
        assert (int(row.segmentation_quality), int(row.naming), int(row.quantity)) == (
            image.segmentation_quality,
            image.naming,
            image.quantity,
        )
    assert result.figures["pixel_agreement"] == pytest.approx(summary.agreement, abs=1e-15)


def test_backends_give_identical_counts_on_the_generated_pairs(generated):
    """The C kernel and the numpy reference on the generated re-annotations (every category
    present), with the band; the numpy breakdown equals the generator's exact counts."""
    if cons.counting._runs_ext is None:
        pytest.skip("the segdata._runs extension was not compiled: there is no native backend to compare with numpy")
    summary, path = generated
    ds = segdata.open(path)
    result = cons.compare(path, workers=1, bootstrap=0)
    for image in summary.images:
        maps = [ds.segment_map(image.stem, layer) for layer in ("objects", "reannotation")]
        luts = result.luts[image.stem]
        native = cons.count_image(maps, luts, boundary_px=3, backend="native")
        numpy_ = cons.count_image(maps, luts, boundary_px=3, backend="numpy")
        assert native.pairs.tolist() == numpy_.pairs.tolist()
        assert (
            native.breakdown.tolist()
            == numpy_.breakdown.tolist()
            == [image.segmentation_quality, image.naming, image.quantity]
        )


def test_default_calibration_lands_near_the_published_figures(tmp_path):
    """Full-size images: the measured agreement is the generator's exactly and near 82.4%; the
    breakdown equals the generator's to within 0.1 point (the definitional differences of
    docs/consistency.md: objects that boundary edits removed entirely count as missing; an
    object renamed and also grown over its neighbours by more than its own size counts as
    segmentation quality)."""
    summary = generate_ade20k_consistency(tmp_path / "src", 4, image_size=(768, 1024), parts=False, workers=2)
    convert(ade20k, summary.path, tmp_path / "u", workers=2)
    result = run("analyze", "consistency", tmp_path / "u", "--json", "--bootstrap", "100")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["pixel_agreement"] == pytest.approx(summary.agreement, abs=1e-15)
    assert report["pixel_agreement"] == pytest.approx(0.824, abs=0.01)
    for category, target in summary.fractions().items():
        assert report["breakdown"][category] == pytest.approx(target, abs=0.001)
        assert report["breakdown"][category] == pytest.approx(cons.ADE20K_REFERENCE[category], abs=0.01)
    assert sum(report["breakdown"][c] for c in cons.CATEGORIES) == pytest.approx(1 - report["pixel_agreement"])


def test_three_annotations_pairwise_and_consensus(tmp_path):
    summary = generate_ade20k_consistency(tmp_path / "src", 3, image_size=(120, 160), parts=False)
    base = summary.reannotation_dir.parent
    shutil.copytree(summary.reannotation_dir, base / "second")  # a second, identical re-annotation
    convert(ade20k, summary.path, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert {"objects", "reannotation", "second"} <= set(ds.layers)
    result = cons.compare(ds, layers="objects,reannotation,second", workers=1, bootstrap=0)
    pw = result.pairwise
    assert pw["annotations"] == ["objects", "reannotation", "second"]
    assert pw["pixel_agreement"][1][2] == pw["pixel_agreement"][2][1] == 1.0
    assert pw["pixel_agreement"][0][1] == pytest.approx(summary.agreement)
    # two identical re-annotations outvote the original everywhere
    by = {c["annotation"]: c for c in result.consensus}
    assert by["reannotation"]["pixel_agreement"] == by["second"]["pixel_agreement"] == 1.0
    assert by["objects"]["pixel_agreement"] == pytest.approx(summary.agreement)
    report = run(
        "analyze",
        "consistency",
        tmp_path / "u",
        "--layers",
        "objects,reannotation,second",
        "--json",
        "--bootstrap",
        "0",
    )
    assert json.loads(report.output)["pairwise"]["annotations"] == ["objects", "reannotation", "second"]


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_equals_scipy_bca_over_a_naive_loop_of_the_same_resamples(generated):
    """Each resample's figures from the concatenated class-pair tables of its images (counted
    independently at full resolution), the images drawn as segdata.bootstrap draws them (one
    ``rng.integers(0, n, n)`` per resample); scipy.stats.bootstrap(method="BCa") turns them into
    intervals with its own jackknife over the images. (Before BCa this test pinned the
    percentile bounds of the same kind of loop.)"""
    _, path = generated
    result = cons.compare(path, workers=1, bootstrap=60, seed=5)
    assert (result.ci["method"], result.ci["bootstrap"], result.ci["seed"]) == ("bca", 60, 5)
    ds = segdata.open(path)
    per_image = []  # per image: its class-pair table, from an independent full-resolution count
    for image_id in result.per_image.image_id:
        la, lb = result.luts[image_id]
        a = la[ds.segment_map(image_id, "objects")]
        b = lb[ds.segment_map(image_id, "reannotation")]
        key, n = np.unique(a.astype(np.int64) * 10000 + b, return_counts=True)
        per_image.append(np.stack([key // 10000, key % 10000, n], axis=1))
    n = len(per_image)
    # a resample that holds none of a class's reference pixels leaves the class out (iou_of seen=)
    seen = seen_classes(np.concatenate(per_image), result.space)

    def figures(images):
        return cons.pair_figures(np.concatenate([per_image[i] for i in images]), result.space, seen=seen)

    rng = np.random.default_rng(5)
    draws = [rng.integers(0, n, size=n) for _ in range(60)]
    keys = ("pixel_agreement", "miou", "miou_symmetric", "kappa")
    values = {key: [] for key in keys}
    for draw in draws:
        f = figures(draw)
        for key in keys:
            values[key].append(f[key])
    for key in keys:
        ref = stats.bootstrap(
            (np.arange(n),),
            lambda images, key=key: figures(images)[key],
            vectorized=False,
            n_resamples=0,
            method="BCa",
            bootstrap_result=SimpleNamespace(bootstrap_distribution=np.array(values[key])),
        )
        want = [float(ref.confidence_interval.low), float(ref.confidence_interval.high)]
        assert result.ci[key] == pytest.approx(want, abs=1e-12), key


def test_bca_intervals_on_the_generated_set_hold_their_estimates(generated):
    """1,000 resamples of the 12 generated pairs: every interval of the report (overall, breakdown,
    band, and each bucket's of the ceiling) holds its own point estimate."""
    _, path = generated
    result = cons.compare(path, workers=1, bootstrap=1000, seed=0)
    point = dict(result.figures)
    point.update({c: result.breakdown[c] for c in cons.CATEGORIES})
    point["band_agreement"] = result.boundary["band"]["agreement"]
    point["interior_agreement"] = result.boundary["interior"]["agreement"]
    checked = 0
    for key, (low, high) in ((k, v) for k, v in result.ci.items() if isinstance(v, list)):
        assert low <= point[key] <= high, (key, point[key], low, high)
        checked += 1
    assert checked == 11
    for name, bucket in result.ceiling["buckets"]["values"].items():
        for figure in ("pixel_accuracy", "miou"):
            low, high = bucket["ci"][figure]
            if bucket[figure] is None:
                assert low is None and high is None
            else:
                assert low <= bucket[figure] <= high, (name, figure)
    assert result.ceiling["ci"]["method"] == "bca"
    assert result.ceiling["ci"]["miou"] == result.ci["miou"]


# --------------------------------------------------------------------------- engines


def test_inline_process_pool_and_dask_give_identical_reports(generated):
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    _, path = generated
    inline = cons.compare(path, workers=1, bootstrap=50).report()
    pool = cons.compare(path, workers=2, bootstrap=50).report()
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            on_dask = cons.compare(path, executor=client.get_executor(), workers=2, bootstrap=50).report()
        result = run(
            "analyze", "consistency", path, "--scheduler", cluster.scheduler_address, "--json", "--bootstrap", "50"
        )
    assert result.exit_code == 0, result.output
    assert inline == pool == on_dask == json.loads(result.output)


# --------------------------------------------------------------------------- CLI, ceiling file, plots


def test_cli_json_ceiling_file_and_plots(fine_coarse, tmp_path):
    result = run(
        "analyze",
        "consistency",
        fine_coarse,
        "--layers",
        "objects,coarse",
        "--json",
        "--bootstrap",
        "30",
        "--ceiling-out",
        tmp_path / "ceiling.json",
        "--plots",
        tmp_path / "plots",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in (
        "images",
        "pixel_agreement",
        "pixel_agreement_excluding_void",
        "miou",
        "per_class",
        "kappa",
        "boundary",
        "breakdown",
        "ci",
        "ceiling",
        "unmatched",
        "per_image",
    ):
        assert key in report, key
    assert set(report["boundary"]) == {"k", "band", "interior"}
    assert {"class_id", "name", "iou"} <= set(report["per_class"][0])
    assert set(cons.CATEGORIES) <= set(report["breakdown"])
    ceiling = cons.read_ceiling(tmp_path / "ceiling.json")
    assert ceiling.pixel_accuracy == report["pixel_accuracy"] and ceiling.miou == report["miou"]
    assert ceiling.reference["layer"] == "objects" and ceiling.annotation["layer"] == "coarse"
    assert list(ceiling.buckets) == report["ceiling"]["buckets"]["order"]
    # format version 2 added tp, fp, fn (the set of columns was the first five before)
    assert set(ceiling.classes.columns) == {"class_id", "name", "bucket", "pixels", "iou", "tp", "fp", "fn"}
    assert ceiling.version == 2 and report["ceiling"]["format_version"] == 2
    names = {Path(p).name for p in report["plots"]}
    assert {"breakdown.png", "breakdown.svg", "class_iou_vs_frequency.png"} <= names
    assert any(n.startswith("disagreement_") for n in names)
    text = run("analyze", "consistency", fine_coarse, "--layers", "objects,coarse", "--bootstrap", "0")
    assert text.exit_code == 0 and "pixel agreement" in text.output and "ceiling" in text.output


def test_cli_unlabeled_classes(fine_coarse):
    """--unlabeled 1,8: Cityscapes 'unlabeled' (labelId 0) and 'road' (labelId 7) both mean no
    annotation; the agreement equals a count with both mapped to 0 in the decoded label maps."""
    result = run(
        "analyze",
        "consistency",
        fine_coarse,
        "--layers",
        "objects,coarse",
        "--unlabeled",
        "1,8",
        "--bootstrap",
        "0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    compared = agree = 0
    for _image_id, scene in ((fx.A, fx.scene_a()), (fx.V, fx.scene_v())):
        f, c = fx.labels_of(scene), fx.coarse_of(scene)
        f, c = np.where(np.isin(f, [0, 7]), 0, f), np.where(np.isin(c, [0, 7]), 0, c)
        labelled = (f != 0) | (c != 0)
        compared += int(labelled.sum())
        agree += int((labelled & (f == c)).sum())
    assert report["settings"]["unlabeled_classes"] == [1, 8]
    assert report["pixel_agreement"] == pytest.approx(agree / compared)
    bad = run("analyze", "consistency", fine_coarse, "--layers", "objects,coarse", "--unlabeled", "road")
    assert bad.exit_code == 2 and "--unlabeled takes class ids" in bad.output


def test_ceiling_v2_counts_equal_a_per_pixel_count(generated, tmp_path):
    """tp, fp, fn of every class of the ceiling file against a per-pixel count of the decoded
    class maps (A's evaluable pixels: labelled, not ignore); ceiling_iou_for of single classes
    equals the file's per-class IoU, and of a merged pair the per-pixel sums' IoU, at most the
    IoU of the two classes merged in both maps (a lower bound)."""
    _, path = generated
    result = cons.compare(path, workers=1, bootstrap=0)
    cons.write_ceiling(tmp_path / "c.json", result)
    ceiling = cons.read_ceiling(tmp_path / "c.json")
    assert ceiling.version == cons.CEILING_VERSION == 2
    ds, space = segdata.open(path), result.space
    k = len(space)
    tp, fp, fn = np.zeros(k, np.int64), np.zeros(k, np.int64), np.zeros(k, np.int64)
    maps = []
    for image_id in result.per_image.image_id:
        la, lb = result.luts[image_id]
        a = la[ds.segment_map(image_id, "objects")].astype(np.int64)
        b = lb[ds.segment_map(image_id, "reannotation")].astype(np.int64)
        ev = (a != 0) & ~space.ignore[a]
        a, b = a[ev], b[ev]
        maps.append((a, b))
        for c in np.union1d(a, b):
            tp[c] += np.count_nonzero((a == c) & (b == c))
            fn[c] += np.count_nonzero((a == c) & (b != c))
            fp[c] += np.count_nonzero((a != c) & (b == c))
    index = {int(c): i for i, c in enumerate(space.class_ids)}
    rows = [index[int(c)] for c in ceiling.classes["class_id"]]
    assert ceiling.classes["tp"].tolist() == tp[rows].tolist()
    assert ceiling.classes["fp"].tolist() == fp[rows].tolist()
    assert ceiling.classes["fn"].tolist() == fn[rows].tolist()
    assert tp[rows].sum() > 0 and fp[rows].sum() > 0 and fn[rows].sum() > 0
    assert (ceiling.classes["pixels"] == ceiling.classes["tp"] + ceiling.classes["fn"]).all()

    ids = ceiling.classes["class_id"].tolist()
    single = cons.ceiling_iou_for(ceiling, [[c] for c in ids])
    np.testing.assert_array_equal(single, ceiling.classes["iou"].to_numpy())
    # the two classes B confuses most often with each other, merged
    conf = {}
    for a, b in maps:
        for x, y in zip(a[a != b].tolist(), b[a != b].tolist()):
            if x in rows and y in rows:
                conf[(x, y)] = conf.get((x, y), 0) + 1
    x, y = max(conf, key=conf.get)
    merged = cons.ceiling_iou_for(ceiling, [[int(space.class_ids[x]), int(space.class_ids[y])]])[0]
    assert merged == pytest.approx((tp[x] + tp[y]) / (tp[x] + tp[y] + fp[x] + fp[y] + fn[x] + fn[y]), abs=1e-15)
    inter = union = 0
    for a, b in maps:
        ma, mb = np.isin(a, [x, y]), np.isin(b, [x, y])
        inter += np.count_nonzero(ma & mb)
        union += np.count_nonzero(ma | mb)
    assert merged < inter / union


def test_ceiling_v1_files_are_still_read(tmp_path):
    """A version 1 file (no tp/fp/fn): columns NaN; single-class groups get the file's iou,
    merged groups and classes it lacks NaN."""
    v1 = {
        "format": "segdata-ceiling",
        "format_version": 1,
        "reference": {"dataset": "a", "path": "/a", "layer": "objects"},
        "annotation": {"dataset": "a", "path": "/a", "layer": "reannotation"},
        "images": 2,
        "split": None,
        "pixel_accuracy": 0.8,
        "miou": 0.5,
        "ci": {"level": 0.95, "bootstrap": 10, "seed": 0, "pixel_accuracy": [0.7, 0.9], "miou": [0.4, 0.6]},
        "buckets": {"rule": "r", "by": "train_images", "order": ["rare"], "values": {"rare": {"miou": 0.5}}},
        "classes": [
            {"class_id": 3, "name": "wall", "bucket": "rare", "pixels": 10, "iou": 0.75},
            {"class_id": 8, "name": "door", "bucket": "rare", "pixels": 0, "iou": None},
        ],
    }
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    ceiling = cons.read_ceiling(tmp_path / "v1.json")
    assert ceiling.version == 1 and ceiling.miou == 0.5 and ceiling.buckets == {"rare": {"miou": 0.5}}
    assert ceiling.classes[["tp", "fp", "fn"]].isna().all().all()
    got = cons.ceiling_iou_for(ceiling, [[3], [8], [3, 8], [4]])
    assert got[0] == 0.75 and np.isnan(got[1:]).all()
    v1["format_version"] = 2  # a version 2 file must carry the counts
    (tmp_path / "v2.json").write_text(json.dumps(v1))
    with pytest.raises(InputError, match="lacks 'tp'"):
        cons.read_ceiling(tmp_path / "v2.json")


def test_ceiling_file_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        cons.read_ceiling(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="not a segdata ceiling"):
        cons.read_ceiling(tmp_path / "x.json")
    (tmp_path / "v.json").write_text('{"format": "segdata-ceiling", "format_version": 99}')
    with pytest.raises(InputError, match="version 99"):
        cons.read_ceiling(tmp_path / "v.json")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--layers", "objects"], "comparing needs two"),
        (["--layers", "objects,nope"], "no layer 'nope'"),
        (["--split", "nope", "--layers", "objects,coarse"], "no split"),
    ],
)
def test_cli_usage_errors(fine_coarse, args, message):
    result = run("analyze", "consistency", fine_coarse, *args)
    assert result.exit_code == 2
    assert message in result.output

"""Annotation consistency on class regions, and a dataset compared with itself.

Class-region layers (segments with ``is_instance`` false: SceneParsing, VOC class maps,
Cityscapes stuff) hold one segment per class; the breakdown counts their connected components
(8-connectivity) as the objects. Edits of known size, each size computed here independently with
scipy on the decoded class map: an erased component is quantity, a renamed one naming, a dilated
one segmentation quality, even where the class survives elsewhere in the image.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage

import segdata
from segdata.analyses import consistency as cons
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.synthetic import generate_ade20k_challenge
from tests.conftest import require

SQUARE = np.ones((3, 3), dtype=bool)  # 8-connectivity


def components(labels: np.ndarray, c: int) -> tuple[np.ndarray, int]:
    return ndimage.label(labels == c, structure=SQUARE)


def convert_with(src_root: Path, dst: Path, edits: dict[str, np.ndarray]) -> Path:
    """Copy an ADEChallengeData2016 folder, overwrite some annotations (``{relative path: uint8
    class map}``), convert the copy; returns the converted dataset."""
    root = dst / "ADEChallengeData2016"
    shutil.copytree(src_root, root)
    for rel, labels in edits.items():
        Image.fromarray(labels.astype(np.uint8), mode="L").save(root / rel)
    convert(ade20k, root, dst / "u", workers=1)
    return dst / "u"


def breakdown_of(result, image_id: str) -> dict:
    row = result.per_image.set_index("image_id").loc[image_id]
    return {c: int(row[c]) for c in cons.CATEGORIES}


# --------------------------------------------------------------------------- regions built in code

ANNOTATION = "annotations/training/ADE_train_00000001.png"
IMAGE_ID = "ADE_train_00000001"


def designed_map() -> np.ndarray:
    """60 x 80 class map: background class 1; classes 5, 7 and 9 in two components each; a strip
    of 0 ("other", unlabeled)."""
    m = np.ones((60, 80), np.uint8)
    m[5:15, 5:20] = 5  # P: 150 pixels, erased in B
    m[40:50, 55:75] = 5  # Q: class 5 survives elsewhere
    m[5:15, 55:70] = 7  # R: 150 pixels, renamed in B
    m[42:57, 5:20] = 7  # S
    m[22:32, 30:45] = 9  # T: dilated in B
    m[50:58, 32:42] = 9  # U
    m[57:, 50:] = 0
    return m


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    """A SceneParsing-layout source (generated, then one annotation replaced by designed_map) and
    its conversion: a class-region layer."""
    base = tmp_path_factory.mktemp("regions")
    src = generate_ade20k_challenge(base / "gen", 2, image_size=((60, 80), (60, 80)), val_fraction=0.5, seed=1)
    a = convert_with(src, base / "a", {ANNOTATION: designed_map()})
    ds = segdata.open(a)
    assert not ds.segments["is_instance"].any()  # class regions, no instances
    return base / "a" / "ADEChallengeData2016", a


def edited(regions, tmp_path, labels) -> cons.ConsistencyResult:
    src, a = regions
    b = convert_with(src, tmp_path, {ANNOTATION: labels})
    return cons.compare(a, b, workers=1, bootstrap=0)


@pytest.mark.parametrize(
    "cls,new_class,category",
    [
        (5, 0, "quantity"),  # erase P: class 5 survives in Q
        (7, 12, "naming"),  # rename R to class 12, not in the image: class 7 survives in S
    ],
)
def test_an_erased_or_renamed_component_is_its_own_object(regions, tmp_path, cls, new_class, category):
    a = designed_map()
    comps, n = components(a, cls)
    assert n == 2
    edit = comps == 1
    result = edited(regions, tmp_path, np.where(edit, new_class, a))
    expected = dict.fromkeys(cons.CATEGORIES, 0)
    expected[category] = int(edit.sum())
    assert breakdown_of(result, IMAGE_ID) == expected
    assert int(edit.sum()) == 150


def test_a_dilated_component_is_segmentation_quality_next_to_the_other_edits(regions, tmp_path):
    """The three edits in one image: each category holds exactly its edit (counted as whole
    class regions, the erased and renamed components were segmentation quality)."""
    a = designed_map()
    erased = components(a, 5)[0] == 1
    renamed = components(a, 7)[0] == 1
    grown = components(a, 9)[0] == 1
    ring = ndimage.binary_dilation(grown, structure=SQUARE, iterations=2) & (a != 9)
    b = np.where(erased, 0, np.where(renamed, 12, np.where(ring, 9, a)))
    result = edited(regions, tmp_path, b)
    expected = {"segmentation_quality": int(ring.sum()), "naming": int(renamed.sum()), "quantity": int(erased.sum())}
    assert breakdown_of(result, IMAGE_ID) == expected
    assert expected["segmentation_quality"] == 14 * 19 - 150
    # only the breakdown sees objects: agreement counted per pixel on the decoded maps
    changed = int((a != b).sum())
    row = result.per_image.set_index("image_id").loc[IMAGE_ID]
    assert int(row.compared) - int(row.agree) == changed == sum(expected.values())


def test_splitting_leaves_pairs_and_band_unchanged(regions, tmp_path):
    """Components relabelled: the class pairs and the boundary band are those of the segment maps
    (components of one segment never touch), whichever backend counts."""
    a = designed_map()
    b = np.where(components(a, 5)[0] == 1, 0, a)
    result = edited(regions, tmp_path, b)
    seg_a, seg_b = (segdata.open(p).segment_map(IMAGE_ID) for p in (regions[1], tmp_path / "u"))
    lut_a, lut_b = result.luts[IMAGE_ID]
    whole_a, whole_b = result.whole[IMAGE_ID]
    assert whole_a is not None and not whole_a.any()
    split_a, split_b = cons.split_regions(seg_a, lut_a, whole_a), cons.split_regions(seg_b, lut_b, whole_b)
    assert int(split_a[0].max()) > int(seg_a.max())  # class 5, 7 and 9 were split
    assert np.array_equal(cons.boundary_band([seg_a, seg_b], 3), cons.boundary_band([split_a[0], split_b[0]], 3))
    assert np.array_equal(split_a[1][split_a[0]], lut_a[seg_a])  # no pixel changes class
    for backend in ("numpy", "native") if cons.counting._runs_ext is not None else ("numpy",):
        whole = cons.count_image([seg_a, seg_b], [lut_a, lut_b], backend=backend)
        parts = cons.count_image([split_a[0], split_b[0]], [split_a[1], split_b[1]], backend=backend)
        assert np.array_equal(whole.pairs, parts.pairs)
        assert whole.breakdown.tolist() == [150, 0, 0]  # the region rule, kept for whole segments
        assert parts.breakdown.tolist() == [0, 0, 150]


# --------------------------------------------------------------------------- real SceneParsing maps


def test_known_edits_on_real_sceneparsing_maps(samples, tmp_path):
    """Real ADEChallengeData2016 annotations: in one image, erase a component of a class that has
    another component, rename a component of another such class to a class absent from the
    image, dilate a third component by 2 pixels; the breakdown equals each edit's size."""
    src = require(samples / "ade20k_challenge" / "ADEChallengeData2016")
    rel = "annotations/training/ADE_train_00000001.png"
    labels = np.asarray(Image.open(require(src / rel))).astype(np.int64)
    split = {}  # class -> its components, largest first
    for c in np.unique(labels[labels > 0]).tolist():
        comps, n = components(labels, c)
        sizes = np.bincount(comps.ravel())[1:]
        split[c] = [comps == k + 1 for k in np.argsort(-sizes, kind="stable")]
    several = sorted((c for c in split if len(split[c]) > 1), key=lambda c: -split[c][0].sum())
    assert len(several) >= 2, "the sample needs two classes in several components"
    erase_class, rename_class = several[:2]
    erased, renamed = split[erase_class][0], split[rename_class][0]
    absent = min(set(range(1, 151)) - set(split))
    touched = ndimage.binary_dilation(erased | renamed, structure=SQUARE, iterations=3)
    candidates = [
        (c, m)
        for c in split
        if c not in (erase_class, rename_class)
        for m in split[c]
        if m.sum() >= 1000 and not (m & touched).any()
    ]
    grow_class, grown = max(candidates, key=lambda cm: int(cm[1].sum()))
    ring = ndimage.binary_dilation(grown, structure=SQUARE, iterations=2) & (labels != grow_class) & ~erased & ~renamed
    edited_labels = np.where(erased, 0, np.where(renamed, absent, np.where(ring, grow_class, labels)))
    a_dir = tmp_path / "a"
    convert(ade20k, src, a_dir, workers=1)
    assert not segdata.open(a_dir).segments["is_instance"].any()
    b_dir = convert_with(src, tmp_path / "b", {rel: edited_labels})
    result = cons.compare(a_dir, b_dir, workers=2, bootstrap=0)
    expected = {"segmentation_quality": int(ring.sum()), "naming": int(renamed.sum()), "quantity": int(erased.sum())}
    assert min(expected.values()) > 0
    assert breakdown_of(result, "ADE_train_00000001") == expected
    others = result.per_image[result.per_image.image_id != "ADE_train_00000001"]
    assert (others[list(cons.CATEGORIES)].to_numpy() == 0).all() and (others.compared == others.agree).all()


# --------------------------------------------------------------------------- a dataset against itself


@pytest.fixture(scope="module")
def challenge(tmp_path_factory):
    base = tmp_path_factory.mktemp("self")
    src = generate_ade20k_challenge(base / "gen", 4, image_size=((60, 80), (90, 120)), val_fraction=0.25, seed=3)
    convert(ade20k, src, base / "u", workers=1)
    return base / "u"


def assert_perfect(report_or_figures, breakdown_pixels):
    f = report_or_figures
    assert f["pixel_agreement"] == 1.0 and f["pixel_agreement_excluding_void"] == 1.0
    assert f["pixel_accuracy"] == 1.0 and f["miou"] == 1.0 and f["miou_symmetric"] == 1.0
    assert breakdown_pixels == {"segmentation_quality": 0, "naming": 0, "quantity": 0}


@pytest.mark.parametrize("how", ["same object", "same path", "layers objects,objects"])
def test_a_dataset_compared_with_itself_agrees_fully(challenge, how):
    ds = segdata.open(challenge)
    if how == "same object":
        result = cons.compare(ds, ds, workers=1, bootstrap=10)
    elif how == "same path":
        result = cons.compare(challenge, challenge, workers=1, bootstrap=10)
    else:
        result = cons.compare(ds, layers="objects,objects", workers=1, bootstrap=10)
    assert_perfect(result.figures, result.breakdown["pixels"])
    labelled = sum(int((ds.semantic(i) != 0).sum()) for i in ds.images.image_id)
    assert result.figures["pixels"]["compared"] == result.figures["pixels"]["agree"] == labelled
    present = result.per_class[result.per_class.pixels_a > 0]
    assert len(present) > 0 and (present.iou == 1.0).all()


def test_cli_compares_a_dataset_with_itself(challenge):
    result = CliRunner().invoke(
        main, ["analyze", "consistency", str(challenge), str(challenge), "--json", "--bootstrap", "10"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert_perfect(report, report["breakdown"]["pixels"])
    layers = CliRunner().invoke(
        main, ["analyze", "consistency", str(challenge), "--layers", "objects,objects", "--json", "--bootstrap", "0"]
    )
    assert layers.exit_code == 0, layers.output
    assert json.loads(layers.output)["pixel_agreement"] == 1.0

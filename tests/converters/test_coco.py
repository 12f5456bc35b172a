"""COCO converter and COCO-panoptic exporter: real samples (SEGDATA_SAMPLES) and byte-exact fixtures.

Expected values are computed independently of segdata: masks with pycocotools' own COCO API
(``annToMask``), panoptic ids with Pillow and numpy straight from the PNGs, never through
segdata.maskio or the converter's helpers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools.coco import COCO

import segdata
from segdata.convert import convert
from segdata.converters import coco
from segdata.validate import validate
from tests.conftest import require
from tests.fixtures import coco as fx

PANOPTIC_CATEGORIES = "coco/annotations/panoptic_coco_categories.json"
# pycocotools 2.0 decodes through np.array(copy=False), which NumPy 2 warns about on every mask
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


# --------------------------------------------------------------------------- independent references


def coco_api(path: Path) -> COCO:
    """pycocotools' COCO index of a JSON, without its progress prints."""
    api = COCO()
    api.dataset = json.loads(Path(path).read_text())
    api.createIndex()
    return api


def painted(api: COCO, image_id: int, stuff_ids: frozenset = frozenset()) -> tuple[np.ndarray, dict, dict]:
    """The documented overlap rule, computed from annToMask: paint bottom to top (stuff first,
    then larger before smaller, equal sizes by ascending id). Returns the map of annotation ids
    (0 = none), the pre-resolution pixel counts and the visible counts per annotation id."""
    anns = api.loadAnns(api.getAnnIds(imgIds=[image_id], iscrowd=None))
    masks = {a["id"]: api.annToMask(a).astype(bool) for a in anns}
    pre = {aid: int(m.sum()) for aid, m in masks.items()}
    img = api.imgs[image_id]
    out = np.zeros((img["height"], img["width"]), np.int64)
    for aid in sorted(masks, key=lambda a: (a not in stuff_ids, -pre[a], a)):
        out[masks[aid]] = aid
    visible = {aid: int((out == aid).sum()) for aid in masks}
    return out, pre, visible


def source_map(ds, image_id: str) -> np.ndarray:
    """The unified segment map with each segment id replaced by its source_instance."""
    seg = ds.segments[(ds.segments.image_id == image_id) & (ds.segments.layer == "objects")]
    lut = np.zeros(int(seg.segment_id.max()) + 1 if len(seg) else 1, np.int64)
    lut[seg.segment_id.to_numpy()] = seg.source_instance.to_numpy()
    return lut[ds.segment_map(image_id)]


def png_ids(path: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two label maps are equal up to renumbering (0 stays 0)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (
        len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))
        and ((pairs[0] == 0) == (pairs[1] == 0)).all()
    )


# --------------------------------------------------------------------------- real samples: instances


@pytest.fixture(scope="module")
def coco_instances(samples, tmp_path_factory):
    root = samples / "coco"
    require(root / "annotations" / "instances_val2017.json")
    out = tmp_path_factory.mktemp("coco") / "unified"
    report = convert(coco, root, out, workers=2)
    return root, report, segdata.open(out)


def test_instances_one_row_per_annotation(coco_instances):
    root, report, ds = coco_instances
    doc = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    assert report.layout == "coco-instances"
    assert len(ds.images) == len(doc["images"]) == 79
    assert len(ds.segments) == len(doc["annotations"]) == 624
    by_id = {a["id"]: a for a in doc["annotations"]}
    for r in ds.segments.itertuples():
        a = by_id[r.source_instance]
        assert r.image_id == str(a["image_id"])
        assert r.class_id == a["category_id"]
        assert r.iscrowd == bool(a["iscrowd"])
        assert r.is_instance == (not a["iscrowd"])
        assert r.source_area == a["area"]  # COCO's area is kept as stated
    assert set(ds.classes.class_id) == {c["id"] for c in doc["categories"]}
    assert dict(zip(ds.classes.class_id, ds.classes.name))[90] == "toothbrush"
    assert ds.classes.is_thing.all()


def test_instances_pixels_before_resolution_equal_ann_to_mask(coco_instances):
    """Each annotation's pre-resolution pixels (area + lost) are pycocotools' annToMask, and the
    map is exactly the documented painting order applied to those masks."""
    root, _, ds = coco_instances
    api = coco_api(root / "annotations" / "instances_val2017.json")
    checked = 0
    for image_id in api.getImgIds():
        expected, pre, visible = painted(api, image_id)
        assert np.array_equal(source_map(ds, str(image_id)), expected)
        rows = ds.segments[ds.segments.image_id == str(image_id)]
        for r in rows.itertuples():
            assert r.area == visible[r.source_instance]
            assert r.area + int(r.pixels_lost) == pre[r.source_instance]
            checked += 1
    assert checked == 624


def test_coco_area_is_not_the_pixel_count(coco_instances):
    """COCO's `area` is kept as source_area; it is not the pixel count. The crowd RLE of image
    255165 states 9476 and decodes to 8603 pixels (SOURCE.md); polygon areas differ too."""
    root, _, ds = coco_instances
    api = coco_api(root / "annotations" / "instances_val2017.json")
    crowd = [a for a in api.loadAnns(api.getAnnIds(imgIds=[255165])) if a["iscrowd"]][0]
    assert crowd["area"] == 9476 and int(api.annToMask(crowd).sum()) == 8603
    seg = ds.segments
    pre = seg.area + seg.pixels_lost
    assert (pre != seg.source_area).mean() > 0.5  # most polygons rasterise to another count
    rel = ((pre - seg.source_area).abs() / seg.source_area)[~seg.iscrowd]
    assert 0.0 < rel.median() < 0.05 and rel.max() < 0.5


def test_instances_missing_images_are_problems_not_fatal(coco_instances):
    root, report, ds = coco_instances
    present = {p.stem.lstrip("0") for p in (root / "val2017").glob("*.jpg")}
    missing = ds.problems[ds.problems.problem.str.contains("image file missing")]
    assert len(missing) == 75 and set(missing.action) == {"converted"}
    files = dict(zip(ds.images.image_id, ds.images.file))
    assert files["397133"] == "val2017/000000397133.jpg"
    assert all(pd.isna(files[i]) == (i not in present) for i in files)
    image = ds.images.set_index("image_id").loc["101787"]  # no JPEG: its masks come from the JSON alone
    assert ds.segment_map("101787").shape == (image.height, image.width)
    assert validate(ds.path, workers=1) == []


def test_coco_b_without_info_and_licenses_converts(samples, tmp_path):
    root = samples / "coco_b"
    path = require(root / "annotations" / "instances_val2017.json")
    doc = json.loads(path.read_text())
    assert "info" not in doc and "licenses" not in doc
    report = convert(coco, root, tmp_path / "u", workers=2)
    ds = segdata.open(tmp_path / "u")
    assert report.layout == "coco-instances" and len(ds.images) == 80 and len(ds.segments) == 815
    api = coco_api(path)
    for image_id in (184324, 338304, 520707):  # the three with a JPEG, each with a crowd RLE
        expected, pre, _ = painted(api, image_id)
        assert np.array_equal(source_map(ds, str(image_id)), expected)
        assert ds.segments[(ds.segments.image_id == str(image_id)) & ds.segments.iscrowd].shape[0] == 1
    assert validate(ds.path, workers=1) == []


# --------------------------------------------------------------------------- real samples: panoptic


@pytest.fixture(scope="module")
def coco_panoptic(samples, tmp_path_factory):
    root = samples / "coco"
    require(root / "annotations" / "panoptic_val2017.json")
    out = tmp_path_factory.mktemp("pan") / "unified"
    report = convert(coco, root, out, workers=1, options={"kind": "panoptic"})
    return root, report, segdata.open(out)


def test_panoptic_areas_equal_json_area_exactly(coco_panoptic):
    root, report, ds = coco_panoptic
    doc = json.loads((root / "annotations" / "panoptic_val2017.json").read_text())
    cats = {c["id"]: c for c in doc["categories"]}
    assert report.layout == "coco-panoptic" and len(ds.classes) == 133
    for ann in doc["annotations"]:
        iid = str(ann["image_id"])
        rows = ds.segments[ds.segments.image_id == iid].set_index("source_instance")
        assert len(rows) == len(ann["segments_info"])
        ids = png_ids(root / "annotations" / "panoptic_val2017" / ann["file_name"])
        assert np.array_equal(source_map(ds, iid), ids)
        for s in ann["segments_info"]:
            r = rows.loc[s["id"]]
            assert r.area == s["area"] == r.source_area
            assert [r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h] == s["bbox"]
            assert r.class_id == s["category_id"] and r.iscrowd == bool(s["iscrowd"])
            assert r.is_instance == (cats[s["category_id"]]["isthing"] == 1 and not s["iscrowd"])
    things = dict(zip(ds.classes.class_id, ds.classes.is_thing))
    assert things[1] and not things[200]
    assert dict(zip(ds.classes.class_id, ds.classes.color))[1] == "#dc143c"  # [220, 20, 60]
    assert validate(ds.path, workers=1) == []


def test_trimmed_panoptic_needs_the_categories_file(samples, tmp_path):
    root = samples / "coco_b"
    require(root / "annotations" / "panoptic_val2017.json")
    with pytest.raises(segdata.InputError, match="panoptic_coco_categories.json") as err:
        coco.detect(root, kind="panoptic")
    assert err.value.path.endswith(".json")
    cats = require(samples / PANOPTIC_CATEGORIES)
    report = convert(coco, root, tmp_path / "u", workers=1, options={"kind": "panoptic", "categories": cats})
    ds = segdata.open(tmp_path / "u")
    assert report.layout == "coco-panoptic"
    assert dict(zip(ds.images.image_id, ds.images.split)) == {"9": "train", "139": "val"}
    for split, iid in (("train", 9), ("val", 139)):
        doc = json.loads((root / "annotations" / f"panoptic_{split}2017.json").read_text())
        ann = doc["annotations"][0]
        rows = ds.segments[ds.segments.image_id == str(iid)].set_index("source_instance")
        assert {s["id"]: s["area"] for s in ann["segments_info"]} == rows.area.to_dict()
        assert np.array_equal(
            source_map(ds, str(iid)), png_ids(root / "annotations" / f"panoptic_{split}2017" / ann["file_name"])
        )
    assert ds.images.set_index("image_id").loc["139", "file"] == "val2017/000000000139.jpg"
    # the same files with the categories file next to them need no option
    copy = tmp_path / "copy"
    shutil.copytree(root / "annotations", copy / "annotations")
    shutil.copyfile(cats, copy / "annotations" / coco.PANOPTIC_CATEGORIES_FILE)
    layout = coco.detect(copy, kind="panoptic")
    assert len(layout.categories) == 133 and layout.categories_file.name == coco.PANOPTIC_CATEGORIES_FILE


def test_round_trip_panoptic_unified_panoptic_unified(coco_panoptic, tmp_path):
    root, _, ds = coco_panoptic
    result = coco.write(ds, tmp_path / "export", workers=1)
    assert result["images"] == 2 and result["segments"] == 50 and result["dropped_segments"] == 0
    doc = json.loads((tmp_path / "export" / "annotations" / "panoptic_val.json").read_text())
    assert [i["id"] for i in doc["images"]] == [142238, 439180]  # COCO ids stay integers
    # file_name: the image file's own name (a COCO JPEG), null where the dataset records no file
    files = dict(zip(ds.images.image_id, ds.images.file))
    assert [i["file_name"] for i in doc["images"]] == [
        Path(files[str(i["id"])]).name if isinstance(files[str(i["id"])], str) else None for i in doc["images"]
    ]
    for ann in doc["annotations"]:  # the exported PNGs as panopticapi reads them
        ids = png_ids(tmp_path / "export" / "annotations" / "panoptic_val" / ann["file_name"])
        assert {s["id"]: s["area"] for s in ann["segments_info"]} == {
            int(v): int(c) for v, c in zip(*np.unique(ids[ids > 0], return_counts=True))
        }
    convert(coco, tmp_path / "export", tmp_path / "back", workers=1)
    back = segdata.open(tmp_path / "back")
    cols = ["class_id", "name", "is_thing"]
    assert back.classes[cols].reset_index(drop=True).equals(ds.classes[cols].reset_index(drop=True))
    for iid in ds.images.image_id:
        a, b = ds.segment_map(iid), back.segment_map(iid)
        assert same_partition(a, b)
        ra = ds.segments[ds.segments.image_id == iid]
        rb = back.segments[back.segments.image_id == iid]
        pair = dict(zip(a.ravel().tolist(), b.ravel().tolist()))
        ra = ra.assign(other=ra.segment_id.map(pair)).set_index("other").sort_index()
        rb = rb.set_index("segment_id").sort_index()
        for col in ("class_id", "area", "iscrowd", "is_instance", "bbox_x", "bbox_y", "bbox_w", "bbox_h"):
            assert ra[col].tolist() == rb[col].tolist(), col


# --------------------------------------------------------------------------- fixtures: instances (+ stuff)


@pytest.fixture()
def small(tmp_path):
    return fx.small_instances_dataset(tmp_path / "coco")


def test_fixture_overlaps_resolved_smaller_on_top(small, tmp_path):
    report = convert(coco, small, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    api = coco_api(small / "annotations" / "instances_val2017.json")
    expected, pre, visible = painted(api, 1)
    assert np.array_equal(source_map(ds, "1"), expected)
    rows = ds.segments[ds.segments.image_id == "1"].set_index("source_instance")
    assert list(rows.segment_id) == [1, 2, 3, 4, 5]  # ascending annotation id
    # the dog (13) and the chair (14) cover the same pixels: the higher id is on top
    assert rows.loc[13, "area"] == 0 and rows.loc[13, "pixels_lost"] == pre[13] > 0
    assert rows.loc[13, ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].tolist() == [0, 0, 0, 0]
    assert rows.loc[14, "area"] == pre[14]
    # the person stands in front of the larger car; the crowd corner overlaps the car too
    assert rows.loc[11, "area"] == pre[11] - pre[14] and rows.loc[10, "area"] < pre[10]
    assert rows.loc[12, "iscrowd"] and not rows.loc[12, "is_instance"] and rows.loc[12, "area"] == 12
    assert rows.loc[12, "source_area"] == 15.0
    assert int(rows.pixels_lost.sum()) == sum(pre.values()) - int((expected > 0).sum())
    assert report.images == 2
    assert list(ds.problems.action) == ["converted"] and ds.problems.image_id.tolist() == ["2"]
    assert validate(ds.path, workers=1) == []


def test_fixture_things_and_stuff_in_one_layer(small, tmp_path):
    h, w = 12, 16
    road = np.zeros((h, w), np.uint8)
    road[8:, :] = 1
    sky = np.zeros((h, w), np.uint8)
    sky[:2, :] = 1
    speck = np.zeros((h, w), np.uint8)
    speck[6, 7] = 1  # a 1-pixel stuff region inside the person: things stay on top whatever their size
    other = np.zeros((h, w), np.uint8)
    other[2:8, 2:13] = 1
    stuff = [
        fx.stuff_annotation(20000001, 1, 149, road),
        fx.stuff_annotation(20000002, 1, 157, sky),
        fx.stuff_annotation(20000003, 1, 183, other),
        fx.stuff_annotation(20000004, 1, 157, speck),
    ]
    path = fx.write_stuff_json(
        small / "annotations" / "stuff_val2017.json", [fx.image_entry(1, h, w), fx.image_entry(2, h, w)], stuff
    )
    assert isinstance(stuff[0]["segmentation"]["counts"], str)  # compressed RLE strings
    report = convert(coco, small, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert report.layout == "coco-things-stuff"
    stuff_ids = frozenset(a["id"] for a in stuff)
    api = coco_api(small / "annotations" / "instances_val2017.json")
    api_stuff = coco_api(path)
    merged = COCO()
    merged.dataset = {
        "images": api.dataset["images"],
        "annotations": api.dataset["annotations"] + api_stuff.dataset["annotations"],
        "categories": api.dataset["categories"] + api_stuff.dataset["categories"],
    }
    merged.createIndex()
    expected, pre, visible = painted(merged, 1, stuff_ids)
    assert np.array_equal(source_map(ds, "1"), expected)
    rows = ds.segments[ds.segments.image_id == "1"].set_index("source_instance")
    assert list(rows.segment_id) == list(range(1, 10))  # things by id, then stuff by id
    assert rows.loc[20000004, "area"] == 0 and rows.loc[20000004, "pixels_lost"] == 1
    assert not rows.loc[list(stuff_ids), "is_instance"].any()
    things = dict(zip(ds.classes.class_id, ds.classes.is_thing))
    assert things[3] and not things[149] and not things[183]
    assert validate(ds.path, workers=1) == []


def test_fixture_stuff_json_alone_and_compressed_rle(tmp_path):
    h, w = 5, 6
    a = np.zeros((h, w), np.uint8)
    a[1:4, 2:5] = 1
    fx.write_stuff_json(
        tmp_path / "annotations" / "stuff_val2017.json", [fx.image_entry(7, h, w)], [fx.stuff_annotation(1, 7, 149, a)]
    )
    convert(coco, tmp_path, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert ds.manifest["source"]["layout"] == "coco-stuff"
    assert np.array_equal(ds.segment_map("7") > 0, a.astype(bool))
    assert ds.segments.area.tolist() == [9] and ds.segments.source_area.tolist() == [9.0]


def test_fixture_read_yields_records(small):
    records = list(coco.read(small))
    assert [r.image["image_id"] for r in records] == ["1", "2"]
    assert records[0].masks["objects"].shape == (12, 16)


def test_split_option_accepts_year_suffix(small, tmp_path):
    assert [t.image_id for t in coco.list_images(coco.detect(small), split="val2017")] == ["1", "2"]
    assert coco.list_images(coco.detect(small), split="train") == []


# --------------------------------------------------------------------------- fixtures: panoptic, stuffthingmaps


def _panoptic_ids():
    ids = np.zeros((6, 8), np.int64)
    ids[:2] = 2**20 + 3  # sky: an id that needs the B channel
    ids[2:, :] = 300  # road
    ids[2:5, 1:3] = 5000  # person
    ids[3:6, 5:8] = 7  # a crowd of cars
    ids[5, 0] = 0  # void
    return ids, {5000: 1, 7: 3, 300: 149, 2**20 + 3: 187}


def test_fixture_panoptic(tmp_path):
    ids, cats = _panoptic_ids()
    infos = fx.segments_info(ids, cats, crowd={7})
    fx.write_panoptic(tmp_path, "val2017", [(42, ids, infos)])
    fx.write_jpg(tmp_path / "val2017" / "000000000042.jpg", 6, 8)
    convert(coco, tmp_path, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert np.array_equal(source_map(ds, "42"), ids)
    rows = ds.segments.set_index("source_instance")
    assert rows.area.to_dict() == {5000: 6, 7: 9, 300: 16, 2**20 + 3: 16}
    assert rows.loc[5000, "is_instance"] and not rows.loc[7, "is_instance"] and rows.loc[7, "iscrowd"]
    assert not rows.loc[300, "is_instance"]
    assert ds.problems.empty
    assert validate(ds.path, workers=1) == []


def test_fixture_stuffthingmaps(tmp_path):
    classes = np.zeros((4, 5), np.int64)
    classes[:, :2] = 1  # person
    classes[:, 2:] = 157  # sky-other
    classes[0, 0] = 0  # unlabeled
    classes[3, 4] = 12  # street sign: a COCO id never annotated, still named
    png = fx.write_stuffthingmap(tmp_path, "val2017", 139, classes)
    assert np.asarray(Image.open(png)).tolist()[0][:3] == [255, 0, 156]
    convert(coco, tmp_path, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert ds.manifest["source"]["layout"] == "coco-stuffthingmaps"
    assert np.array_equal(ds.semantic("139"), classes)
    assert len(ds.classes) == 172 and dict(zip(ds.classes.class_id, ds.classes.name))[12] == "street sign"
    assert set(ds.segments.is_instance) == {False}
    names = dict(zip(ds.classes.class_id, ds.classes.name))
    assert names[157] == "sky-other" and names[182] == "wood"
    assert validate(ds.path, workers=1) == []


def test_stuff_label_table_matches_labels_txt(tmp_path):
    """Spot values transcribed from nightrome/cocostuff labels.txt and labels.md (the 11 thing ids
    marked "Removed from COCO"), and the class table of a stuffthingmaps layout built from it."""
    from segdata.converters.coco import stuff_labels

    official = {
        0: "unlabeled",
        1: "person",
        10: "traffic light",
        12: "street sign",
        64: "potted plant",
        91: "hair brush",
        92: "banner",
        110: "desk-stuff",
        133: "mirror-stuff",
        145: "playingfield",
        164: "structural-other",
        179: "waterdrops",
        182: "wood",
    }
    assert {i: stuff_labels.LABELS[i].name for i in official} == official
    assert len(stuff_labels.LABELS) == 183 and len(coco.COCO_STUFF_NAMES) == 182 and 0 not in coco.COCO_STUFF_NAMES
    removed = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91}
    assert coco.COCO_UNUSED_THING_IDS == removed
    assert stuff_labels.LABEL_OF_PNG[148].name == "road" and stuff_labels.LABEL_OF_PNG[255].name == "unlabeled"
    fx.write_stuffthingmap(tmp_path, "val2017", 1, np.ones((2, 2), np.int64))
    cats = coco.detect(tmp_path).categories
    assert len(cats) == 171 and sum(c.is_thing for c in cats) == 80 and not removed & {c.id for c in cats}
    assert (cats[0].id, cats[0].name, cats[-1].id, cats[-1].name) == (1, "person", 182, "wood")


def test_export_of_another_family_reads_as_panopticapi_does(tmp_path):
    from segdata.converters import ade20k
    from tests.fixtures.ade20k import small_2021_dataset

    convert(ade20k, small_2021_dataset(tmp_path / "src"), tmp_path / "ade", workers=1)
    ds = segdata.open(tmp_path / "ade")
    result = coco.write(ds, tmp_path / "pan", workers=1)
    objects = ds.segments[ds.segments.layer == "objects"]
    assert result["segments"] == int((objects.area > 0).sum())
    for split in ("train", "val"):
        doc = json.loads((tmp_path / "pan" / "annotations" / f"panoptic_{split}.json").read_text())
        assert all(isinstance(i["id"], int) for i in doc["images"])  # detectron2 calls int() on them
        assert {i["segdata_image_id"] for i in doc["images"]} <= set(ds.images.image_id)
        isthing = {c["id"]: c["isthing"] for c in doc["categories"]}
        assert isthing[401] == 1  # is_thing is null in full ADE20K: any instance makes a thing
        for ann in doc["annotations"]:
            ids = png_ids(tmp_path / "pan" / "annotations" / f"panoptic_{split}" / ann["file_name"])
            assert {s["id"]: s["area"] for s in ann["segments_info"]} == {
                int(v): int(c) for v, c in zip(*np.unique(ids[ids > 0], return_counts=True))
            }
    convert(coco, tmp_path / "pan", tmp_path / "back", workers=1)
    back = segdata.open(tmp_path / "back")
    for rec in ds.images.itertuples():
        jid = str(int(ds.images.image_id.tolist().index(rec.image_id)) + 1)
        assert same_partition(ds.segment_map(rec.image_id), back.segment_map(jid))


# --------------------------------------------------------------------------- detection


def test_detect_prefers_instances_and_names_what_it_looked_for(tmp_path, small):
    assert coco.detect(small).name == "coco-instances"
    (tmp_path / "empty").mkdir()
    with pytest.raises(segdata.LayoutNotFoundError, match="instances_<split><year>.json"):
        coco.detect(tmp_path / "empty")
    (small / "annotations" / "panoptic_val2017.json").write_text("{}")
    with pytest.raises(segdata.LayoutNotFoundError, match="no PNG folder panoptic_val2017"):
        coco.detect(small, kind="panoptic")


def test_detect_options_and_a_json_as_root(small, tmp_path):
    path = small / "annotations" / "instances_val2017.json"
    for layout in (coco.detect(path), coco.detect(small, annotations=[path]), coco.detect(small / "annotations")):
        assert layout.name == "coco-instances" and layout.root == small and layout.release == "2017"
        assert [(s.split, s.image_dir) for s in layout.sources] == [("val", small / "val2017")]
    fx.write_stuff_json(small / "annotations" / "stuff_val2017.json", [fx.image_entry(1, 12, 16)], [])
    assert coco.detect(small).name == "coco-things-stuff"
    assert coco.detect(small, stuff=False).name == "coco-instances"
    assert coco.detect(small, kind="stuff").name == "coco-stuff"
    (small / "annotations" / "instances_val2014.json").write_bytes(path.read_bytes())
    assert coco.detect(small, stuff=False).sources[0].annotation == path  # the latest year
    with pytest.raises(segdata.LayoutNotFoundError, match="no stuffthingmaps annotations found"):
        coco.detect(small, kind="stuffthingmaps")


def test_image_of_another_size_than_the_json_says(small, tmp_path):
    fx.write_jpg(small / "val2017" / "000000000001.jpg", 13, 16)
    with pytest.raises(segdata.InputError, match="image 1 is 16x12 here, but 000000000001.jpg is 16x13"):
        convert(coco, small, tmp_path / "u", workers=1)


def test_detect_reads_categories_wherever_they_are(tmp_path):
    """Official JSONs end with 'categories' (read from the tail); COCO-Stuff JSONs have them
    before the annotations (read by streaming until them)."""
    img = fx.image_entry(1, 3, 3)
    fx.write_stuff_json(
        tmp_path / "annotations" / "stuff_val2017.json",
        [img],
        [fx.stuff_annotation(5, 1, 149, np.ones((3, 3), np.uint8))],
    )
    layout = coco.detect(tmp_path)
    assert layout.name == "coco-stuff" and [c.id for c in layout.categories] == [149, 157, 183]
    assert coco.layout._tail_categories(tmp_path / "annotations" / "stuff_val2017.json") is None
    path = fx.write_instances_json(tmp_path / "i.json", [img], [])
    assert [c["id"] for c in coco.layout._tail_categories(path)] == [1, 3, 18, 62]


# --------------------------------------------------------------------------- bad input


def _bad_instances(tmp_path, mutate) -> Path:
    root = fx.small_instances_dataset(tmp_path / "bad")
    path = root / "annotations" / "instances_val2017.json"
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    return root


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["annotations"][1].update(category_id=999), "category_id 999, which is not in 'categories'"),
        (
            lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, 1]]),
            r"polygon #0 has 4 coordinate\(s\) \(2 points\)",
        ),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, 1, 5]]), "at least 3 points"),
        (lambda d: d["annotations"][2]["segmentation"]["counts"].append(1), "RLE counts add up to 193 pixels"),
        (lambda d: d["annotations"][2].update(segmentation={"size": [12, 16], "counts": "5Z"}), "compressed RLE"),
        (lambda d: d["annotations"][2]["segmentation"].update(size=[16, 12]), "is not the image's"),
        (
            lambda d: d["annotations"][0].update(image_id=77),
            "image id\\(s\\) have annotations but no entry in 'images'",
        ),
        (
            lambda d: d["annotations"][1].update(segmentation=[[1, 1, 5, 1, 1e12, 4]]),
            "coordinate 1e\\+12, far outside the 16x12 image",
        ),
        (lambda d: d["annotations"][1].update(segmentation=[[1, 1, 5, 1, None, 4]]), "not finite numbers"),
        (
            lambda d: d["annotations"][1].update(segmentation={"counts": [1]}),
            "'segmentation' must be a list of polygons or an RLE",
        ),
    ],
)
def test_bad_instances_name_the_file_and_the_problem(tmp_path, mutate, message):
    root = _bad_instances(tmp_path, mutate)
    with pytest.raises(segdata.InputError, match=message) as err:
        convert(coco, root, tmp_path / "u", workers=1)
    assert err.value.path.endswith("instances_val2017.json")
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_malformed_json_names_the_file(tmp_path, cut):
    root = fx.small_instances_dataset(tmp_path / "bad")
    path = root / "annotations" / "instances_val2017.json"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(segdata.InputError, match="malformed JSON at line 1 column") as err:
        convert(coco, root, tmp_path / "u", workers=1)
    assert err.value.path == str(path)


def test_skip_bad_image_keeps_the_others(tmp_path):
    root = _bad_instances(tmp_path, lambda d: d["annotations"][5].update(category_id=999))
    report = convert(coco, root, tmp_path / "u", workers=1, on_error="skip")
    assert report.images == 1 and [p["image_id"] for p in report.problems if p["action"] == "skipped"] == ["2"]


def _bad_panoptic(tmp_path, ids, infos, rgb=True):
    fx.write_panoptic(tmp_path, "val2017", [(42, ids, infos)])
    png = tmp_path / "annotations" / "panoptic_val2017" / "000000000042.png"
    if not rgb:
        Image.fromarray(np.asarray(ids % 256, np.uint8), "L").save(png)
    return png


def test_panoptic_png_not_rgb(tmp_path):
    ids, cats = _panoptic_ids()
    png = _bad_panoptic(tmp_path, ids, fx.segments_info(ids, cats), rgb=False)
    with pytest.raises(segdata.InputError, match="expected a 8-bit RGB PNG, found 8-bit grey") as err:
        convert(coco, tmp_path, tmp_path / "u", workers=1)
    assert err.value.path == str(png)


@pytest.mark.parametrize(
    "edit, message, bad_file",
    [
        (lambda cats: {**cats, 999: 1}, r"segment id\(s\) \[999\] listed in segments_info .* have no pixel", "png"),
        (
            lambda cats: {k: v for k, v in cats.items() if k != 300},
            r"segment id\(s\) 300 \(16 px\) in the PNG are not listed",
            "png",
        ),
        (lambda cats: {**cats, 5000: 77}, "category_id 77, which is not in the categories", "panoptic_val2017.json"),
    ],
    ids=["listed-but-absent", "present-but-unlisted", "dangling-category"],
)
def test_panoptic_segments_info_against_the_png(tmp_path, edit, message, bad_file):
    ids, cats = _panoptic_ids()
    png = _bad_panoptic(tmp_path, ids, fx.segments_info(ids, edit(cats)))
    with pytest.raises(segdata.InputError, match=message) as err:
        convert(coco, tmp_path, tmp_path / "u", workers=1)
    if bad_file == "png":
        assert err.value.path == str(png)
    else:
        assert err.value.path.endswith(bad_file)


def test_stuffthingmap_with_unknown_value(tmp_path):
    classes = np.full((3, 3), 5)
    png = fx.write_stuffthingmap(tmp_path, "val2017", 1, classes)
    Image.fromarray(np.full((3, 3), 200, np.uint8), "L").save(png)
    with pytest.raises(segdata.InputError, match=r"unknown label value\(s\) \[200\]") as err:
        convert(coco, tmp_path, tmp_path / "u", workers=1)
    assert err.value.path == str(png)

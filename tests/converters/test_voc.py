"""PASCAL VOC 2012 and SBD converter: byte-exact fixtures and the real (derived) sample.

Expected values come from the fixture arrays themselves or are decoded independently of segdata
(Pillow, numpy, scipy.io), never through segdata's readers. Unified class ids follow the VOC
convention documented in converters/voc.py: class_id = VOC index + 1, void (255) = 255.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

import segdata
from segdata.convert import convert, partial_path
from segdata.converters import voc
from segdata.errors import InputError, LayoutNotFoundError
from segdata.validate import validate
from tests.conftest import require
from tests.fixtures.voc import (
    VOC_NAMES,
    devkit_colormap,
    sbd_images,
    small_voc,
    voc_images,
    write_grey_png,
    write_list,
    write_palette_png,
    write_sbd,
    write_sbd_cls,
    write_sbd_inst,
    write_voc,
)


def unified_of(indices: np.ndarray) -> np.ndarray:
    """VOC label values -> unified class ids, computed here: index + 1, void 255 stays 255."""
    indices = np.asarray(indices, dtype=np.int64)
    return np.where(indices == 255, 255, indices + 1)


def pixel_counts(arr: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(arr, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def n_objects(obj: np.ndarray) -> int:
    return len(set(np.unique(obj).tolist()) - {0, 255})


@pytest.fixture(scope="module")
def voc_sbd(tmp_path_factory):
    """The small VOC tree with SBD as a second layer, converted once for the module."""
    base = tmp_path_factory.mktemp("voc")
    voc_root = small_voc(base / "src")
    sbd_root = write_sbd(base / "sbdsrc")
    report = convert(voc, base / "src", base / "u", workers=2, options={"sbd": sbd_root})
    return voc_root, sbd_root, report, segdata.open(base / "u")


# --------------------------------------------------------------------------- class table, colours


def test_colormap_is_the_devkits():
    cmap = voc.voc_colormap()
    assert np.array_equal(cmap, devkit_colormap())
    assert cmap[0].tolist() == [0, 0, 0] and cmap[1].tolist() == [128, 0, 0]
    assert cmap[15].tolist() == [192, 128, 128] and cmap[255].tolist() == [224, 224, 192]


def test_class_table_background_is_a_class_and_void_is_ignored(voc_sbd):
    *_, ds = voc_sbd
    c = ds.classes.set_index("source_id")
    assert len(c) == 22 and 0 not in set(ds.classes.class_id)
    assert list(c.loc[range(21), "name"]) == VOC_NAMES
    assert list(c.loc[range(21), "class_id"]) == list(range(1, 22))  # background is class 1, evaluated
    assert list(c.loc[range(21), "train_id"]) == list(range(21))
    assert not c.loc[range(21), "ignore"].any()
    assert (c.loc[255, "class_id"], c.loc[255, "name"], bool(c.loc[255, "ignore"])) == (255, "void", True)
    assert c.loc[0, "is_thing"] == False and c.loc[15, "is_thing"] == True  # noqa: E712
    cmap = devkit_colormap()
    for index in list(range(21)) + [255]:
        assert c.loc[index, "color"] == "#{:02x}{:02x}{:02x}".format(*tuple(cmap[index]))


# --------------------------------------------------------------------------- VOC fixtures


def test_fixture_pngs_are_devkit_palette_pngs(tmp_path):
    cls, _ = voc_images()["2007_000032"]
    write_palette_png(tmp_path / "a.png", cls)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "P" and len(im.getpalette()) == 768
        assert im.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
        assert np.array_equal(np.asarray(im), cls)
    head = (tmp_path / "a.png").read_bytes()[:33]
    assert head[24] == 8 and head[25] == 3  # 8-bit, colour type 3 (palette)


@pytest.mark.parametrize("image_id", sorted(voc_images()))
def test_semantic_map_and_pixel_counts_equal_segmentation_class(voc_sbd, image_id):
    voc_root, _, _, ds = voc_sbd
    cls, obj = voc_images()[image_id]
    with Image.open(voc_root / "SegmentationClass" / f"{image_id}.png") as im:
        on_disk = np.asarray(im)  # palette indices
    assert np.array_equal(on_disk, cls)
    sem = ds.semantic(image_id)
    assert pixel_counts(sem) == pixel_counts(unified_of(cls))
    assert np.array_equal(sem, unified_of(cls))


@pytest.mark.parametrize("image_id", sorted(voc_images()))
def test_instances_equal_segmentation_object(voc_sbd, image_id):
    *_, ds = voc_sbd
    cls, obj = voc_images()[image_id]
    seg = ds.segments[(ds.segments.image_id == image_id) & (ds.segments.layer == "objects")]
    inst = seg[seg.is_instance]
    assert len(inst) == n_objects(obj)
    segmap = ds.segment_map(image_id)
    for r in inst.itertuples():
        k = int(r.source_instance)
        assert np.array_equal(segmap == r.segment_id, obj == k)
        assert r.class_id == unified_of(np.unique(cls[obj == k]))[0]
        assert r.area == int((obj == k).sum())
    regions = seg[~seg.is_instance]
    assert set(regions.class_id) == set(unified_of(np.unique(cls[(obj == 0) | (obj == 255)])).tolist())


def test_splits_layers_and_validity(voc_sbd):
    *_, report, ds = voc_sbd
    assert dict(zip(ds.images.image_id, ds.images.split)) == {
        "2007_000032": "train",
        "2007_000063": "train",
        "2007_000039": "val",
    }
    assert ds.manifest["source"]["layout"] == "voc" and ds.manifest["source"]["release"] == "VOC2012"
    assert ds.layers == ["objects", "sbd"] and report.problems == []
    assert set(ds.images.file) == {f"JPEGImages/{i}.jpg" for i in voc_images()}
    assert validate(ds.path, workers=1) == []


def test_unlisted_and_trainval_only_images_are_kept(tmp_path):
    images = voc_images()
    root = write_voc(tmp_path / "src", images, {"train": ["2007_000032"], "trainval": ["2007_000032", "2007_000039"]})
    convert(voc, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert dict(zip(ds.images.image_id, ds.images.split)) == {
        "2007_000032": "train",
        "2007_000039": "trainval",
        "2007_000063": "unlisted",
    }
    convert(voc, root, tmp_path / "v", split="unlisted", workers=1)
    assert list(segdata.open(tmp_path / "v").images.image_id) == ["2007_000063"]


def test_image_in_train_and_val_lists_is_an_error(tmp_path):
    root = write_voc(tmp_path / "src", voc_images(), {"train": ["2007_000032"], "val": ["2007_000032"]})
    with pytest.raises(InputError, match="2007_000032") as exc:
        convert(voc, root, tmp_path / "u", workers=1)
    assert exc.value.path.endswith("val.txt")


def test_read_yields_records_without_writing(tmp_path):
    root = small_voc(tmp_path / "src")
    records = list(voc.read(root))
    assert [r.image["image_id"] for r in records] == ["2007_000032", "2007_000063", "2007_000039"]
    assert records[0].masks["objects"].shape == (6, 8)


def test_detect_accepts_devkit_and_parent_and_names_layouts(tmp_path):
    root = small_voc(tmp_path / "src")
    for where in (tmp_path / "src", tmp_path / "src" / "VOCdevkit", root):
        assert voc.detect(where).root == root
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutNotFoundError, match="SegmentationClass.*SBD"):
        voc.detect(tmp_path / "empty")


# --------------------------------------------------------------------------- disagreements (problems, not errors)


def test_maps_that_disagree_are_converted_and_counted(tmp_path):
    cls = np.zeros((4, 6), np.uint8)
    obj = np.zeros((4, 6), np.uint8)
    cls[0:2, 0:3] = 8  # cat, 5 pixels of it, 1 pixel dog: object 1 is a cat
    cls[1, 2] = 12
    obj[0:2, 0:3] = 1
    cls[3, 4:6] = 15  # person pixels that belong to no object
    root = write_voc(tmp_path / "src", {"2007_000001": (cls, obj)}, {"train": ["2007_000001"]})
    report = convert(voc, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    seg = ds.segments.set_index("segment_id")
    inst = seg[seg.is_instance]
    assert list(inst.class_id) == [9] and list(inst.area) == [6]  # cat = index 8 + 1
    person = seg[seg.class_id == 16]
    assert list(person.is_instance) == [False] and list(person.area) == [2]
    problems = " | ".join(p["problem"] for p in report.problems)
    assert "1 of its 6 pixels carry {'dog': 1}" in problems
    assert "2 pixel(s) of class person" in problems
    sem = ds.semantic("2007_000001")
    assert int((sem != unified_of(cls)).sum()) == 1  # the dog pixel, kept as cat
    assert validate(ds.path, workers=1) == []


def test_missing_object_file_gives_regions_and_a_problem(tmp_path):
    root = small_voc(tmp_path / "src")
    (root / "SegmentationObject" / "2007_000063.png").unlink()
    report = convert(voc, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    seg = ds.segments[ds.segments.image_id == "2007_000063"]
    assert not seg.is_instance.any() and set(seg.class_id) == {1, 9, 13}
    assert [p["image_id"] for p in report.problems] == ["2007_000063"]
    assert "object map missing" in report.problems[0]["problem"]


def test_missing_jpeg_is_a_problem_and_wrong_size_jpeg_an_error(tmp_path):
    root = small_voc(tmp_path / "src")
    (root / "JPEGImages" / "2007_000039.jpg").unlink()
    report = convert(voc, root, tmp_path / "u", workers=1)
    assert [(p["image_id"], p["action"]) for p in report.problems] == [("2007_000039", "converted")]
    assert pd.isna(segdata.open(tmp_path / "u").images.set_index("image_id").loc["2007_000039", "file"])
    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(root / "JPEGImages" / "2007_000039.jpg")
    with pytest.raises(InputError, match="6x5 but image 2007_000039.jpg is 7x7"):
        convert(voc, root, tmp_path / "v", workers=1)


# --------------------------------------------------------------------------- bad input


def _rgb_png(path, cls):
    with Image.open(path) as im:
        im.convert("RGB").save(path)  # the classic mistake


def _png16(path, cls):
    Image.fromarray(cls.astype(np.uint16)).save(path)


def _bad_values(path, cls):
    bad = cls.copy()
    bad[0, 0] = 21
    bad[0, 1] = 100
    write_palette_png(path, bad)


def _truncated(path, cls):
    path.write_bytes(path.read_bytes()[:60])


def _object_size(path, cls):
    obj_path = path.parent.parent / "SegmentationObject" / path.name
    write_palette_png(obj_path, np.zeros((cls.shape[0] + 1, cls.shape[1]), np.uint8))


BAD_PNG = [
    (
        _rgb_png,
        "SegmentationClass",
        r"RGB colour image, expected palette indices: did you convert it with \.convert\('RGB'\)\?",
    ),
    (_png16, "SegmentationClass", "16-bit PNG, expected 8-bit"),
    (_bad_values, "SegmentationClass", r"class value\(s\) \[21, 100\] outside the VOC classes 0..20 and 255"),
    (_truncated, "SegmentationClass", "corrupt|truncated"),
    (_object_size, "SegmentationObject", "SegmentationObject is 6x6 but SegmentationClass/2007_000039.png is 6x5"),
]


@pytest.mark.parametrize("damage, folder, message", BAD_PNG, ids=["rgb", "16bit", "values", "corrupt", "object-size"])
def test_bad_png_names_the_file_and_leaves_nothing(tmp_path, damage, folder, message):
    root = small_voc(tmp_path / "src")
    cls, _ = voc_images()["2007_000039"]
    damage(root / "SegmentationClass" / "2007_000039.png", cls)
    out = tmp_path / "u"
    with pytest.raises(InputError, match=message) as exc:
        convert(voc, root, out, workers=1)
    assert exc.value.path == str(root / folder / "2007_000039.png")
    assert not out.exists() and not partial_path(out).exists()
    report = convert(voc, root, out, workers=1, on_error="skip")
    assert [(p["image_id"], p["action"]) for p in report.problems] == [("2007_000039", "skipped")]
    assert report.images == 2


def test_listed_image_without_label_is_an_error_naming_the_file(tmp_path):
    root = small_voc(tmp_path / "src")
    write_list(root / "ImageSets" / "Segmentation" / "val.txt", ["2007_000039", "2007_009999"])
    with pytest.raises(InputError, match="label PNG not found") as exc:
        convert(voc, root, tmp_path / "u", workers=1)
    assert exc.value.path.endswith("SegmentationClass/2007_009999.png")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b"MATLAB 5.0 MAT-file garbage" + bytes(200)), "corrupt or unreadable .mat"),
        (lambda p: scipy.io.savemat(p, {"other": np.zeros((2, 2))}), "no variable 'GTcls'"),
        (
            lambda p: scipy.io.savemat(p, {"GTcls": {"Segmentation": np.zeros((6, 8), np.uint8)}}),
            r"no field\(s\) \['CategoriesPresent'\]",
        ),
        (lambda p: write_sbd_cls(p, np.full((6, 8), 30, np.uint8), [1]), r"class value\(s\) \[30\]"),
    ],
    ids=["corrupt", "no-struct", "no-field", "values"],
)
def test_bad_sbd_mat_names_the_file(tmp_path, damage, message):
    release = write_sbd(tmp_path / "sbd")
    path = release / "dataset" / "cls" / "2007_000032.mat"
    damage(path)
    with pytest.raises(InputError, match=message) as exc:
        convert(voc, release, tmp_path / "u", workers=1)
    assert exc.value.path == str(path)


def test_sbd_object_map_of_another_size_is_an_error(tmp_path):
    release = write_sbd(tmp_path / "sbd")
    path = release / "dataset" / "inst" / "2008_000002.mat"
    write_sbd_inst(path, np.zeros((5, 6), np.uint8), [])
    with pytest.raises(InputError, match="GTinst.Segmentation is 6x5 but cls/2008_000002.mat is 6x4") as exc:
        convert(voc, release, tmp_path / "u", workers=1)
    assert exc.value.path == str(path)


# --------------------------------------------------------------------------- SBD


def test_sbd_fixture_reads_as_popular_loaders_read_it(tmp_path):
    release = write_sbd(tmp_path / "sbd")
    cls, obj, cats = sbd_images()["2008_000002"]
    m = scipy.io.loadmat(release / "dataset" / "cls" / "2008_000002.mat")
    assert np.array_equal(m["GTcls"][0]["Segmentation"][0], cls)
    gt = m["GTcls"][0, 0]
    assert m["GTcls"].dtype.names == ("Boundaries", "Segmentation", "CategoriesPresent")
    assert gt[0].shape == (20, 1) and gt[0][0, 0].shape == cls.shape
    assert gt[2].squeeze().tolist() == [15, 19]
    m = scipy.io.loadmat(release / "dataset" / "inst" / "2008_000002.mat")
    assert m["GTinst"].dtype.names == ("Segmentation", "Boundaries", "Categories")
    assert np.array_equal(m["GTinst"][0]["Segmentation"][0], obj)
    assert [int(c[0]) for c in m["GTinst"][0]["Categories"][0]] == cats
    assert m["GTinst"][0, 0]["Boundaries"].shape == (3, 1)


def test_sbd_as_its_own_dataset(tmp_path):
    release = write_sbd(tmp_path / "sbd")
    layout = voc.detect(release)
    assert layout.name == "sbd" and layout.root == release / "dataset"
    report = convert(voc, release, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert report.problems == [] and ds.layers == ["objects"]
    assert dict(zip(ds.images.image_id, ds.images.split)) == {"2008_000002": "train", "2007_000032": "val"}
    for image_id, (cls, obj, cats) in sbd_images().items():
        assert pixel_counts(ds.semantic(image_id)) == pixel_counts(unified_of(cls))
        seg = ds.segments[(ds.segments.image_id == image_id) & ds.segments.is_instance].sort_values("source_instance")
        assert len(seg) == len(cats) == n_objects(obj)
        assert list(seg.class_id) == [c + 1 for c in cats]
    assert ds.images.set_index("image_id").loc["2008_000002", "annotation"] == "cls/2008_000002.mat"
    assert validate(ds.path, workers=1) == []


def test_sbd_as_a_second_layer(voc_sbd):
    _, _, _, ds = voc_sbd
    layers = dict(zip(ds.images.image_id, ds.images.layers))
    assert layers == {"2007_000032": "objects,sbd", "2007_000039": "objects", "2007_000063": "objects"}
    assert "2008_000002" not in set(ds.images.image_id)  # SBD-only images are not VOC images
    cls, obj, cats = sbd_images()["2007_000032"]
    assert np.array_equal(ds.semantic("2007_000032", "sbd"), unified_of(cls))
    seg = ds.segments[(ds.segments.image_id == "2007_000032") & (ds.segments.layer == "sbd") & ds.segments.is_instance]
    assert len(seg) == 3
    # the two annotations of the same image differ by the void band and the larger SBD masks
    voc_cls, _ = voc_images()["2007_000032"]
    differ = ds.semantic("2007_000032", "objects") != ds.semantic("2007_000032", "sbd")
    assert int(differ.sum()) == int((unified_of(voc_cls) != unified_of(cls)).sum()) > 0


def test_sbd_categories_that_disagree_with_the_pixels_are_reported(tmp_path):
    cls, obj, _ = sbd_images()["2008_000002"]
    release = write_sbd(tmp_path / "sbd", images={"2008_000002": (cls, obj, [19, 15, 8])}, splits={})
    report = convert(voc, release, tmp_path / "u", workers=1)
    assert any(
        "Categories says object 3 is cat, its pixels in cls/2008_000002.mat are person" in p["problem"]
        for p in report.problems
    )
    ds = segdata.open(tmp_path / "u")
    assert list(ds.images.split) == ["unlisted"]
    assert np.array_equal(ds.semantic("2008_000002"), unified_of(cls))


def test_sbd_option_needs_sbd(tmp_path):
    root = small_voc(tmp_path / "src")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(LayoutNotFoundError, match="not SBD"):
        voc.detect(root, sbd=tmp_path / "nothing")


# --------------------------------------------------------------------------- SegmentationClassAug


def test_segmentation_class_aug_grey_pngs(tmp_path):
    images = voc_images()
    voc_root = tmp_path / "VOC2012"
    for image_id, (cls, _) in images.items():
        write_grey_png(voc_root / "SegmentationClassAug" / f"{image_id}.png", cls)
    seg_sets = voc_root / "ImageSets" / "Segmentation"
    write_list(seg_sets / "val.txt", ["2007_000039"])
    # DeepLab's train_aug.txt form: image path and label path per line
    (seg_sets / "train_aug.txt").write_text(
        "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n"
        "/JPEGImages/2007_000063.jpg /SegmentationClassAug/2007_000063.png\n"
    )
    assert Image.open(voc_root / "SegmentationClassAug" / "2007_000032.png").mode == "L"
    report = convert(voc, voc_root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert ds.manifest["source"]["layout"] == "voc-aug"
    assert dict(zip(ds.images.image_id, ds.images.split)) == {
        "2007_000032": "train",
        "2007_000063": "train",
        "2007_000039": "val",
    }
    for image_id, (cls, _) in images.items():
        assert np.array_equal(ds.semantic(image_id), unified_of(cls))
    assert not ds.segments.is_instance.any()
    assert all("image file missing" in p["problem"] for p in report.problems)


def test_aug_next_to_segmentation_class_on_request(tmp_path):
    root = small_voc(tmp_path / "src")
    augs = {}
    for image_id, (cls, _) in voc_images().items():
        augs[image_id] = cls.copy()
        if image_id == "2007_000032":
            augs[image_id][cls == 255] = 0  # an Aug label that differs from the official one
        write_grey_png(root / "SegmentationClassAug" / f"{image_id}.png", augs[image_id])
    assert voc.detect(root).name == "voc"
    layout = voc.detect(root, aug=True)
    assert layout.name == "voc-aug" and layout.class_dir == "SegmentationClassAug"
    report = convert(voc, root, tmp_path / "u", workers=1, options={"aug": True})
    ds = segdata.open(tmp_path / "u")
    for image_id, aug in augs.items():
        assert np.array_equal(ds.semantic(image_id), unified_of(aug))  # the class map decides
    # SegmentationObject still gives the instances; its void band now disagrees, and says so
    assert int(ds.segments.is_instance.sum()) == sum(n_objects(obj) for _, obj in voc_images().values())
    assert [p["image_id"] for p in report.problems] == ["2007_000032"]
    assert "void band differs" in report.problems[0]["problem"]


def test_real_derived_grayscale_label(samples, tmp_path):
    root = samples / "voc" / "DERIVED_grayscale_label"
    png = require(root / "SegmentationClassAug" / "2007_000129.png")
    with Image.open(png) as im:
        assert im.mode == "L"
        values = np.asarray(im).astype(np.int64)
    expected = pixel_counts(values)
    assert set(expected) == {0, 2, 15, 255}
    report = convert(voc, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert ds.manifest["source"]["layout"] == "voc-aug" and report.images == 1
    sem = ds.semantic("2007_000129")
    assert sem.shape == (500, 334)
    counts = pixel_counts(sem)
    # background, bicycle, person, void
    assert counts == {1: expected[0], 3: expected[2], 16: expected[15], 255: expected[255]}
    names = dict(zip(ds.classes.class_id, ds.classes.name))
    assert [names[c] for c in sorted(counts)] == ["background", "bicycle", "person", "void"]
    assert list(ds.images.split) == ["unlisted"]
    assert validate(ds.path, workers=1) == []

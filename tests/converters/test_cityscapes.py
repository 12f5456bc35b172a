"""Cityscapes converter and exporter: real samples (SEGDATA_SAMPLES) and byte-exact fixtures.

Expected values come from the source PNGs decoded independently with Pillow and numpy, never
through segdata.maskio.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segdata
from segdata.convert import convert
from segdata.converters import cityscapes
from segdata.errors import InputError, LayoutNotFoundError, SegdataError
from segdata.regions import bounding_boxes
from segdata.validate import validate
from tests.conftest import require
from tests.fixtures import cityscapes as fx

SAMPLE_IDS = {
    "train": ["aachen_000000_000019", "aachen_000001_000019", "aachen_000002_000019"],
    "val": ["frankfurt_000000_000294", "frankfurt_000000_000576", "frankfurt_000000_001016", "frankfurt_000000_001236"],
}
WITH_IMAGE = {"frankfurt_000000_000294", "frankfurt_000000_001016"}


def pil(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int64)


def sample_files(root: Path, split: str, image_id: str) -> dict[str, Path]:
    city = image_id.split("_")[0]
    folder = root / "gtFine" / split / city
    return {kind: require(folder / f"{image_id}_gtFine_{kind}.png") for kind in ("labelIds", "instanceIds", "color")}


def label_semantic(ds, image_id: str, layer: str = "objects") -> np.ndarray:
    """The unified semantic map expressed in Cityscapes labelIds (through the class table)."""
    sem = ds.semantic(image_id, layer)
    to_label = np.full(int(ds.classes["class_id"].max()) + 1, -99, dtype=np.int64)
    to_label[ds.classes["class_id"].to_numpy()] = ds.classes["source_id"].to_numpy()
    return to_label[sem]


def counts(a: np.ndarray) -> dict[int, int]:
    values, n = np.unique(a, return_counts=True)
    return dict(zip(values.tolist(), n.tolist()))


# --------------------------------------------------------------------------- real samples


@pytest.fixture(scope="module")
def real(samples, tmp_path_factory):
    root = require(samples / "cityscapes")
    for split, ids in SAMPLE_IDS.items():
        for image_id in ids:
            sample_files(root, split, image_id)
    out = tmp_path_factory.mktemp("cs") / "unified"
    convert(cityscapes, root, out, workers=2)
    return root, segdata.open(out)


def test_real_images_splits_and_files(real):
    root, ds = real
    assert ds.manifest["source"]["layout"] == "cityscapes-gtfine"
    assert {s: sorted(ds.images.image_id[ds.images.split == s]) for s in ("train", "val")} == SAMPLE_IDS
    for row in ds.images.itertuples():
        assert (row.width, row.height) == (2048, 1024)
        if row.image_id in WITH_IMAGE:
            assert row.file == f"leftImg8bit/val/frankfurt/{row.image_id}_leftImg8bit.png"
        else:
            assert pd_isna(row.file)
    missing = ds.problems
    assert sorted(missing.image_id) == sorted(set(SAMPLE_IDS["train"] + SAMPLE_IDS["val"]) - WITH_IMAGE)
    assert set(missing.action) == {"converted"}


@pytest.mark.parametrize("split,image_id", [(s, i) for s, ids in SAMPLE_IDS.items() for i in ids])
def test_real_per_class_pixels_equal_label_ids_png(real, split, image_id):
    root, ds = real
    labels = pil(sample_files(root, split, image_id)["labelIds"])
    unified = label_semantic(ds, image_id)
    assert counts(unified) == counts(labels)
    assert np.array_equal(unified, labels)


@pytest.mark.parametrize("split,image_id", [(s, i) for s, ids in SAMPLE_IDS.items() for i in ids])
def test_real_instances_per_class_equal_instance_ids_png(real, split, image_id):
    root, ds = real
    values = pil(sample_files(root, split, image_id)["instanceIds"])
    distinct = np.unique(values[values >= 1000])
    expected = counts(distinct // 1000)
    seg = ds.segments[(ds.segments.image_id == image_id) & (ds.segments.layer == "objects")]
    label_of = dict(zip(ds.classes.class_id, ds.classes.source_id))
    got = counts(np.array([label_of[c] for c in seg.class_id[seg.is_instance]], dtype=np.int64))
    assert got == expected
    assert sorted(seg.source_instance[seg.is_instance].astype(int)) == distinct.tolist()
    # each instance segment is exactly the pixels of its instanceIds value
    segmap = ds.segment_map(image_id)
    for r in seg[seg.is_instance].itertuples():
        assert np.array_equal(segmap == r.segment_id, values == r.source_instance)


def test_real_class_table_matches_official_definition(real):
    _, ds = real
    c = ds.classes.set_index("source_id")
    assert len(c) == 35 and list(ds.classes.class_id) == list(range(1, 36))
    car = c.loc[26]
    assert (car["name"], car["class_id"], car["train_id"], car["is_thing"], car["ignore"], car["color"]) == (
        "car",
        27,
        13,
        True,
        False,
        "#00008e",
    )
    unlabeled = c.loc[0]
    assert (
        unlabeled["name"],
        unlabeled["class_id"],
        unlabeled["ignore"],
        unlabeled["train_id"],
        unlabeled["is_thing"],
    ) == ("unlabeled", 1, True, 255, False)
    assert (c.loc[7, "name"], c.loc[7, "train_id"], c.loc[7, "source_name"]) == ("road", 0, "flat/road")
    assert (c.loc[33, "name"], c.loc[33, "train_id"], c.loc[33, "color"]) == ("bicycle", 18, "#770b20")
    assert c.loc[29, "ignore"] and c.loc[29, "train_id"] == 255 and c.loc[29, "is_thing"]  # caravan
    plate = c.loc[-1]
    assert (
        plate["name"] == "license plate" and plate["class_id"] == 35 and pd_isna(plate["train_id"]) and plate["ignore"]
    )
    assert sorted(c.train_id.dropna().astype(int).unique()) == list(range(19)) + [255]


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_real_class_colours_match_the_color_pngs(real):
    """The colour column against the dataset's own _color.png files: an independent witness."""
    root, ds = real
    color_of = {
        int(r.source_id): tuple(int(r.color[i : i + 2], 16) for i in (1, 3, 5)) for r in ds.classes.itertuples()
    }
    for split, ids in SAMPLE_IDS.items():
        for image_id in ids:
            files = sample_files(root, split, image_id)
            labels, rgba = np.asarray(Image.open(files["labelIds"])), np.asarray(Image.open(files["color"]))
            lut = np.zeros((256, 3), np.uint8)
            for label in np.unique(labels):
                lut[label] = color_of[int(label)]
            assert np.array_equal(rgba[..., :3], lut[labels]) and (rgba[..., 3] == 255).all()


def test_real_dataset_validates(real):
    _, ds = real
    assert validate(ds.path, workers=1) == []


def test_real_export_round_trip_is_exact(real, tmp_path):
    root, ds = real
    report = cityscapes.write(ds, tmp_path / "export", workers=2)
    assert report["images"] == 7 and report["files"] == 21 and report["layers"] == {"objects": "gtFine"}
    for split, ids in SAMPLE_IDS.items():
        for image_id in ids:
            src = sample_files(root, split, image_id)
            out = sample_files(tmp_path / "export", split, image_id)
            for kind in ("labelIds", "instanceIds", "color"):
                a, b = Image.open(src[kind]), Image.open(out[kind])
                assert a.mode == b.mode
                assert np.array_equal(np.asarray(a), np.asarray(b)), (image_id, kind)


@pytest.fixture()
def real_copy(samples, tmp_path):
    """A writable copy of the real samples (in tmp_path, never in the repository)."""
    src = require(samples / "cityscapes")
    dst = tmp_path / "cityscapes"
    for sub in ("gtFine", "leftImg8bit"):
        shutil.copytree(src / sub, dst / sub)
    return dst


def _instances_in(path: Path) -> int:
    return int((np.unique(pil(path)) >= 1000).sum())


def test_real_missing_instanceids_stops_or_is_skipped(real_copy, tmp_path):
    """frankfurt_000000_000294 has 7 instances: without its instanceIds they must not become 0."""
    files = sample_files(real_copy, "val", "frankfurt_000000_000294")
    assert _instances_in(files["instanceIds"]) == 7
    files["instanceIds"].unlink()
    with pytest.raises(InputError, match="file not found") as info:
        convert(cityscapes, real_copy, tmp_path / "u", workers=2)
    assert Path(info.value.path) == files["instanceIds"] and not (tmp_path / "u").exists()
    report = convert(cityscapes, real_copy, tmp_path / "u", workers=2, on_error="skip")
    (skipped,) = [p for p in report.problems if p["action"] == "skipped"]
    assert skipped["image_id"] == "frankfurt_000000_000294" and Path(skipped["file"]) == files["instanceIds"]
    ds = segdata.open(tmp_path / "u")
    assert report.images == 6 and "frankfurt_000000_000294" not in set(ds.images.image_id)
    seg = ds.segments
    for image_id in ("frankfurt_000000_000576", "aachen_000000_000019"):
        split = "val" if image_id.startswith("frankfurt") else "train"
        expected = _instances_in(sample_files(real_copy, split, image_id)["instanceIds"])
        assert int(seg[seg.image_id == image_id].is_instance.sum()) == expected


@pytest.mark.parametrize("image_id", ["frankfurt_000000_000294", "frankfurt_000000_000576"])
def test_real_cropped_instanceids_is_named(real_copy, tmp_path, image_id):
    """000294 has its leftImg8bit image (three files vote), 000576 has not (labelIds against instanceIds)."""
    files = sample_files(real_copy, "val", image_id)
    values = pil(files["instanceIds"])
    fx.write_instance_ids(files["instanceIds"], values[:1000])
    with pytest.raises(InputError, match="instanceIds is 2048x1000 but .*labelIds.png is 2048x1024") as info:
        convert(cityscapes, real_copy, tmp_path / "u", workers=2)
    assert Path(info.value.path) == files["instanceIds"]


def test_builders_are_byte_exact(samples, tmp_path):
    """The fixture builders, fed the real pixels and polygons, write the real files byte for byte."""
    base = require(samples / "cityscapes" / "gtFine" / "val" / "frankfurt") / "frankfurt_000000_000294_gtFine_"
    real = {
        kind: require(Path(f"{base}{kind}")).read_bytes()
        for kind in ("labelIds.png", "instanceIds.png", "color.png", "polygons.json")
    }
    labels = np.asarray(Image.open(Path(f"{base}labelIds.png")))
    values = np.asarray(Image.open(Path(f"{base}instanceIds.png")))
    rgba = np.asarray(Image.open(Path(f"{base}color.png")))
    colors = {int(label): tuple(int(c) for c in rgba[labels == label][0, :3]) for label in np.unique(labels)}
    poly = json.loads(real["polygons.json"])
    assert fx.write_label_ids(tmp_path / "l.png", labels).read_bytes() == real["labelIds.png"]
    assert fx.write_instance_ids(tmp_path / "i.png", values).read_bytes() == real["instanceIds.png"]
    assert fx.write_color(tmp_path / "c.png", labels, colors).read_bytes() == real["color.png"]
    written = fx.write_polygons(tmp_path / "p.json", poly["imgHeight"], poly["imgWidth"], poly["objects"])
    assert written.read_bytes() == real["polygons.json"]


# --------------------------------------------------------------------------- fixtures (no samples needed)


@pytest.fixture()
def small(tmp_path):
    return fx.small_dataset(tmp_path / "cityscapes")


@pytest.fixture()
def small_coarse(tmp_path):
    return fx.small_dataset(tmp_path / "cityscapes", coarse=True)


def test_fixture_segments_are_one_per_instance_ids_value(small, tmp_path):
    report = convert(cityscapes, small, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert report.images == 3 and ds.layers == ["objects"]
    seg = ds.segments[ds.segments.image_id == fx.A]
    v = fx.scene_a()
    distinct = np.unique(v).tolist()  # [0, 3, 7, 11, 23, 26, 24000, 26000, 26001]
    assert seg.segment_id.tolist() == list(range(1, len(distinct) + 1))
    labels = [x // 1000 if x >= 1000 else x for x in distinct]
    assert seg.class_id.tolist() == [label + 1 for label in labels]
    assert seg.is_instance.tolist() == [x >= 1000 for x in distinct]
    assert seg.source_instance.tolist()[-3:] == [24000, 26000, 26001]
    assert seg.source_instance.isna().tolist() == [x < 1000 for x in distinct]
    segmap = ds.segment_map(fx.A)
    for r in seg.itertuples():
        value = distinct[r.segment_id - 1]
        assert np.array_equal(segmap == r.segment_id, v == value)
        assert r.area == int((v == value).sum())
    boxes = bounding_boxes(segmap, len(distinct))
    assert np.array_equal(seg[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(), boxes)
    assert validate(ds.path, workers=1) == []


def test_fixture_group_region_is_a_car_class_region(small, tmp_path):
    convert(cityscapes, small, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    seg = ds.segments[(ds.segments.image_id == fx.A) & (ds.segments.class_id == 27)]  # car
    assert sorted(seg.is_instance.tolist()) == [False, True, True]
    group = seg[~seg.is_instance].iloc[0]
    assert group.area == 3 and (group.bbox_x, group.bbox_y, group.bbox_w, group.bbox_h) == (5, 2, 3, 1)
    # groups are crowds (createPanopticImgs.py: iscrowd 1); instances and stuff are not
    a = ds.segments[ds.segments.image_id == fx.A]
    assert a.loc[a.iscrowd, "segment_id"].tolist() == [group.segment_id]
    # the semantic map counts group pixels as car
    assert int((label_semantic(ds, fx.A) == 26).sum()) == int((fx.labels_of(fx.scene_a()) == 26).sum()) == 13
    # unlabeled (labelId 0) is Cityscapes' class 1, not segdata's "no annotation"
    assert ds.semantic(fx.A)[5, 0] == 1 and (ds.segment_map(fx.A) > 0).all()


def test_fixture_image_file_and_problems(small, tmp_path):
    convert(cityscapes, small, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    files = dict(zip(ds.images.image_id, ds.images.file))
    assert files[fx.V] == f"leftImg8bit/val/frankfurt/{fx.V}_leftImg8bit.png"
    assert pd_isna(files[fx.A]) and pd_isna(files[fx.B])
    assert sorted(ds.problems.image_id) == [fx.A, fx.B]
    assert (
        dict(zip(ds.images.image_id, ds.images.annotation))[fx.A] == f"gtFine/train/aachen/{fx.A}_gtFine_labelIds.png"
    )


def test_detect_accepts_the_gt_folder_itself(small):
    layout = cityscapes.detect(small / "gtFine")
    assert layout.root == small and layout.annotation == "gtFine"
    with pytest.raises(LayoutNotFoundError, match="gtFine/<split>"):
        cityscapes.detect(small / "gtFine" / "train")
    with pytest.raises(LayoutNotFoundError, match="needs .*gtCoarse"):
        cityscapes.detect(small, coarse=True)


def test_split_option_and_read_generator(small, tmp_path):
    convert(cityscapes, small, tmp_path / "v", split="val", workers=1)
    assert list(segdata.open(tmp_path / "v").images.image_id) == [fx.V]
    records = list(cityscapes.read(small))
    assert [r.image["image_id"] for r in records] == [fx.A, fx.B, fx.V]
    assert records[0].masks["objects"].shape == (6, 8) and records[0].classes == []


def test_gtcoarse_as_a_layer_next_to_gtfine(small_coarse, tmp_path):
    layout = cityscapes.detect(small_coarse, coarse=True)
    assert layout.release == "gtFine+gtCoarse"
    report = convert(cityscapes, small_coarse, tmp_path / "u", workers=1, options={"coarse": True})
    ds = segdata.open(tmp_path / "u")
    assert report.images == 3 and ds.layers == ["objects", "coarse"]  # X (train_extra) has no gtFine
    assert dict(zip(ds.images.image_id, ds.images.layers)) == {
        fx.A: "objects,coarse",
        fx.B: "objects",
        fx.V: "objects,coarse",
    }
    assert np.array_equal(label_semantic(ds, fx.A, "coarse"), fx.coarse_of(fx.scene_a()))
    assert np.array_equal(label_semantic(ds, fx.A, "objects"), fx.labels_of(fx.scene_a()))
    coarse = ds.segments[ds.segments.layer == "coarse"]
    assert not coarse.is_instance.any()
    assert validate(ds.path, workers=1) == []


def test_gtcoarse_on_its_own(small_coarse, tmp_path):
    """ROOT/gtCoarse picks gtCoarse although gtFine exists; a root with only gtCoarse is detected too."""
    convert(cityscapes, small_coarse / "gtCoarse", tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert ds.manifest["source"]["layout"] == "cityscapes-gtcoarse" and ds.layers == ["objects"]
    assert dict(zip(ds.images.image_id, ds.images.split)) == {fx.A: "train", fx.X: "train_extra", fx.V: "val"}
    assert np.array_equal(label_semantic(ds, fx.X), fx.coarse_of(fx.scene_b()))
    report = cityscapes.write(ds, tmp_path / "e", workers=1, color=False)
    assert report["layers"] == {"objects": "gtCoarse"} and report["files"] == 6
    rel = Path("gtCoarse/train_extra/augsburg") / f"{fx.X}_gtCoarse_instanceIds.png"
    assert np.array_equal(pil(tmp_path / "e" / rel), pil(small_coarse / rel))
    only = tmp_path / "only"
    shutil.copytree(small_coarse / "gtCoarse", only / "gtCoarse")
    assert cityscapes.detect(only).name == "cityscapes-gtcoarse"
    with pytest.raises(LayoutNotFoundError, match="gtCoarse on its own"):
        cityscapes.detect(only, coarse=True)


def test_export_round_trip_fixture_with_coarse_layer(small_coarse, tmp_path):
    convert(cityscapes, small_coarse, tmp_path / "u", workers=1, options={"coarse": True})
    report = cityscapes.write(tmp_path / "u", tmp_path / "e", workers=1)
    assert report["layers"] == {"coarse": "gtCoarse", "objects": "gtFine"} and report["files"] == 5 * 3
    for annotation, image_id, split, city in (
        ("gtFine", fx.A, "train", "aachen"),
        ("gtFine", fx.B, "train", "aachen"),
        ("gtFine", fx.V, "val", "frankfurt"),
        ("gtCoarse", fx.A, "train", "aachen"),
        ("gtCoarse", fx.V, "val", "frankfurt"),
    ):
        for kind in ("labelIds", "instanceIds", "color"):
            rel = Path(annotation) / split / city / f"{image_id}_{annotation}_{kind}.png"
            a, b = Image.open(small_coarse / rel), Image.open(tmp_path / "e" / rel)
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), rel
    assert not (tmp_path / "e" / "gtCoarse" / "train" / "aachen" / f"{fx.B}_gtCoarse_labelIds.png").exists()
    with pytest.raises(segdata.OutputExistsError):
        cityscapes.write(tmp_path / "u", tmp_path / "e")
    cityscapes.write(tmp_path / "u", tmp_path / "e", overwrite=True, workers=1, color=False)
    assert not list((tmp_path / "e").rglob("*_color.png"))


def test_export_refuses_other_families(tmp_path):
    from segdata.converters import ade20k
    from tests.fixtures.ade20k import small_2021_dataset

    convert(ade20k, small_2021_dataset(tmp_path / "ade"), tmp_path / "u", workers=1)
    with pytest.raises(SegdataError, match="converted from Cityscapes only.*'ade20k'"):
        cityscapes.write(tmp_path / "u", tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_export_numbers_instances_without_source_instance():
    label = np.array([26, 26, 26, 24, 7])
    is_instance = np.array([True, True, True, True, False])
    source = np.array([26000, -1, 26002, -1, -1])
    assert cityscapes._instance_values(label, is_instance, source).tolist() == [26000, 26001, 26002, 24000, 7]


# --------------------------------------------------------------------------- bad input


def _bad_16bit_labels(paths, v):
    Image.fromarray(fx.labels_of(v).astype(np.uint16)).save(paths["labelIds"])
    return "labelIds", "expected a 8-bit single-channel PNG, found 16-bit grey"


def _bad_8bit_instances(paths, v):
    Image.fromarray(fx.labels_of(v).astype(np.uint8)).save(paths["instanceIds"])
    return "instanceIds", "expected a 16-bit grey PNG, found 8-bit grey"


def _bad_rgb_labels(paths, v):
    Image.fromarray(np.zeros(v.shape + (3,), np.uint8)).save(paths["labelIds"])
    return "labelIds", "expected a 8-bit single-channel PNG, found 8-bit RGB"


def _bad_sizes(paths, v):
    fx.write_instance_ids(paths["instanceIds"], v[:, :-1])
    return "instanceIds", "instanceIds is 7x6 but .*labelIds.png is 8x6"


def _bad_sizes_labelids(paths, v):
    fx.write_label_ids(paths["labelIds"], fx.labels_of(v)[:-1])  # the labelIds file is the cropped one
    return "labelIds", "labelIds is 8x5 but .*instanceIds.png is 8x6 and .*leftImg8bit.png is 8x6"


def _bad_label_range(paths, v):
    labels = fx.labels_of(v)
    labels[0, :2] = 40
    fx.write_label_ids(paths["labelIds"], labels)
    return "labelIds", r"labelId\(s\) \[40\] outside 0..33 \(2 pixels\)"


def _bad_label_range_both(paths, v):
    v = v.copy()
    v[0, :2] = 40  # a consistent but out-of-range pair: the labelIds file is named
    fx.write_instance_ids(paths["instanceIds"], v)
    fx.write_label_ids(paths["labelIds"], fx.labels_of(v))
    return "labelIds", r"labelId\(s\) \[40\] outside 0..33"


def _bad_disagreement(paths, v):
    labels = fx.labels_of(v)
    labels[2, 0:3] = 33  # car pixels labelled bicycle
    fx.write_label_ids(paths["labelIds"], labels)
    return (
        "instanceIds",
        "3 pixels disagree with .*labelIds.png.*row 2, column 0: labelIds has 33, instanceIds gives 26",
    )


def _bad_instance_value(paths, v):
    v = v.copy()
    v[3, 3] = 500
    fx.write_instance_ids(paths["instanceIds"], v)
    return "instanceIds", r"value\(s\) \[500\] \(1 pixels\) are neither a labelId 0..33 nor labelId\*1000\+k"


def _bad_corrupt(paths, v):
    data = paths["instanceIds"].read_bytes()
    paths["instanceIds"].write_bytes(data[: len(data) // 2])
    return "instanceIds", "corrupt|truncated"


def _bad_not_png(paths, v):
    paths["labelIds"].write_bytes(b"this is not a PNG at all, just text")
    return "labelIds", "not a PNG"


def _bad_missing(paths, v):
    paths["instanceIds"].unlink()
    return "instanceIds", "file not found"


def _bad_image_size(paths, v):
    fx.write_left_image(paths["image"], 6, 9)  # both label files are 8x6: the image is the wrong one
    return "leftImg8bit", "leftImg8bit is 9x6 but .*instanceIds.png is 8x6 and .*labelIds.png is 8x6"


BAD = [
    _bad_16bit_labels,
    _bad_8bit_instances,
    _bad_rgb_labels,
    _bad_sizes,
    _bad_sizes_labelids,
    _bad_label_range,
    _bad_label_range_both,
    _bad_disagreement,
    _bad_instance_value,
    _bad_corrupt,
    _bad_not_png,
    _bad_missing,
    _bad_image_size,
]


@pytest.mark.parametrize("spoil", BAD, ids=[f.__name__[5:] for f in BAD])
def test_bad_input_raises_input_error_naming_the_file(tmp_path, spoil):
    root = tmp_path / "cityscapes"
    v = fx.scene_a()
    paths = fx.write_image(root, "train", "aachen", fx.A, v, image=True)
    kind, message = spoil(paths, v)
    # with the cross-check on, both files of the pair are read (without it, only instanceIds)
    layout = cityscapes.detect(root, check_labelids=True)
    (task,) = cityscapes.list_images(layout)
    with pytest.raises(InputError, match=message) as info:
        cityscapes.read_image(layout, task)
    assert Path(info.value.path).name == (f"{fx.A}_leftImg8bit.png" if kind == "leftImg8bit" else paths[kind].name)


def test_bad_image_is_skipped_on_request(small, tmp_path):
    folder = small / "gtFine" / "train" / "aachen"
    fx.write_label_ids(folder / f"{fx.B}_gtFine_labelIds.png", np.full((5, 8), 40))
    check = {"check_labelids": True}
    with pytest.raises(InputError, match="outside 0..33"):
        convert(cityscapes, small, tmp_path / "u", workers=1, options=check)
    assert not (tmp_path / "u").exists()
    report = convert(cityscapes, small, tmp_path / "u", workers=1, on_error="skip", options=check)
    assert report.images == 2
    (skipped,) = [p for p in report.problems if p["action"] == "skipped"]
    assert skipped["image_id"] == fx.B and skipped["file"].endswith(f"{fx.B}_gtFine_labelIds.png")


def test_labelids_are_not_decoded_unless_checked(small, tmp_path):
    """instanceIds holds every labelId: by default the labelIds file is not read at all (a
    broken one goes unnoticed, and the result equals the checked conversion of good files)."""
    convert(cityscapes, small, tmp_path / "checked", workers=1, options={"check_labelids": True})
    folder = small / "gtFine" / "train" / "aachen"
    (folder / f"{fx.B}_gtFine_labelIds.png").write_bytes(b"not a png")
    convert(cityscapes, small, tmp_path / "fast", workers=1)
    a, b = segdata.open(tmp_path / "checked"), segdata.open(tmp_path / "fast")
    for image_id in a.images.image_id:
        assert np.array_equal(a.semantic(image_id), b.semantic(image_id))


@pytest.mark.parametrize("check", [False, True])
def test_missing_instanceids_stops_the_run_naming_it(small, tmp_path, check):
    """A missing instanceIds PNG is an error, never "no instances" read from labelIds alone."""
    missing = small / "gtFine" / "train" / "aachen" / f"{fx.A}_gtFine_instanceIds.png"
    missing.unlink()
    with pytest.raises(InputError, match="file not found") as info:
        convert(cityscapes, small, tmp_path / "u", workers=1, options={"check_labelids": check})
    assert Path(info.value.path) == missing and not (tmp_path / "u").exists()


def test_missing_instanceids_is_skipped_and_listed_on_request(small, tmp_path):
    missing = small / "gtFine" / "train" / "aachen" / f"{fx.A}_gtFine_instanceIds.png"
    missing.unlink()
    report = convert(cityscapes, small, tmp_path / "u", workers=1, on_error="skip")
    ds = segdata.open(tmp_path / "u")
    assert report.images == 2 and sorted(ds.images.image_id) == [fx.B, fx.V]
    (skipped,) = [p for p in report.problems if p["action"] == "skipped"]
    assert skipped["image_id"] == fx.A and Path(skipped["file"]) == missing
    # V keeps its three instances (24000, 24003, 33000 in scene_v)
    assert int(ds.segments[ds.segments.image_id == fx.V].is_instance.sum()) == 3


def _crop_instance_ids(paths, v):
    fx.write_instance_ids(paths["instanceIds"], v[:, :-1])
    return "instanceIds", "instanceIds is 7x6 but .*labelIds.png is 8x6 and .*leftImg8bit.png is 8x6"


def _crop_label_ids(paths, v):
    fx.write_label_ids(paths["labelIds"], fx.labels_of(v)[:, 1:])
    return "labelIds", "labelIds is 7x6 but .*instanceIds.png is 8x6 and .*leftImg8bit.png is 8x6"


def _widen_image(paths, v):
    fx.write_left_image(paths["image"], 6, 9)
    return "image", "leftImg8bit is 9x6 but .*instanceIds.png is 8x6 and .*labelIds.png is 8x6"


CROPS = [_crop_instance_ids, _crop_label_ids, _widen_image]


@pytest.mark.parametrize("spoil", CROPS, ids=[f.__name__[1:] for f in CROPS])
def test_size_mismatch_names_the_wrong_file(tmp_path, spoil):
    """Default options (labelIds not decoded): the file whose size the other two do not share is named."""
    root = tmp_path / "cityscapes"
    v = fx.scene_a()
    paths = fx.write_image(root, "train", "aachen", fx.A, v, image=True)
    kind, message = spoil(paths, v)
    with pytest.raises(InputError, match=message) as info:
        convert(cityscapes, root, tmp_path / "u", workers=1)
    assert Path(info.value.path) == paths[kind]


def test_size_mismatch_without_a_third_file_says_so(tmp_path):
    root = tmp_path / "cityscapes"
    v = fx.scene_b()
    paths = fx.write_image(root, "train", "aachen", fx.B, v)  # no leftImg8bit image
    fx.write_label_ids(paths["labelIds"], fx.labels_of(v)[:-1])
    with pytest.raises(
        InputError, match="instanceIds is 8x5 but .*labelIds.png is 8x4 .the other files of this image do not tell"
    ) as info:
        convert(cityscapes, root, tmp_path / "u", workers=1)
    assert Path(info.value.path) == paths["instanceIds"]


def test_coarse_size_mismatch_names_the_coarse_file(small_coarse, tmp_path):
    folder = small_coarse / "gtCoarse" / "val" / "frankfurt"
    cropped = fx.write_instance_ids(folder / f"{fx.V}_gtCoarse_instanceIds.png", fx.coarse_of(fx.scene_v())[:-1])
    with pytest.raises(InputError, match="instanceIds is 8x5 but .*leftImg8bit.png is 8x6") as info:
        convert(cityscapes, small_coarse, tmp_path / "u", workers=1, options={"coarse": True})
    assert Path(info.value.path) == cropped
    # A has no leftImg8bit image: the four label files vote, two against two: the coarse file is named
    folder = small_coarse / "gtCoarse" / "train" / "aachen"
    fx.write_instance_ids(cropped, fx.coarse_of(fx.scene_v()))
    lab = fx.write_label_ids(folder / f"{fx.A}_gtCoarse_labelIds.png", fx.coarse_of(fx.scene_a())[1:])
    fx.write_instance_ids(folder / f"{fx.A}_gtCoarse_instanceIds.png", fx.coarse_of(fx.scene_a())[1:])
    with pytest.raises(InputError, match="instanceIds is 8x5 but .*labelIds.png is 8x5 and .*gtFine") as info:
        convert(cityscapes, small_coarse, tmp_path / "u2", workers=1, options={"coarse": True})
    assert Path(info.value.path) == lab.with_name(f"{fx.A}_gtCoarse_instanceIds.png")


def test_no_layout_names_what_was_looked_for(tmp_path):
    with pytest.raises(LayoutNotFoundError, match="gtFine/<split>/<city>/\\*_gtFine_labelIds.png"):
        cityscapes.detect(tmp_path)


# --------------------------------------------------------------------------- table and helpers


def test_label_table_lookups():
    assert cityscapes.NAME_TO_LABEL["car"].id == 26 and cityscapes.ID_TO_LABEL[24].name == "person"
    assert cityscapes.TRAIN_ID_TO_LABEL[13].name == "car" and len(cityscapes.TRAIN_ID_TO_LABEL) == 19
    assert cityscapes.TRAIN_ID_LUT[[0, 7, 26, 33]].tolist() == [255, 0, 13, 18]
    assert [cityscapes.class_id_of(i) for i in (0, 33, -1)] == [1, 34, 35]
    assert [cityscapes.label_id_of(c) for c in (1, 34, 35)] == [0, 33, -1]
    assert cityscapes.category_of("vehicle/car") == "vehicle"
    with pytest.raises(ValueError):
        cityscapes.class_id_of(34)


@pytest.mark.parametrize("seed", range(5))
def test_region_stats_equal_bincount_and_find_objects(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, size=2)
    values = rng.choice([0, 7, 11, 26, 26000, 26001, 33000], size=(h, w))
    present, areas, boxes = cityscapes.region_stats(values)
    expected_present, expected_areas = np.unique(values, return_counts=True)
    assert present.tolist() == expected_present.tolist() and areas.tolist() == expected_areas.tolist()
    lut = np.zeros(values.max() + 1, np.int64)
    lut[present] = np.arange(1, len(present) + 1)
    assert np.array_equal(boxes, bounding_boxes(lut[values], len(present)))

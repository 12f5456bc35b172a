"""ADE20K converter: real samples (SEGDATA_SAMPLES) and byte-exact fixtures.

Expected values are decoded independently of segdata: with Pillow and numpy straight from the
source PNGs and JSON, never through segdata.maskio.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import segdata
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.validate import validate
from tests.conftest import require
from tests.fixtures.ade20k import ade_rgb, b_value, small_2021_dataset, write_atr

STREET = "ADE20K_2021_17_01/images/ADE/training/urban/street"
STEMS_2021 = ["ADE_train_00016869", "ADE_train_00016900", "ADE_train_00016964"]
SEGS_2016 = [
    "ADE20K_2016_07_26/images/training/a/airport_terminal/ADE_train_00000001_seg.png",
    "ADE20K_2016_07_26/images/training/a/abbey/ADE_train_00000970_seg.png",
    "ADE20K_2016_07_26/images/validation/a/abbey/ADE_val_00000001_seg.png",
]


def decode_codes(png: Path) -> tuple[np.ndarray, np.ndarray]:
    """Independent ADE decoding: class code = R // 10 * 256 + G, instance = B."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
    return rgb[..., 0] // 10 * 256 + rgb[..., 1], rgb[..., 2]


def source_semantic(ds, image_id: str, layer: str) -> np.ndarray:
    """The unified semantic map expressed in source codes (through the class table)."""
    sem = ds.semantic(image_id, layer)
    to_source = np.zeros(int(ds.classes["class_id"].max()) + 1, dtype=np.int64)
    to_source[ds.classes["class_id"].to_numpy()] = ds.classes["source_id"].to_numpy()
    return to_source[sem]


def pixel_counts(codes: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(codes[codes > 0], return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def check_2021_image(folder: Path, stem: str, ds) -> None:
    """Every property the issue asks of a 2021-layout image, against the source files."""
    codes, _ = decode_codes(folder / f"{stem}_seg.png")
    assert np.array_equal(source_semantic(ds, stem, "objects"), codes)
    ann = json.loads((folder / f"{stem}.json").read_text())["annotation"]
    level0 = [o for o in ann["object"] if o["parts"]["part_level"] == 0]
    seg = ds.segments[ds.segments.image_id == stem]
    objects = seg[seg.layer == "objects"]
    assert int(objects["is_instance"].sum()) == len(level0)
    source_of = dict(zip(ds.classes["class_id"], ds.classes["source_id"]))
    assert {source_of[c] for c in objects["class_id"]} == {o["name_ndx"] for o in level0}
    levels = Counter(o["parts"]["part_level"] for o in ann["object"] if o["parts"]["part_level"] > 0)
    for level, n_parts in levels.items():
        part_codes, _ = decode_codes(folder / f"{stem}_parts_{level}.png")
        assert np.array_equal(source_semantic(ds, stem, f"parts-{level}"), part_codes)
        assert int(seg[seg.layer == f"parts-{level}"]["is_instance"].sum()) == n_parts
    # linking, checked against each object's own instance mask (never read by the converter)
    by_id = {o["id"]: o for o in ann["object"]}
    for level in sorted({o["parts"]["part_level"] for o in ann["object"]}):
        layer = "objects" if level == 0 else f"parts-{level}"
        segmap = ds.segment_map(stem, layer)
        rows = seg[(seg.layer == layer) & seg.is_instance]
        for r in rows.itertuples():
            obj = by_id[r.source_instance]
            visible = np.asarray(Image.open(folder / obj["instance_mask"])) == 255
            mine = segmap == r.segment_id
            iou = (visible & mine).sum() / max(1, (visible | mine).sum())
            assert iou > 0.9, (stem, layer, obj["id"], obj["name"], iou)
            if level > 0:
                parent_layer = "objects" if level == 1 else f"parts-{level - 1}"
                parent = seg[(seg.layer == parent_layer) & (seg.segment_id == r.parent_segment)]
                assert len(parent) == 1 and int(parent.source_instance.iloc[0]) == obj["parts"]["ispartof"]


@pytest.fixture(scope="module")
def ade2021(samples, tmp_path_factory):
    root = samples / "ade20k_full" / "ADE20K_2021_17_01"
    for stem in STEMS_2021:
        require(root / "images/ADE/training/urban/street" / f"{stem}_seg.png")
    out = tmp_path_factory.mktemp("ade2021") / "unified"
    convert(ade20k, root, out, workers=2)
    return root, segdata.open(out)


def test_2021_detected_as_2021(samples):
    layout = ade20k.detect(samples / "ade20k_full" / "ADE20K_2021_17_01")
    assert layout.name == "ade20k-2021"
    assert layout.image_root.name == "ADE20K_2021_17_01"


@pytest.mark.parametrize("stem", STEMS_2021)
def test_2021_sample_matches_source_files(ade2021, stem):
    root, ds = ade2021
    check_2021_image(root / "images/ADE/training/urban/street", stem, ds)


def test_2021_sample_class_names_are_the_json_names(ade2021):
    root, ds = ade2021
    names = dict(zip(ds.classes["source_id"], ds.classes["source_name"]))
    for stem in STEMS_2021:
        ann = json.loads((root / "images/ADE/training/urban/street" / f"{stem}.json").read_text())["annotation"]
        for o in ann["object"]:
            assert names[o["name_ndx"]] == o["name"]


@pytest.fixture(scope="module")
def generated2021(tmp_path_factory):
    """The same assertions where the samples are absent: a generated 2021-layout dataset."""
    from segdata.synthetic import generate_ade20k_2021

    base = tmp_path_factory.mktemp("gen2021")
    release = generate_ade20k_2021(base / "src", 6, image_size=(240, 320), n_classes=60, seed=3)
    convert(ade20k, release, base / "u", workers=2)
    return release, segdata.open(base / "u")


def test_2021_generated_matches_source_files(generated2021):
    release, ds = generated2021
    assert len(ds.images) == 6
    for seg in sorted(release.rglob("*_seg.png")):
        check_2021_image(seg.parent, seg.name[: -len("_seg.png")], ds)
    assert validate(ds.path, workers=1) == []


def test_2021_dataset_validates(ade2021):
    _, ds = ade2021
    assert validate(ds.path, workers=1) == []


# --------------------------------------------------------------------------- 2016 samples


@pytest.fixture(scope="module")
def ade2016(samples, tmp_path_factory):
    """The 2016 samples ship their _seg.png without _atr.txt (none is public); the fixture copies
    each PNG to a temporary 2016 tree and writes an _atr.txt for it, one line per instance, with
    instance numbers taken from the B rule round_half_up(k * 255 / N)."""
    root = tmp_path_factory.mktemp("ade2016") / "ADE20K_2016_07_26"
    expected = {}
    for rel in SEGS_2016:
        src = require(samples / "ade20k_full" / rel)
        dest = root / Path(rel).relative_to("ADE20K_2016_07_26")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        codes, b = decode_codes(src)
        bs = np.unique(b[codes > 0])
        n = len(bs)
        code_of_b = {int(v): int(np.unique(codes[b == v])[0]) for v in bs}
        rows = [(k, 0, 0, f"class {code_of_b[b_value(k, n)]}", f"raw {k}", "") for k in range(1, n + 1)]
        write_atr(dest.with_name(dest.name.replace("_seg.png", "_atr.txt")), rows)
        expected[dest.name[: -len("_seg.png")]] = (codes, b, n)
    out = root.parent / "unified"
    convert(ade20k, root, out, workers=1)
    return expected, segdata.open(out)


def test_2016_per_class_pixels_equal_source_png(ade2016):
    expected, ds = ade2016
    assert ds.manifest["source"]["layout"] == "ade20k-2016"
    for stem, (codes, b, n) in expected.items():
        assert pixel_counts(source_semantic(ds, stem, "objects")) == pixel_counts(codes)
        seg = ds.segments[(ds.segments.image_id == stem) & (ds.segments.layer == "objects")]
        assert int(seg["is_instance"].sum()) == n
        segmap = ds.segment_map(stem, "objects")
        for r in seg.itertuples():  # instance k is the region with B = round_half_up(k * 255 / n)
            assert np.array_equal(segmap == r.segment_id, (b == b_value(r.source_instance, n)) & (codes > 0))


def test_2016_split_from_folder(ade2016):
    _, ds = ade2016
    assert dict(zip(ds.images.image_id, ds.images.split)) == {
        "ADE_train_00000001": "train",
        "ADE_train_00000970": "train",
        "ADE_val_00000001": "val",
    }


def test_2016_without_atr_says_which_layouts(samples, tmp_path):
    with pytest.raises(segdata.LayoutNotFoundError, match="_atr.txt"):
        ade20k.detect(require(samples / "ade20k_full" / "ADE20K_2016_07_26"))


# --------------------------------------------------------------------------- SceneParsing


def test_challenge_per_class_pixels_and_names(samples, tmp_path):
    root = require(samples / "ade20k_challenge" / "ADEChallengeData2016")
    convert(ade20k, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert len(ds.classes) == 150
    info = (root / "objectInfo150.csv").read_text().splitlines()
    first = info[1].split(",")
    assert ds.classes.iloc[0]["class_id"] == int(first[0]) == 1
    assert ds.classes.iloc[0]["source_name"] == first[5]  # "wall"
    assert ds.classes.iloc[0]["is_thing"] == (first[4] == "0")
    n = 0
    for png in sorted((root / "annotations").rglob("*.png")):
        labels = np.asarray(Image.open(png)).astype(np.int64)
        sem = ds.semantic(png.stem)
        assert pixel_counts(sem) == pixel_counts(labels)
        assert np.array_equal(sem, labels)
        n += 1
    assert n == len(ds.images) == 5
    missing = ds.problems[ds.problems.image_id == "ADE_train_00000970"]
    assert list(missing.action) == ["converted"]  # its image is not in the samples: listed, not fatal
    assert validate(ds.path, workers=1) == []


# --------------------------------------------------------------------------- fixtures (no samples needed)


@pytest.fixture()
def small(tmp_path):
    return small_2021_dataset(tmp_path / "src")


def test_fixture_dataset_converts_with_parts_and_parents(small, tmp_path):
    report = convert(ade20k, small, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert report.images == 3 and ds.layers == ["objects", "parts-1", "parts-2"]
    assert sorted(ds.images.split) == ["train", "train", "val"]
    seg = ds.segments.set_index(["image_id", "layer", "source_instance"])
    a = "ADE_train_00000001"
    # the left car (JSON id 1) has B of instance 4, the right car (id 3) of instance 1: the
    # converter must link by polygon, not by B order
    left = int(seg.loc[(a, "objects", 1), "segment_id"])
    right = int(seg.loc[(a, "objects", 3), "segment_id"])
    segmap = ds.segment_map(a, "objects")
    assert (segmap[0:3, 4:6] == left).all() and (segmap[0:3, 6:8] == right).all()
    assert int(seg.loc[(a, "parts-1", 2), "parent_segment"]) == left
    wheel = int(seg.loc[(a, "parts-1", 2), "segment_id"])
    assert int(seg.loc[(a, "parts-2", 4), "parent_segment"]) == wheel
    assert int(seg.loc[(a, "objects", 0), "area"]) == 23  # 6x4 building minus one unlabeled pixel
    assert ds.semantic(a)[5, 0] == 0
    assert set(ds.classes.source_id) == {312, 401, 3050, 2122, 2855, 2420, 2131}
    assert dict(zip(ds.classes.source_id, ds.classes.name))[401] == "car"
    assert validate(ds.path, workers=1) == []


def test_fixture_split_and_limit(small, tmp_path):
    convert(ade20k, small, tmp_path / "v", split="validation", workers=1)
    assert list(segdata.open(tmp_path / "v").images.image_id) == ["ADE_val_00000001"]
    convert(ade20k, small, tmp_path / "l", limit=1, workers=1)
    assert list(segdata.open(tmp_path / "l").images.image_id) == ["ADE_train_00000001"]


def test_read_yields_records_without_writing(small):
    records = list(ade20k.read(small))
    assert [r.image["image_id"] for r in records] == ["ADE_train_00000001", "ADE_train_00000002", "ADE_val_00000001"]
    assert records[0].masks["objects"].shape == (6, 8)


def test_consistency_set_gives_one_layer_per_annotation(tmp_path):
    """Layout of ADE20K_2017_05_30_consistency: images/consistencyanalysis/<annotation>/ holding
    2016-layout files for the same stems. The re-annotation differs from the original in a
    known number of pixels; the unified layers must carry exactly that difference."""
    base = tmp_path / "ADE20K_2017_05_30_consistency" / "images" / "consistencyanalysis"
    codes = np.zeros((5, 6), np.int64)
    codes[:, :3] = 2978  # wall
    codes[:, 3:] = 977  # floor
    b = np.where(codes == 2978, b_value(1, 2), b_value(2, 2))
    second = codes.copy()
    second[0, 3] = 2978  # the re-annotator moved the boundary by one pixel
    b2 = np.where(second == 2978, b_value(1, 2), b_value(2, 2))
    for folder, c, bb in (("original_ade20k", codes, b), ("reannotation", second, b2)):
        (base / folder).mkdir(parents=True)
        Image.fromarray(ade_rgb(c, bb)).save(base / folder / "ADE_train_00000005_seg.png")
        write_atr(
            base / folder / "ADE_train_00000005_atr.txt",
            [(1, 0, 0, "wall", "wall", ""), (2, 0, 0, "floor, flooring", "floor", "")],
        )
    (base / "reannotation" / "ADE_train_00000006_seg.png").write_bytes(
        (base / "reannotation" / "ADE_train_00000005_seg.png").read_bytes()
    )
    write_atr(
        base / "reannotation" / "ADE_train_00000006_atr.txt",
        [(1, 0, 0, "wall", "wall", ""), (2, 0, 0, "floor, flooring", "floor", "")],
    )
    out = tmp_path / "u"
    report = convert(ade20k, tmp_path / "ADE20K_2017_05_30_consistency", out, workers=1)
    ds = segdata.open(out)
    assert report.layout == "ade20k-consistency"
    assert ds.layers == ["objects", "reannotation"]
    a = source_semantic(ds, "ADE_train_00000005", "objects")
    r = source_semantic(ds, "ADE_train_00000005", "reannotation")
    assert np.array_equal(a, codes) and np.array_equal(r, second)
    assert int((a != r).sum()) == 1
    # the image annotated only once keeps its one layer and is listed
    assert ds.segment_map("ADE_train_00000006", "objects").sum() == 0
    assert any("not annotated in this folder" in p for p in ds.problems.problem)
    assert validate(out, workers=1) == []


def test_2016_generated_matches_source_files_and_2021_parents(tmp_path):
    """A generated 2016-layout dataset (real _atr.txt files). The generator draws the same scenes
    in the 2021 layout for the same arguments, whose JSON states each part's parent: the parents
    the 2016 converter infers from overlap must be those."""
    from segdata.synthetic import generate_ade20k_2016, generate_ade20k_2021

    kw = {"image_size": (200, 260), "n_classes": 50, "seed": 5}
    r16 = generate_ade20k_2016(tmp_path / "s16", 5, **kw)
    r21 = generate_ade20k_2021(tmp_path / "s21", 5, **kw)
    convert(ade20k, r16, tmp_path / "u16", workers=1)
    convert(ade20k, r21, tmp_path / "u21", workers=1)
    d16, d21 = segdata.open(tmp_path / "u16"), segdata.open(tmp_path / "u21")
    assert d16.manifest["source"]["layout"] == "ade20k-2016"
    n_parts = 0
    for seg in sorted(r16.rglob("*_seg.png")):
        stem = seg.name[: -len("_seg.png")]
        codes, b = decode_codes(seg)
        assert np.array_equal(source_semantic(d16, stem, "objects"), codes)
        atr = [line.split(" # ") for line in seg.with_name(f"{stem}_atr.txt").read_text().splitlines()]
        n0 = sum(1 for cols in atr if cols[1] == "0")
        rows = d16.segments[(d16.segments.image_id == stem)]
        assert int(rows[rows.layer == "objects"].is_instance.sum()) == n0
        segmap = d16.segment_map(stem)
        for r in rows[rows.layer == "objects"].itertuples():
            assert np.array_equal(segmap == r.segment_id, (b == b_value(r.source_instance, n0)) & (codes > 0))
        for part_png in sorted(seg.parent.glob(f"{stem}_parts_*.png")):
            level = int(part_png.stem.rsplit("_", 1)[1])
            layer, parent_layer = f"parts-{level}", "objects" if level == 1 else f"parts-{level - 1}"
            assert np.array_equal(source_semantic(d16, stem, layer), decode_codes(part_png)[0])
            p16, q16 = d16.segment_map(stem, layer), d16.segment_map(stem, parent_layer)
            p21, q21 = d21.segment_map(stem, layer), d21.segment_map(stem, parent_layer)
            s21 = d21.segments[(d21.segments.image_id == stem) & (d21.segments.layer == layer)].set_index("segment_id")
            for r in rows[rows.layer == layer].itertuples():
                pixels = p16 == r.segment_id
                twin = int(p21[pixels][0])
                assert np.array_equal(p21 == twin, pixels)
                true_parent = int(s21.loc[twin, "parent_segment"])
                assert np.array_equal(q16 == r.parent_segment, q21 == true_parent)
                n_parts += 1
    assert n_parts > 0
    assert validate(d16.path, workers=1) == []


def test_challenge_generated_matches_source_files(tmp_path):
    from segdata.synthetic import generate_ade20k_challenge

    root = generate_ade20k_challenge(tmp_path / "src", 6, image_size=((60, 80), (120, 160)), seed=1)
    convert(ade20k, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    names = (root / "objectInfo150.csv").read_text().splitlines()[1:]
    assert list(ds.classes.source_name) == [line.split(",", 5)[5] for line in names]
    for png in sorted((root / "annotations").rglob("*.png")):
        labels = np.asarray(Image.open(png)).astype(np.int64)
        assert np.array_equal(ds.semantic(png.stem), labels)
    assert validate(ds.path, workers=1) == []


def test_index_pkl_names_classes_and_codes_missing_from_json(small, tmp_path):
    """With index_ade20k.pkl at the release root, names come from objectnames[code - 1], and a
    code without a JSON object is named from it instead of failing."""
    import pickle

    objectnames = [f"name of {code}" for code in range(1, 3101)]
    objectnames[401 - 1] = "car, auto, automobile, machine, motorcar"
    (small / "index_ade20k.pkl").write_bytes(pickle.dumps({"objectnames": objectnames}))
    png = small / "images/ADE/training/urban/street/ADE_train_00000002_seg.png"
    rgb = np.asarray(Image.open(png)).copy()
    rgb[0, 0] = ade_rgb(np.array([[777]]), np.array([[9]]))[0, 0]
    Image.fromarray(rgb).save(png)
    report = convert(ade20k, small, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    names = dict(zip(ds.classes.source_id, ds.classes.source_name))
    assert names[777] == "name of 777" and names[312] == "name of 312"
    assert dict(zip(ds.classes.source_id, ds.classes.name))[401] == "car"
    assert any("matches no object" in p["problem"] for p in report.problems)
    row = ds.segments[(ds.segments.image_id == "ADE_train_00000002") & (ds.segments.class_id == 777)]
    assert list(row.is_instance) == [False] and list(row.area) == [1]


def test_source_attributes_are_kept(tmp_path):
    src = small_2021_dataset(tmp_path / "src")
    folder = src / "images/ADE/training/urban/street"
    ann = json.loads((folder / "ADE_train_00000001.json").read_text())
    car = ann["annotation"]["object"][1]
    car.update(occluded="yes", crop="1", raw_name="old car", attributes=["parked", "red"])
    ann["annotation"]["object"][0]["occluded"] = []
    (folder / "ADE_train_00000001.json").write_text(json.dumps(ann))
    convert(ade20k, src, tmp_path / "u", workers=1)
    seg = segdata.open(tmp_path / "u").segments.set_index(["image_id", "layer", "source_instance"])
    row = seg.loc[("ADE_train_00000001", "objects", 1)]
    assert row.occluded == True and row.crop == True  # noqa: E712 (nullable booleans)
    assert row.raw_name == "old car" and row.attributes == "parked,red" and row.part_level == 0
    assert pd.isna(seg.loc[("ADE_train_00000001", "objects", 0)].occluded)
    assert seg.loc[("ADE_train_00000001", "parts-2", 4)].part_level == 2


# --------------------------------------------------------------------------- instance masks (--check-instance-masks)

STREET = "images/ADE/training/urban/street"


def test_instance_masks_not_read_without_the_option(small, tmp_path):
    # the masks are opened only with check_instance_masks: a deleted one changes nothing
    (small / STREET / "ADE_train_00000001/instance_003_ADE_train_00000001.png").unlink()
    report = convert(ade20k, small, tmp_path / "u", workers=1)
    assert report.images == 3 and report.problems == []
    assert not ade20k.detect(small).check_instance_masks


def test_fixture_instance_masks_agree_with_their_regions(small, tmp_path):
    report = convert(ade20k, small, tmp_path / "u", workers=1, options={"check_instance_masks": True})
    assert report.images == 3 and report.problems == []


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_fixture_damaged_instance_mask_is_named(small, tmp_path, damage):
    mask = small / STREET / "ADE_train_00000001/instance_003_ADE_train_00000001.png"
    if damage == "deleted":
        mask.unlink()
    else:
        mask.write_bytes(mask.read_bytes()[:60])
    with pytest.raises(segdata.InputError) as info:
        convert(ade20k, small, tmp_path / "u", workers=1, options={"check_instance_masks": True})
    assert "instance_003_ADE_train_00000001.png" in str(info.value)
    assert ("not found" if damage == "deleted" else "truncated") in str(info.value)


def test_fixture_mask_of_another_region_is_a_problem_naming_it(small, tmp_path):
    # the left car's mask (object 1) replaced by the right car's region: 0 of its 6 visible pixels
    # lie in the left car's 6-pixel region, IoU 0
    folder = small / STREET / "ADE_train_00000001"
    wrong = np.zeros((6, 8), np.uint8)
    wrong[0:3, 6:8] = 255
    Image.fromarray(wrong).save(folder / "instance_001_ADE_train_00000001.png")
    report = convert(ade20k, small, tmp_path / "u", workers=1, options={"check_instance_masks": True})
    [problem] = report.problems
    assert report.images == 3 and problem["action"] == "converted"
    assert problem["file"].endswith("instance_001_ADE_train_00000001.png")
    assert "IoU 0.000" in problem["problem"] and "class 401 B=255" in problem["problem"]


def test_check_instance_masks_refused_for_the_2016_layout(tmp_path):
    folder = tmp_path / "ADE20K_2016_07_26/images/training/a/abbey"
    folder.mkdir(parents=True)
    Image.fromarray(ade_rgb(np.full((3, 3), 312), np.full((3, 3), 255))).save(folder / "ADE_train_00000009_seg.png")
    write_atr(folder / "ADE_train_00000009_atr.txt", [(1, 0, False, "building", "building", "")])
    with pytest.raises(segdata.SelectionError, match="2021_17_01 layout only"):
        ade20k.detect(tmp_path / "ADE20K_2016_07_26", check_instance_masks=True)


@pytest.fixture()
def sample16900(samples, tmp_path):
    """A copy of the real image ADE_train_00016900 (37 objects, 37 instance masks) in the 2021 layout."""
    source = samples / "ade20k_full" / "ADE20K_2021_17_01" / STREET
    require(source / "ADE_train_00016900_seg.png")
    folder = tmp_path / "ADE20K_2021_17_01" / STREET
    folder.mkdir(parents=True)
    for path in source.glob("ADE_train_00016900*"):
        (shutil.copytree if path.is_dir() else shutil.copy)(path, folder / path.name)
    return tmp_path / "ADE20K_2021_17_01"


def test_sample_instance_masks_agree_with_their_regions(sample16900, tmp_path):
    # measured on the three real samples: IoU 1 for 134 of 139 objects, at least 0.964 for all
    report = convert(ade20k, sample16900, tmp_path / "u", workers=1, options={"check_instance_masks": True})
    assert report.images == 1 and report.problems == []


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_sample_damaged_instance_mask_is_named(sample16900, tmp_path, damage):
    mask = sample16900 / STREET / "ADE_train_00016900/instance_005_ADE_train_00016900.png"
    if damage == "deleted":
        mask.unlink()
    else:
        mask.write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])
    with pytest.raises(segdata.InputError, match="instance_005_ADE_train_00016900.png"):
        convert(ade20k, sample16900, tmp_path / "u", workers=1, options={"check_instance_masks": True})
    # without the option the masks are not read, and the conversion succeeds
    assert convert(ade20k, sample16900, tmp_path / "v", workers=1).images == 1


def test_cli_check_instance_masks_names_a_deleted_mask(small, tmp_path):
    from click.testing import CliRunner

    from segdata.cli import main

    (small / STREET / "ADE_train_00000002/instance_001_ADE_train_00000002.png").unlink()
    args = ["convert", "ade20k", str(small), str(tmp_path / "u"), "--workers", "1"]
    result = CliRunner().invoke(main, [*args, "--check-instance-masks"])
    assert result.exit_code == 1 and "instance_001_ADE_train_00000002.png" in result.output
    assert not (tmp_path / "u").exists()
    assert CliRunner().invoke(main, args).exit_code == 0  # not read without the option

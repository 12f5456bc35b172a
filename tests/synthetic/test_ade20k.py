"""Tests of segdata.synthetic: the written files are decoded here independently (Pillow + numpy), never through the
module's own helpers, and checked against the invariants of the real ADE20K files."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from segdata.synthetic import ade20k as syn
from segdata.synthetic.ade20k.generate import _draw_size as draw_size
from tests.conftest import require

SMALL = ((40, 56), (120, 160))

OBJECT_KEYS = [
    "id",
    "name",
    "name_ndx",
    "hypernym",
    "raw_name",
    "attributes",
    "depth_ordering_rank",
    "occluded",
    "crop",
    "parts",
    "instance_mask",
    "polygon",
    "saved_date",
]
DATE_RE = re.compile(r"^\d\d-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{4} \d\d:\d\d:\d\d$")


# ---------------------------------------------------------------------------------------------------------------------
# independent decoding helpers
# ---------------------------------------------------------------------------------------------------------------------


def round_half_up(k: int, n: int) -> int:
    return int(Fraction(k * 255, n) + Fraction(1, 2))


def decode_rgb(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(class code map, B map) of an ADE full-dataset label PNG."""
    with Image.open(path) as im:
        assert im.mode == "RGB"
        a = np.asarray(im)
    assert a.dtype == np.uint8 and a.ndim == 3
    assert np.all(a[..., 0] % 10 == 0)
    return (a[..., 0].astype(np.int64) // 10) * 256 + a[..., 1], a[..., 2].astype(np.int64)


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        out.append((data[i + 4 : i + 8], data[i + 8 : i + 8 + n]))
        i += 12 + n
    return out


def fill_polygon(xs, ys, height, width) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon(list(zip(xs, ys)), fill=1)
    return np.asarray(canvas) > 0


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def parse_atr(path: Path) -> list[list[str]]:
    text = path.read_text()
    assert text.endswith("\n")
    rows = [line.split(" # ") for line in text[:-1].split("\n")] if text != "\n" else []
    for r in rows:
        assert len(r) == 6, r
        assert re.fullmatch(r"\d{3,}", r[0]) and r[1].isdigit() and r[2] in ("0", "1")
        assert r[5].startswith('"') and r[5].endswith('"')
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ade2021(tmp_path_factory) -> Path:
    return syn.generate_ade20k_2021(
        tmp_path_factory.mktemp("a21"), 10, image_size=SMALL, n_classes=80, val_fraction=0.2, seed=3
    )


@pytest.fixture(scope="module")
def ade2016(tmp_path_factory) -> Path:
    return syn.generate_ade20k_2016(
        tmp_path_factory.mktemp("a16"), 10, image_size=SMALL, n_classes=80, val_fraction=0.2, seed=3
    )


# ---------------------------------------------------------------------------------------------------------------------
# encoding helpers
# ---------------------------------------------------------------------------------------------------------------------


def test_b_values_follow_round_half_up():
    for n in (1, 2, 3, 4, 7, 14, 51, 255):
        expected = [round_half_up(k, n) for k in range(1, n + 1)]
        got = syn.ade_instance_b_values(n)
        assert got.dtype == np.uint8 and got.tolist() == expected
        assert len(set(expected)) == n
    assert syn.ade_instance_b_values(2).tolist() == [128, 255]  # 127.5 rounds up
    assert syn.ade_instance_b_values(0).size == 0


def test_encode_ade_rgb_and_errors():
    codes = np.array([[0, 2978], [6655, 401]])
    inst = np.array([[0, 85], [170, 255]], np.uint8)
    rgb = syn.encode_ade_rgb(codes, inst)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert (rgb[..., 0].astype(int) // 10 * 256 + rgb[..., 1] == codes).all()
    assert (rgb[..., 2] == inst).all()
    with pytest.raises(ValueError, match="6656"):
        syn.encode_ade_rgb(np.array([[6656]]), np.array([[1]], np.uint8))
    with pytest.raises(ValueError, match="-3"):
        syn.encode_ade_rgb(np.array([[-3]]), np.array([[1]], np.uint8))
    with pytest.raises(ValueError, match="300"):
        syn.encode_ade_rgb(np.array([[1]]), np.array([[300]]))
    with pytest.raises(ValueError):
        syn.encode_ade_rgb(np.zeros((2, 2), int), np.zeros((2, 3), np.uint8))


def test_write_atr_format(tmp_path):
    p = syn.write_atr(
        tmp_path / "x_atr.txt", [(1, 0, 0, "wall", "wall", []), (12, 1, True, "door", "door", ["open", "wooden"])]
    )
    assert p.read_text() == '001 # 0 # 0 # wall # wall # ""\n012 # 1 # 1 # door # door # "open,wooden"\n'
    with pytest.raises(ValueError):
        syn.write_atr(tmp_path / "bad.txt", [(1, 0, 0, "a # b", "a", [])])


def test_class_vocabulary():
    v = syn.class_vocabulary(400, seed=1)
    codes = [c for c, _, _ in v]
    assert len(set(codes)) == 400 and all(1 <= c <= 3688 for c in codes)
    assert v[0] == (2978, "wall", "wall") and v[1][1] == "building, edifice" and v[2][1] == "sky"
    assert v[12][1] == "person, individual, someone, somebody, mortal, soul"
    assert v[:100] == syn.class_vocabulary(100, seed=1)  # prefix property
    assert v[60][2].startswith("object ")
    assert sorted(codes) != codes  # scattered, not contiguous ranks
    details = syn.class_details(60, seed=1)
    assert details[2].stuff and details[2].role == "top" and not details[12].stuff
    assert syn.class_vocabulary(400, seed=2)[:48] == v[:48]  # real names keep their real codes
    with pytest.raises(ValueError):
        syn.class_vocabulary(0)


def test_varied_sizes_span_tiny_to_megapixels():
    rng = np.random.default_rng(0)
    sizes = [draw_size("varied", rng) for _ in range(400)]
    areas = np.array([h * w for h, w in sizes])
    assert areas.min() < 2000 and areas.max() > 2_000_000
    assert all(h >= 4 and w >= 4 for h, w in sizes)


# ---------------------------------------------------------------------------------------------------------------------
# hand-made image
# ---------------------------------------------------------------------------------------------------------------------


def rect(x0, y0, x1, y1):
    return ((x0, x1, x1, x0), (y0, y0, y1, y1))


def hand_made() -> list[syn.SyntheticObject]:
    return [
        syn.SyntheticObject(2978, "wall", "wall", rect(0, 0, 7, 5)),
        syn.SyntheticObject(
            401, "car, auto, automobile, machine, motorcar", "car", rect(1, 2, 4, 4), attributes=("parked",)
        ),
        syn.SyntheticObject(1831, "person, individual, someone, somebody, mortal, soul", "person", rect(3, 1, 6, 3)),
        syn.SyntheticObject(3035, "wheel", "wheel", rect(1, 3, 2, 4), part_level=1, parent=1),
    ]


def test_hand_made_image_2021(tmp_path):
    image = syn.render_objects(6, 8, hand_made(), seed=None)  # seed=None: instance k in JSON order
    d = tmp_path / "ADE20K_2021_17_01" / "images" / "ADE" / "training" / "urban" / "street"
    written = syn.write_ade2021_image(d, "ADE_train_00000001", image)
    assert {p.name for p in written} >= {
        "ADE_train_00000001.jpg",
        "ADE_train_00000001.json",
        "ADE_train_00000001_seg.png",
        "ADE_train_00000001_parts_1.png",
    }
    codes = np.full((6, 8), 2978)
    codes[2:5, 1:5] = 401
    codes[1:4, 3:7] = 1831
    bvals = np.full((6, 8), 85)
    bvals[2:5, 1:5] = 170
    bvals[1:4, 3:7] = 255
    c, b = decode_rgb(d / "ADE_train_00000001_seg.png")
    assert (c == codes).all() and (b == bvals).all()
    pc, pb = decode_rgb(d / "ADE_train_00000001_parts_1.png")
    wheel = np.zeros((6, 8), bool)
    wheel[3:5, 1:3] = True
    assert (pc == np.where(wheel, 3035, 0)).all() and (pb == np.where(wheel, 255, 0)).all()

    def mask(obj_id):
        with Image.open(d / "ADE_train_00000001" / f"instance_{obj_id:03d}_ADE_train_00000001.png") as im:
            assert im.mode == "L" and im.size == (8, 6)
            return np.asarray(im)

    expected_wall = np.where(codes == 2978, 255, 128)
    assert (mask(0) == expected_wall).all()
    car = np.zeros((6, 8), int)
    car[2:5, 1:5] = 128
    car[codes == 401] = 255
    assert (mask(1) == car).all()
    assert (mask(2) == np.where(codes == 1831, 255, 0)).all()
    assert (mask(3) == np.where(wheel, 255, 0)).all()
    doc = json.loads((d / "ADE_train_00000001.json").read_text())
    ann = doc["annotation"]
    assert ann["folder"] == "ADE20K_2021_17_01/images/ADE/training/urban/street"
    assert ann["imsize"] == [6, 8, 3] and ann["filename"] == "ADE_train_00000001.jpg"
    objs = ann["object"]
    assert [o["id"] for o in objs] == [0, 1, 2, 3]
    assert objs[1]["parts"] == {"hasparts": 3, "ispartof": [], "part_level": 0}
    assert list(objs[3]["parts"]) == ["ispartof", "hasparts", "part_level"]
    assert objs[3]["parts"] == {"ispartof": 1, "hasparts": [], "part_level": 1}
    assert objs[1]["attributes"] == "parked" and objs[0]["attributes"] == []
    assert [o["occluded"] for o in objs] == ["yes", "yes", "no", "no"]
    assert objs[0]["crop"] == "1" and objs[1]["crop"] == "0"
    assert objs[1]["polygon"] == {"x": [1, 4, 4, 1], "y": [2, 2, 4, 4]}


def test_hand_made_image_2016_atr(tmp_path):
    image = syn.render_objects(6, 8, hand_made(), seed=None)
    syn.write_ade2016_image(tmp_path, "ADE_train_00000001", image)
    assert (tmp_path / "ADE_train_00000001_atr.txt").read_text() == (
        '001 # 0 # 1 # wall # wall # ""\n'
        '002 # 0 # 1 # car, auto, automobile, machine, motorcar # car # "parked"\n'
        '003 # 0 # 0 # person, individual, someone, somebody, mortal, soul # person # ""\n'
        '001 # 1 # 0 # wheel # wheel # ""\n'
    )
    assert not list(tmp_path.glob("*.json"))


def test_render_objects_rejects_hidden_object():
    objs = hand_made()[:3] + [syn.SyntheticObject(2978, "wall", "wall", rect(0, 0, 7, 5))]
    with pytest.raises(ValueError, match="no visible pixel"):
        syn.render_objects(6, 8, objs)
    with pytest.raises(ValueError, match="parent"):
        syn.render_objects(6, 8, [syn.SyntheticObject(3035, "wheel", "wheel", rect(0, 0, 2, 2), part_level=1)])


# ---------------------------------------------------------------------------------------------------------------------
# ADE20K 2021 layout
# ---------------------------------------------------------------------------------------------------------------------


def check_2021_image(json_path: Path, root: Path) -> Counter:
    stem = json_path.stem
    d = json_path.parent
    doc = json.loads(json_path.read_text())
    assert not json_path.read_bytes().endswith(b"\n")
    assert list(doc) == ["annotation"]
    ann = doc["annotation"]
    assert list(ann) == ["filename", "folder", "imsize", "source", "scene", "object"]
    assert ann["filename"] == f"{stem}.jpg"
    assert ann["folder"] == d.relative_to(root.parent).as_posix()
    assert list(ann["source"]) == ["folder", "filename", "origin"]
    assert all(isinstance(v, str) for v in ann["source"].values())
    scene = ann["scene"]
    assert len(scene) == 3 and scene[0] in ("indoor", "outdoor") and scene[1:] == [d.parent.name, d.name]
    h, w, three = ann["imsize"]
    assert three == 3
    with Image.open(d / f"{stem}.jpg") as jpg:
        assert jpg.format == "JPEG" and jpg.mode == "RGB" and jpg.size == (w, h)
    objs = ann["object"]
    by_id = {o["id"]: o for o in objs}
    assert len(by_id) == len(objs)
    levels: dict[int, list[dict]] = {}
    for rank, o in enumerate(objs, start=1):
        assert list(o) == OBJECT_KEYS
        assert isinstance(o["id"], int) and isinstance(o["name_ndx"], int) and 1 <= o["name_ndx"] <= 6655
        assert isinstance(o["name"], str) and isinstance(o["raw_name"], str)
        assert isinstance(o["hypernym"], list) and all(isinstance(x, str) for x in o["hypernym"])
        assert isinstance(o["attributes"], (list, str))
        assert o["depth_ordering_rank"] == rank
        assert o["occluded"] in ("yes", "no", [])
        assert o["crop"] in ("0", "1")
        assert o["instance_mask"] == f"{stem}/instance_{o['id']:03d}_{stem}.png"
        assert set(o["polygon"]) <= {"x", "y", "click_date"} and {"x", "y"} <= set(o["polygon"])
        xs, ys = o["polygon"]["x"], o["polygon"]["y"]
        assert len(xs) == len(ys) >= 3 and all(isinstance(v, int) for v in xs + ys)
        assert min(xs) >= 0 and max(xs) < w and min(ys) >= 0 and max(ys) < h
        assert DATE_RE.match(o["saved_date"])
        p = o["parts"]
        lv = p["part_level"]
        if lv == 0:
            assert list(p) == ["hasparts", "ispartof", "part_level"] and p["ispartof"] == []
        else:
            assert list(p) == ["ispartof", "hasparts", "part_level"]
            assert by_id[p["ispartof"]]["parts"]["part_level"] == lv - 1
        kids = [c["id"] for c in objs if c["parts"]["part_level"] > 0 and c["parts"]["ispartof"] == o["id"]]
        assert p["hasparts"] == ([] if not kids else kids[0] if len(kids) == 1 else kids)
        levels.setdefault(lv, []).append(o)
    assert sorted(levels) == list(range(len(levels)))
    masks = sorted(p.name for p in (d / stem).iterdir())
    assert masks == sorted(Path(o["instance_mask"]).name for o in objs)

    maps = {}
    for lv in range(max(levels, default=0) + 2):
        path = d / (f"{stem}_seg.png" if lv == 0 else f"{stem}_parts_{lv}.png")
        if lv > 0 and lv not in levels:
            assert not path.exists()
            continue
        chunks = png_chunks(path)
        assert [c[0] for c in chunks[:2]] == [b"IHDR", b"tIME"] and chunks[-1][0] == b"IEND"
        assert chunks[0][1][8:10] == b"\x08\x02"  # 8-bit RGB, as the real files
        codes, bvals = decode_rgb(path)
        assert codes.shape == (h, w)
        lvl = levels.get(lv, [])
        n = len(lvl)
        assert set(np.unique(codes)) - {0} == {o["name_ndx"] for o in lvl}
        assert len(np.unique(bvals)) == n + 1 and (bvals[codes == 0] == 0).all()
        assert set(np.unique(bvals)) - {0} == {round_half_up(k, n) for k in range(1, n + 1)}
        maps[lv] = (codes, bvals)
    visible = {}
    ranks_in_json = {lv: [] for lv in levels}
    for o in objs:
        lv = o["parts"]["part_level"]
        with Image.open(d / o["instance_mask"]) as im:
            assert im.mode == "L" and im.size == (w, h)
            m = np.asarray(im)
        assert set(np.unique(m)) <= {0, 128, 255}
        vis = m == 255
        assert vis.any()
        codes, bvals = maps[lv]
        b = np.unique(bvals[vis])
        assert b.size == 1
        assert (bvals == b[0]).sum() == vis.sum() and (bvals[vis] == b[0]).all()  # 255 == its pixels, exactly
        assert (codes[vis] == o["name_ndx"]).all()
        assert ((m > 0) == fill_polygon(o["polygon"]["x"], o["polygon"]["y"], h, w)).all()  # amodal = polygon
        visible[o["id"]] = vis
        ranks_in_json[lv].append(int(b[0]))
    for o in objs:  # parts lie inside their parent's visible region (parents may come later in JSON order)
        if o["parts"]["part_level"] > 0:
            assert (visible[o["parts"]["ispartof"]] | ~visible[o["id"]]).all()
    for seq in ranks_in_json.values():
        assert len(set(seq)) == len(seq)
    return Counter({lv: len(v) for lv, v in levels.items()})


def test_2021_layout_and_invariants(ade2021):
    assert ade2021.name == "ADE20K_2021_17_01"
    jsons = sorted(ade2021.rglob("*.json"))
    assert len(jsons) == 10
    assert sorted(p.stem for p in jsons if "train" in p.stem) == [f"ADE_train_{i:08d}" for i in range(1, 9)]
    assert sorted(p.stem for p in jsons if "val" in p.stem) == ["ADE_val_00000001", "ADE_val_00000002"]
    for p in jsons:
        rel = p.relative_to(ade2021).parts
        assert rel[:2] == ("images", "ADE") and rel[2] == ("training" if "train" in p.stem else "validation")
        assert len(rel) == 6
    total = Counter()
    for p in jsons:
        total += check_2021_image(p, ade2021)
    assert total[0] > 50 and total[1] > 0 and total[2] > 0  # parts and parts of parts occur


def test_2021_instance_ranks_are_shuffled(ade2021):
    shuffled = 0
    for p in sorted(ade2021.rglob("*.json")):
        doc = json.loads(p.read_text())["annotation"]
        _, bvals = decode_rgb(p.with_name(p.stem + "_seg.png"))
        seq = []
        for o in doc["object"]:
            if o["parts"]["part_level"] == 0:
                with Image.open(p.parent / o["instance_mask"]) as im:
                    seq.append(int(bvals[np.asarray(im) == 255][0]))
        shuffled += seq != sorted(seq)
    assert shuffled >= 8


def test_2021_real_sample_encoding_matches(samples):
    """Our B rule reproduces the real sample's B values."""
    seg = require(
        samples / "ade20k_full/ADE20K_2021_17_01/images/ADE/training/urban/street/ADE_train_00016869_parts_1.png"
    )
    _, bvals = decode_rgb(seg)
    n = len(np.unique(bvals)) - 1
    assert set(np.unique(bvals)) - {0} == set(syn.ade_instance_b_values(n).tolist())


def test_determinism_and_workers(tmp_path):
    kw = {"image_size": SMALL, "n_classes": 50, "seed": 11}
    a = syn.generate_ade20k_2021(tmp_path / "a", 5, **kw)
    b = syn.generate_ade20k_2021(tmp_path / "b", 5, workers=2, **kw)
    ta, tb = tree_bytes(a), tree_bytes(b)
    assert ta.keys() == tb.keys() and ta == tb
    c = syn.generate_ade20k_2021(tmp_path / "c", 5, **{**kw, "seed": 12})
    assert tree_bytes(c) != ta


def test_rank_frequency_follows_zipf_exponent(tmp_path):
    for exponent in (0.7, 1.3):
        root = syn.generate_ade20k_2016(
            tmp_path / str(exponent),
            250,
            image_size=((24, 32), (56, 72)),
            n_classes=300,
            zipf_exponent=exponent,
            parts=False,
            seed=5,
        )
        counts = Counter()
        for p in root.rglob("*_atr.txt"):
            counts.update(r[3] for r in parse_atr(p) if r[1] == "0")
        freq = np.array(sorted(counts.values(), reverse=True)[:20], float)
        slope = np.polyfit(np.log(np.arange(1, 21)), np.log(freq), 1)[0]
        assert abs(slope + exponent) <= 0.25, (exponent, slope)


# ---------------------------------------------------------------------------------------------------------------------
# ADE20K 2016 layout
# ---------------------------------------------------------------------------------------------------------------------


def test_2016_layout_and_atr(ade2016):
    assert ade2016.name == "ADE20K_2016_07_26"
    segs = sorted(ade2016.rglob("*_seg.png"))
    assert len(segs) == 10 and not list(ade2016.rglob("*.json"))
    name_to_code: dict[str, int] = {}
    for seg in segs:
        stem = seg.name[: -len("_seg.png")]
        rel = seg.relative_to(ade2016).parts
        assert rel[0] == "images" and rel[1] in ("training", "validation") and rel[2] == rel[3][0]
        assert (seg.parent / f"{stem}.jpg").exists()
        rows = parse_atr(seg.parent / f"{stem}_atr.txt")
        levels = [int(r[1]) for r in rows]
        assert levels == sorted(levels)
        for lv in sorted(set(levels)):
            lrows = [r for r in rows if int(r[1]) == lv]
            n = len(lrows)
            assert sorted(int(r[0]) for r in lrows) == list(range(1, n + 1))
            path = seg if lv == 0 else seg.parent / f"{stem}_parts_{lv}.png"
            codes, bvals = decode_rgb(path)
            assert len(np.unique(bvals)) == n + 1
            for r in lrows:
                sel = bvals == round_half_up(int(r[0]), n)
                assert sel.any()
                cls = np.unique(codes[sel])
                assert cls.size == 1
                assert name_to_code.setdefault(r[3], int(cls[0])) == int(cls[0])


def test_2016_and_2021_hold_the_same_scenes(ade2016, ade2021):
    a = {p.name: p for p in ade2016.rglob("*_seg.png")}
    b = {p.name: p for p in ade2021.rglob("*_seg.png")}
    assert a.keys() == b.keys()
    for name in a:
        ca, ba = decode_rgb(a[name])
        cb, bb = decode_rgb(b[name])
        assert (ca == cb).all() and (ba == bb).all()


# ---------------------------------------------------------------------------------------------------------------------
# ADEChallengeData2016
# ---------------------------------------------------------------------------------------------------------------------


def test_challenge_layout(tmp_path):
    root = syn.generate_ade20k_challenge(tmp_path, 12, image_size=((30, 40), (60, 80)), val_fraction=0.25, seed=2)
    assert root.name == "ADEChallengeData2016"
    anns = sorted((root / "annotations").rglob("*.png"))
    assert len(anns) == 12
    pixels = np.zeros(151, np.int64)
    present = {"training": np.zeros(151, int), "validation": np.zeros(151, int)}
    for ann in anns:
        split = ann.parent.name
        with Image.open(ann) as im:
            assert im.mode == "L"
            a = np.asarray(im)
        with Image.open(root / "images" / split / (ann.stem + ".jpg")) as jpg:
            assert jpg.mode == "RGB" and jpg.size == (a.shape[1], a.shape[0])
        assert a.max() <= 150
        c = np.bincount(a.ravel(), minlength=151)
        pixels += c
        present[split] += c > 0
    assert len(list((root / "annotations" / "validation").iterdir())) == 3
    raw = (root / "objectInfo150.csv").read_bytes()
    assert not raw.endswith(b"\n")
    lines = raw.decode().split("\n")
    assert lines[0] == "Idx,Ratio,Train,Val,Stuff,Name" and len(lines) == 151
    for i, line in enumerate(lines[1:], start=1):
        idx, ratio, tr, va, stuff, name = line.split(",")
        assert int(idx) == i and stuff in ("0", "1") and " " not in name and name
        assert re.fullmatch(r"\d\.\d{4}", ratio)
        assert abs(float(ratio) - pixels[i] / pixels.sum()) <= 5e-5
        assert int(tr) == present["training"][i] and int(va) == present["validation"][i]
    assert lines[1].endswith(",1,wall") and lines[2].endswith(",building;edifice")
    txt = (root / "objectInfo150.txt").read_text().split("\n")
    assert txt[0] == "Idx\tRatio\tTrain\tVal\tName" and txt[2].endswith("\tbuilding, edifice")
    scenes = (root / "sceneCategories.txt").read_text().splitlines()
    assert len(scenes) == 12 and scenes[0].startswith("ADE_train_00000001 ")


# ---------------------------------------------------------------------------------------------------------------------
# consistency set
# ---------------------------------------------------------------------------------------------------------------------


def test_consistency_counts_and_default_agreement(tmp_path):
    summary = syn.generate_ade20k_consistency(tmp_path, 12, image_size=((120, 160), (180, 240)), seed=2)
    base = tmp_path / "ADE20K_2017_05_30_consistency" / "images" / "consistencyanalysis"
    assert summary.path == tmp_path / "ADE20K_2017_05_30_consistency"
    assert sorted(p.name for p in base.iterdir()) == ["original_ade20k", "reannotation"]
    orig, new = base / "original_ade20k", base / "reannotation"
    assert sorted(p.name for p in orig.iterdir() if not p.name.endswith(("_parts_1.png", "_parts_2.png"))) == sorted(
        p.name for p in new.iterdir() if not p.name.endswith(("_parts_1.png", "_parts_2.png"))
    )
    changed = either = 0
    for rec in summary.images:
        a, _ = decode_rgb(orig / f"{rec.stem}_seg.png")
        b, bb = decode_rgb(new / f"{rec.stem}_seg.png")
        labelled = (a > 0) | (b > 0)
        diff = int(np.count_nonzero((a != b) & labelled))
        assert diff == rec.segmentation_quality + rec.naming + rec.quantity == rec.changed
        assert int(labelled.sum()) == rec.labelled_either
        assert (orig / f"{rec.stem}.jpg").read_bytes() == (new / f"{rec.stem}.jpg").read_bytes()
        rows = [r for r in parse_atr(new / f"{rec.stem}_atr.txt") if r[1] == "0"]
        assert len(np.unique(bb)) == len(rows) + 1
        changed += diff
        either += int(labelled.sum())
    assert summary.changed == changed and summary.labelled_either == either
    assert 0.80 <= summary.agreement <= 0.85
    assert abs(summary.agreement - (1 - changed / either)) < 1e-12
    f = summary.fractions()
    for key, target in (("segmentation_quality", 0.057), ("naming", 0.060), ("quantity", 0.059)):
        assert abs(f[key] - target) < 0.02, (key, f[key])
        assert getattr(summary, key) == sum(getattr(r, key) for r in summary.images)


def test_consistency_perturbation_is_controllable(tmp_path):
    none = syn.generate_ade20k_consistency(
        tmp_path / "none", 3, image_size=(64, 96), seed=4, perturbation=syn.ConsistencyPerturbation(0.0, 0.0, 0.0)
    )
    assert none.changed == 0 and none.agreement == 1.0
    for rec in none.images:
        for suffix in ("_seg.png", "_atr.txt"):
            assert (none.original_dir / f"{rec.stem}{suffix}").read_bytes() == (
                none.reannotation_dir / f"{rec.stem}{suffix}"
            ).read_bytes()
    only = syn.generate_ade20k_consistency(
        tmp_path / "names", 3, image_size=(64, 96), seed=4, perturbation=syn.ConsistencyPerturbation(0.0, 0.2, 0.0)
    )
    assert only.naming > 0 and only.segmentation_quality == only.quantity == 0
    with pytest.raises(ValueError):
        syn.ConsistencyPerturbation(0.5, 0.5, 0.1)


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_challenge_and_consistency_do_not_depend_on_workers(tmp_path):
    """The runner yields results as workers finish: the dataset files (sceneCategories.txt in stem order, the
    objectInfo150 counts) and the consistency summary must still be those of one in-process worker."""
    kw = {"image_size": ((20, 24), (90, 120)), "seed": 6}
    one = syn.generate_ade20k_challenge(tmp_path / "c1", 14, workers=1, **kw)
    three = syn.generate_ade20k_challenge(tmp_path / "c3", 14, workers=3, **kw)
    hashes = file_hashes(one)
    assert len(hashes) == 2 * 14 + 3 and hashes == file_hashes(three)
    stems = [line.split(" ")[0] for line in (one / "sceneCategories.txt").read_text().splitlines()]
    assert stems == [f"ADE_train_{i:08d}" for i in range(1, 14)] + ["ADE_val_00000001"]
    s1 = syn.generate_ade20k_consistency(tmp_path / "k1", 7, workers=1, **kw)
    s2 = syn.generate_ade20k_consistency(tmp_path / "k2", 7, workers=2, **kw)
    assert [r.stem for r in s1.images] == [f"ADE_train_{i:08d}" for i in range(1, 8)]
    assert s1.images == s2.images and s1.changed > 0
    assert file_hashes(s1.path) == file_hashes(s2.path)

"""Synthetic Cityscapes generator: file formats, consistency with its own polygons, determinism,
realism of the scenes, and that the converter reads it."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import segdata
from segdata.convert import convert
from segdata.converters import cityscapes
from segdata.synthetic.cityscapes import generate_cityscapes
from segdata.validate import validate

SIZE = (96, 192)
THINGS = {"person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate_cityscapes(tmp_path_factory.mktemp("gen") / "cityscapes", 8, image_size=SIZE, seed=3)


def files(root: Path, suffix: str) -> list[Path]:
    return sorted(root.glob(f"gtFine/*/*/*_gtFine_{suffix}"))


def test_layout_ids_and_splits(generated):
    labels = files(generated, "labelIds.png")
    assert len(labels) == 8
    for kind in ("instanceIds.png", "color.png", "polygons.json"):
        assert len(files(generated, kind)) == 8
    for path in labels:
        split, city = path.parent.parent.name, path.parent.name
        assert re.fullmatch(rf"{city}_\d{{6}}_000019_gtFine_labelIds.png", path.name)
        assert split == ("val" if int(path.name.split("_")[1]) % 6 == 1 else "train")
    assert not (generated / "leftImg8bit").exists()


def test_png_types_are_those_of_the_real_files(generated):
    for suffix, mode in (("labelIds.png", "L"), ("instanceIds.png", "I;16"), ("color.png", "RGBA")):
        for path in files(generated, suffix):
            with Image.open(path) as im:
                assert im.mode == mode and im.size == (SIZE[1], SIZE[0]), path


def test_label_ids_and_colours_agree_with_instance_ids(generated):
    color = {
        int(r.source_id): tuple(int(r.color[i : i + 2], 16) for i in (1, 3, 5))
        for r in cityscapes.class_table().itertuples()
    }
    for path in files(generated, "instanceIds.png"):
        v = np.asarray(Image.open(path)).astype(np.int64)
        labels = np.asarray(Image.open(str(path).replace("instanceIds", "labelIds"))).astype(np.int64)
        assert np.array_equal(labels, np.where(v >= 1000, v // 1000, v))
        rgba = np.asarray(Image.open(str(path).replace("instanceIds", "color")))
        lut = np.array([color[i] for i in range(34)], np.uint8)
        assert np.array_equal(rgba[..., :3], lut[labels]) and (rgba[..., 3] == 255).all()
        assert ((v < 34) | ((v >= 1000) & (v < 34000))).all()
        assert set(np.unique(v[v >= 1000]) // 1000) <= {24, 25, 26, 27, 28, 29, 30, 31, 32, 33}


def test_pngs_are_the_polygons_drawn_as_cityscapes_scripts_does(generated):
    """json2instanceImg.py, restated: fill polygons in order, groups as the base class, license
    plates (id -1) skipped, k counted per class in list order."""
    ids = {r.name: int(r.source_id) for r in cityscapes.class_table().itertuples()}
    for path in files(generated, "polygons.json"):
        data = json.loads(path.read_text())
        assert (data["imgHeight"], data["imgWidth"]) == SIZE
        canvas = Image.new("I", (data["imgWidth"], data["imgHeight"]), 0)
        draw = ImageDraw.Draw(canvas)
        seen: Counter = Counter()
        for obj in data["objects"]:
            label, group = obj["label"], False
            if label not in ids and label.endswith("group"):
                label, group = label[:-5], True
            value = ids[label]
            if value < 0:
                continue
            if label in THINGS and not group:
                value, seen[label] = value * 1000 + seen[label], seen[label] + 1
            assert all(0 <= x < SIZE[1] and 0 <= y < SIZE[0] or obj["label"] == "out of roi" for x, y in obj["polygon"])
            draw.polygon([tuple(p) for p in obj["polygon"]], fill=value)
        expected = np.asarray(canvas)
        assert np.array_equal(np.asarray(Image.open(str(path).replace("polygons.json", "instanceIds.png"))), expected)


def test_deterministic_whatever_the_workers(tmp_path):
    a = generate_cityscapes(tmp_path / "a", 4, image_size=(48, 96), seed=7, workers=1)
    b = generate_cityscapes(tmp_path / "b", 4, image_size=(48, 96), seed=7, workers=2)
    c = generate_cityscapes(tmp_path / "c", 4, image_size=(48, 96), seed=8, workers=1)
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and len(names) == 16
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert any((a / n).read_bytes() != (c / n).read_bytes() for n in names)


def test_fast_encoding_has_the_same_pixels(tmp_path, generated):
    fast = generate_cityscapes(tmp_path / "fast", 8, image_size=SIZE, seed=3, png="fast", polygons=False)
    for path in files(generated, "*.png"):
        other = fast / path.relative_to(generated)
        a, b = Image.open(path), Image.open(other)
        assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
        assert path.read_bytes() != other.read_bytes()
    assert not files(fast, "polygons.json")


def test_scenes_look_like_street_scenes(tmp_path):
    root = generate_cityscapes(
        tmp_path / "many", 30, image_size=(128, 256), seed=0, png="fast", polygons=False, workers=2
    )
    instances, groups, rows_road, rows_sky = [], 0, np.zeros(128), np.zeros(128)
    for path in files(root, "instanceIds.png"):
        v = np.asarray(Image.open(path)).astype(np.int64)
        instances.append(len(np.unique(v[v >= 1000])))
        groups += bool(np.isin(v, [24, 26, 33]).any())
        labels = np.where(v >= 1000, v // 1000, v)
        rows_road += (labels == 7).mean(axis=1)
        rows_sky += (labels == 23).mean(axis=1)
        assert (labels == 1).any() and (labels == 3).any()  # ego vehicle, out of roi
    assert 7 <= np.mean(instances) <= 13, instances
    assert groups >= 5  # group regions: thing pixels without instance id
    assert rows_road[96:].mean() > 0.3 > rows_road[:40].mean()  # road at the bottom
    assert rows_sky[:20].mean() > 0.2 > rows_sky[80:].mean()  # sky at the top


def test_converts_and_validates_with_images(tmp_path):
    root = generate_cityscapes(tmp_path / "src", 3, image_size=(64, 128), seed=1, left_images="png")
    convert(cityscapes, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    assert ds.images.file.notna().all() and ds.problems.empty
    assert validate(ds.path, workers=1) == []
    for row in ds.images.itertuples():
        v = np.asarray(Image.open(root / row.annotation.replace("labelIds", "instanceIds"))).astype(np.int64)
        seg = ds.segments[ds.segments.image_id == row.image_id]
        assert int(seg.is_instance.sum()) == len(np.unique(v[v >= 1000]))


def test_left_image_dirs_for_datumaro(tmp_path):
    root = generate_cityscapes(tmp_path / "d", 2, image_size=(32, 64), left_images="dirs")
    assert sorted(p.name for p in (root / "leftImg8bit").iterdir()) == ["train", "val"]
    assert not list((root / "leftImg8bit").rglob("*.png"))


@pytest.mark.parametrize("kwargs", [{"png": "jpeg"}, {"left_images": "jpg"}, {"image_size": (8, 8)}, {"n_images": -1}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_cityscapes(tmp_path / "x", **{"n_images": 1, **kwargs})

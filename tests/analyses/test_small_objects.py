"""Object sizes: COCO bucket edges exactly, instance areas and connected components against
independent computations."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage

import segdata
from segdata.analyses import small_objects as so
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.synthetic import generate_ade20k_challenge
from tests.conftest import require
from tests.fixtures.ade20k import small_2021_dataset


def coco_bucket(area: int) -> str:
    return "small" if area < 32 * 32 else "medium" if area < 96 * 96 else "large"


@pytest.mark.parametrize(
    "area,expected",
    [(1, "small"), (1023, "small"), (1024, "medium"), (9215, "medium"), (9216, "large"), (10**6, "large")],
)
def test_coco_size_bucket_edges(area, expected):
    assert so.size_bucket([area])[0] == expected


def test_instance_sizes_equal_source_regions(samples, tmp_path):
    """Every (class code, B) region of the real _seg.png files is one instance; its pixel count,
    decoded here with Pillow, is its size."""
    root = samples / "ade20k_full" / "ADE20K_2021_17_01"
    pngs = sorted(require(root / "images/ADE/training/urban/street").glob("*_seg.png"))
    convert(ade20k, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    expected = Counter()
    areas = []
    for png in pngs:
        rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
        key = (rgb[..., 0] // 10 * 256 + rgb[..., 1]) * 256 + rgb[..., 2]
        key = key[key >= 256]
        _, counts = np.unique(key, return_counts=True)
        areas.extend(counts.tolist())
        expected.update(coco_bucket(a) for a in counts)
    report = so.small_objects_report(ds, workers=1)
    assert report["unit"] == "instances"
    assert report["size_buckets"] == {b: expected[b] for b in ("small", "medium", "large")}
    assert report["objects"] == len(areas)
    assert report["below_stride"]["16"] == pytest.approx(np.mean(np.asarray(areas) < 256))
    assert report["area_quantiles"]["q50"] == pytest.approx(np.median(areas))


def test_connected_components_stand_in_without_instances(samples, tmp_path):
    """SceneParsing maps have no instances: components of each class region, counted here with
    scipy.ndimage.label (8-connectivity, class by class), are the objects."""
    root = require(samples / "ade20k_challenge" / "ADEChallengeData2016")
    convert(ade20k, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    expected = []
    per_class = Counter()
    for png in sorted((root / "annotations").rglob("*.png")):
        labels = np.asarray(Image.open(png))
        for c in np.unique(labels[labels > 0]):
            comps, n = ndimage.label(labels == c, structure=np.ones((3, 3)))
            sizes = np.bincount(comps.ravel())[1:]
            expected.extend(sizes.tolist())
            per_class[int(c)] += n
    objects, unit = so.object_sizes(ds, workers=2)
    assert unit == "connected components"
    assert sorted(objects["area"].tolist()) == sorted(expected)
    assert objects.groupby("class_id").size().to_dict() == dict(per_class)


def test_zero_area_objects_counted_apart(tmp_path):
    src = small_2021_dataset(tmp_path / "src")
    folder = src / "images/ADE/training/urban/street"
    ann = json.loads((folder / "ADE_train_00000002.json").read_text())
    hidden = dict(
        ann["annotation"]["object"][0], id=7, name="person", name_ndx=1831, polygon={"x": [0, 1, 1], "y": [0, 0, 1]}
    )
    ann["annotation"]["object"].append(hidden)
    (folder / "ADE_train_00000002.json").write_text(json.dumps(ann))
    convert(ade20k, src, tmp_path / "u", workers=1)
    report = so.small_objects_report(segdata.open(tmp_path / "u"))
    assert report["zero_area"] == 1
    # building 23, 2 cars 6 each, tree 12, road 21, sky 14, tree 16: all small
    assert report["size_buckets"] == {"small": 7, "medium": 0, "large": 0}
    cars = [c for c in report["classes"] if c["name"] == "car"][0]
    assert cars["instances"] == 2 and cars["median_area"] == 6


def test_cli_json_and_plots(tmp_path):
    src = small_2021_dataset(tmp_path / "src")
    convert(ade20k, src, tmp_path / "u", workers=1)
    result = CliRunner().invoke(
        main, ["analyze", "small-objects", str(tmp_path / "u"), "--json", "--plots", str(tmp_path / "p")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["size_buckets"]) == {"small", "medium", "large"}
    assert set(report["classes"][0]) >= {"class_id", "name", "instances", "small", "medium", "large", "median_area"}
    for name in ("size_histogram", "median_size_vs_frequency"):
        assert (tmp_path / "p" / f"{name}.png").stat().st_size > 0


class _RecordingExecutor(ThreadPoolExecutor):
    """A thread pool that records the pickled size of every task it is given (what a process pool
    or a Dask cluster would have to send)."""

    def __init__(self):
        super().__init__(2)
        self.task_bytes: list[int] = []

    def submit(self, fn, *args, **kwargs):
        self.task_bytes.append(len(pickle.dumps((fn, args, kwargs))))
        return super().submit(fn, *args, **kwargs)


def _scene_parsing(tmp_path, n):
    root = generate_ade20k_challenge(tmp_path / f"src{n}", n_images=n, image_size=((48, 64), (48, 64)), seed=3)
    convert(ade20k, root, tmp_path / f"u{n}", workers=1)
    return root, segdata.open(tmp_path / f"u{n}")


def test_component_tasks_do_not_grow_with_the_number_of_images(tmp_path):
    """Each task carries its own images' lookup tables only: a batch of the same size costs the
    same bytes on 8 images as on 64 (the whole dataset's tables used to travel in every task,
    which made the analysis quadratic in the number of images)."""
    sizes = {}
    for n in (8, 64):
        _, ds = _scene_parsing(tmp_path, n)
        with _RecordingExecutor() as pool:
            objects, unit = so.object_sizes(ds, executor=pool, workers=1)
        assert unit == "connected components" and len(objects) > 0
        sizes[n] = sum(pool.task_bytes) / n  # bytes sent per image
    assert sizes[64] < 1.5 * sizes[8], sizes


def test_components_are_booked_to_their_own_image(tmp_path):
    """Per image, the components counted here with scipy.ndimage (8-connectivity, class by class)
    on the source PNG equal the rows of that image, with two workers returning out of order."""
    root, ds = _scene_parsing(tmp_path, 24)
    objects, _ = so.object_sizes(ds, workers=2)
    got = objects.groupby("image_id")["area"].apply(sorted).to_dict()
    for png in sorted((root / "annotations").rglob("*.png")):
        labels = np.asarray(Image.open(png))
        sizes = []
        for c in np.unique(labels[labels > 0]):
            comps, _ = ndimage.label(labels == c, structure=np.ones((3, 3)))
            sizes.extend(np.bincount(comps.ravel())[1:].tolist())
        assert got.get(png.stem, []) == sorted(sizes), png.stem


@pytest.mark.parametrize(
    "option,value,listed", [("--split", "tset", "splits: train, val"), ("--layer", "nosuch", "layers: objects")]
)
def test_unknown_split_or_layer_is_a_usage_error_listing_what_exists(tmp_path, option, value, listed):
    _, ds = _scene_parsing(tmp_path, 12)  # 10% validation: train and val
    with pytest.raises(segdata.SelectionError, match=listed):
        so.object_sizes(ds, **{option.strip("-"): value})
    result = CliRunner().invoke(main, ["analyze", "small-objects", str(ds.path), option, value, "--json"])
    assert result.exit_code == 2 and listed in result.output

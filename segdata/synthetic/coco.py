"""A synthetic COCO instances dataset of any size, in the exact on-disk layout of COCO 2017.

Written for the memory benchmark: ``generate_coco_instances(dest)`` writes, by default, a JSON
of COCO train2017's size (118,287 images, 860,001 annotations, about 450 MB) whose records have
the shape and the byte size of the real ones::

    dest/annotations/instances_<split><year>.json
    dest/<split><year>/<12-digit id>.jpg          (one tiny JPEG per image, unless image_files=False)

Conventions (measured on the two real COCO val2017 subsets in the shared samples):

- keys and their order, separators (``", "``, ``": "``), one line: as in the official files.
- polygons: 1 per annotation (93%), 2 (5%), 3 or 4 (2%); points per polygon log-normal with
  median 14 and mean 18.4 (the samples: median 14-15, mean 18.4-19.5), at least 3; coordinates
  ``x, y`` in pixels, 3 decimals (the images are small, so 3 decimals give the real files'
  ~6 characters per coordinate; mean record ~510 bytes as in the samples).
- crowd annotations: 1.06% (COCO train: 9,101 of 860,001), uncompressed RLE ``counts`` lists in
  column-major order starting with background, a few kilobytes of text each as in the samples.
- annotations are in random order (the worst case for grouping them per image); per-image
  counts are skewed (gamma-distributed), and about 1% of the images have none, as in COCO.
- images are ``image_size`` = (height, width) pixels, 48 x 64 by default: the JSON is full size,
  the pixel work is small.

Everything is seeded: the same arguments give the same bytes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["generate_coco_instances", "COCO_TRAIN2017_IMAGES", "COCO_TRAIN2017_ANNOTATIONS"]

COCO_TRAIN2017_IMAGES = 118_287
COCO_TRAIN2017_ANNOTATIONS = 860_001
_POOL = 20_000  # distinct polygon geometries; annotations draw from them
_CROWD_POOL = 200


def _categories() -> list[dict]:
    from segdata.converters.coco import COCO_STUFF_NAMES, COCO_UNUSED_THING_IDS

    return [
        {"supercategory": "thing", "id": i, "name": COCO_STUFF_NAMES[i]}
        for i in range(1, 91)
        if i not in COCO_UNUSED_THING_IDS
    ]


def _polygon_text(rng: np.random.Generator, h: int, w: int) -> tuple[str, float, list[float]]:
    """One annotation's ``segmentation`` text, its polygon area and its box."""
    n_poly = int(rng.choice([1, 2, 3, 4], p=[0.93, 0.05, 0.015, 0.005]))
    polys = []
    area = 0.0
    xs_all, ys_all = [], []
    for _ in range(n_poly):
        n = int(np.clip(round(rng.lognormal(np.log(14), 0.74)), 3, 200))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(2, w / 3), rng.uniform(2, h / 3)
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(0.6, 1.0, n)
        xs = np.clip(cx + rx * r * np.cos(t), 0, w)
        ys = np.clip(cy + ry * r * np.sin(t), 0, h)
        xs_all.append(xs)
        ys_all.append(ys)
        area += 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
        coords = np.empty(2 * n)
        coords[0::2], coords[1::2] = xs, ys
        polys.append("[" + ", ".join(f"{v:.3f}" for v in coords) + "]")
    xs, ys = np.concatenate(xs_all), np.concatenate(ys_all)
    box = [
        round(float(xs.min()), 2),
        round(float(ys.min()), 2),
        round(float(xs.max() - xs.min()), 2),
        round(float(ys.max() - ys.min()), 2),
    ]
    return "[" + ", ".join(polys) + "]", round(area, 2), box


def _crowd_text(rng: np.random.Generator, h: int, w: int) -> tuple[str, float, list[float]]:
    """An uncompressed crowd RLE of a few kilobytes covering a random block of the image."""
    total = h * w
    runs = []
    left = total
    on = False
    while left > 0:
        run = int(min(left, rng.integers(1, 4) if rng.random() < 0.9 else rng.integers(4, 40)))
        runs.append(run)
        left -= run
        on = not on
    area = float(sum(runs[1::2]))
    seg = json.dumps({"counts": runs, "size": [h, w]})
    return seg, area, [0.0, 0.0, float(w), float(h)]


def _tiny_jpeg(h: int, w: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 127, np.uint8)).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def generate_coco_instances(
    dest: str | Path,
    n_images: int = COCO_TRAIN2017_IMAGES,
    n_annotations: int = COCO_TRAIN2017_ANNOTATIONS,
    *,
    image_size: tuple[int, int] = (48, 64),
    split: str = "train",
    year: str = "2017",
    seed: int = 0,
    image_files: bool = True,
    crowd_fraction: float = 0.0106,
) -> Path:
    """Write a synthetic COCO instances dataset under ``dest``; returns ``dest``.

    Parameters
    ----------
    dest : path
        Dataset root; ``annotations/instances_<split><year>.json`` and ``<split><year>/`` are
        written into it.
    n_images, n_annotations : int
        Default: COCO train2017's counts.
    image_size : (int, int)
        ``(height, width)`` of every image, in pixels.
    image_files : bool
        Write one small JPEG per image (all identical bytes); False leaves them missing, which
        the converter reports per image.
    crowd_fraction : float
        Share of annotations that are crowd RLEs.
    """
    dest = Path(dest)
    h, w = image_size
    rng = np.random.default_rng(seed)
    ann_dir = dest / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    image_ids = np.sort(rng.choice(np.arange(1, max(600_000, 5 * n_images)), size=n_images, replace=False))
    # skewed annotations per image; ~1% of the images get none
    weights = rng.gamma(1.2, 1.0, n_images)
    weights[rng.random(n_images) < 0.01] = 0.0
    owner = rng.choice(n_images, size=n_annotations, p=weights / weights.sum())
    polygons = [_polygon_text(rng, h, w) for _ in range(min(_POOL, max(1, n_annotations)))]
    crowds = [_crowd_text(rng, h, w) for _ in range(_CROWD_POOL)]
    pick = rng.integers(0, len(polygons), n_annotations)
    crowd = rng.random(n_annotations) < crowd_fraction
    crowd_pick = rng.integers(0, len(crowds), n_annotations)
    categories = _categories()
    cat_ids = np.array([c["id"] for c in categories])[rng.integers(0, len(categories), n_annotations)]
    info = {
        "description": "segdata synthetic COCO",
        "url": "https://example.org",
        "version": "1.0",
        "year": int(year) if year.isdigit() else 2017,
        "contributor": "segdata",
        "date_created": "2017/09/01",
    }
    licenses = [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"}]
    folder = f"{split}{year}"
    with open(ann_dir / f"instances_{folder}.json", "w", encoding="utf-8") as f:
        f.write(f'{{"info": {json.dumps(info)}, "licenses": {json.dumps(licenses)}, "images": [')
        batch = []
        for i, iid in enumerate(image_ids.tolist()):
            batch.append(
                f'{{"license": 4, "file_name": "{iid:012d}.jpg", "coco_url": "http://images.cocodataset.org/{folder}/'
                f'{iid:012d}.jpg", "height": {h}, "width": {w}, "date_captured": "2013-11-14 17:02:52", '
                f'"flickr_url": "http://farm7.staticflickr.com/6116/{iid}_da26cf2c9e_z.jpg", "id": {iid}}}'
            )
            if len(batch) == 10_000 or i == n_images - 1:
                f.write((", " if i >= len(batch) else "") + ", ".join(batch))
                batch = []
        f.write('], "annotations": [')
        owner_ids = image_ids[owner].tolist()
        for i in range(n_annotations):
            if crowd[i]:
                seg, area, box = crowds[crowd_pick[i]]
                iscrowd = 1
            else:
                seg, area, box = polygons[pick[i]]
                iscrowd = 0
            batch.append(
                f'{{"segmentation": {seg}, "area": {area}, "iscrowd": {iscrowd}, "image_id": {owner_ids[i]}, '
                f'"bbox": [{box[0]}, {box[1]}, {box[2]}, {box[3]}], "category_id": {cat_ids[i]}, "id": {i + 1}}}'
            )
            if len(batch) == 10_000 or i == n_annotations - 1:
                f.write((", " if i >= len(batch) else "") + ", ".join(batch))
                batch = []
        f.write(f'], "categories": {json.dumps(categories)}}}')
    if image_files:
        img_dir = dest / folder
        img_dir.mkdir(parents=True, exist_ok=True)
        blob = _tiny_jpeg(h, w)
        for iid in image_ids.tolist():
            (img_dir / f"{iid:012d}.jpg").write_bytes(blob)
    return dest

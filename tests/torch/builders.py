"""Write small unified datasets straight from arrays, so that a test states every pixel, segment
and class (and so the figures it expects) itself.

``write_unified(root, classes, images)`` writes ``segdata.json``, the three tables and the masks
(through ``segdata.maskio.write_segment_map``, as a conversion does); images, when given, are
written with Pillow under ``images/<split>/`` (``image_root`` is the dataset itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from segdata.format import (
    CLASS_SCHEMA,
    CLASSES_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_SCHEMA,
    IMAGES_FILE,
    MANIFEST,
    SEGMENT_SCHEMA,
    SEGMENTS_FILE,
    mask_relpath,
    table_from_columns,
)
from segdata.maskio import write_segment_map
from segdata.synthetic.pngs import paeth_png  # noqa: F401  (the tests import it from here)


@dataclass
class Img:
    """One image: ``segmap`` (H, W) segment ids (0 = none), ``classes`` {segment_id: class_id};
    ``rgb`` (H, W, 3) uint8 written as ``images/<split>/<id>.<ext>``; ``areas`` overrides the
    pixel count of segments (an area-0 row for an id absent from the map)."""

    image_id: str
    split: str
    segmap: np.ndarray
    classes: dict[int, int]
    rgb: np.ndarray | None = None
    ext: str = "png"
    areas: dict[int, int] = field(default_factory=dict)


def write_unified(root: Path, classes: list[tuple], images: list[Img]) -> Path:
    """``classes``: ``(class_id, name, train_id or None, ignore)`` rows. Returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cls = {
        "class_id": [c[0] for c in classes],
        "name": [c[1] for c in classes],
        "source_id": [c[0] for c in classes],
        "source_name": [c[1] for c in classes],
        "is_thing": [None] * len(classes),
        "ignore": [bool(c[3]) for c in classes],
        "train_id": [c[2] for c in classes],
        "color": ["#%06x" % (c[0] * 2654435761 % 0xFFFFFF) for c in classes],
    }
    pq.write_table(table_from_columns(cls, CLASS_SCHEMA), root / CLASSES_FILE)
    rows_i: dict[str, list] = {k: [] for k in ("image_id", "split", "width", "height", "file", "annotation", "layers")}
    rows_s: dict[str, list] = {k: [] for k in ("image_id", "layer", "segment_id", "class_id", "area")}
    rows_s.update({k: [] for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h", "parent_segment", "is_instance", "iscrowd")})
    for img in sorted(images, key=lambda i: (i.split, i.image_id)):
        h, w = img.segmap.shape
        mask = root / mask_relpath("objects", img.split, img.image_id)
        mask.parent.mkdir(parents=True, exist_ok=True)
        write_segment_map(mask, np.asarray(img.segmap))
        file = None
        if img.rgb is not None:
            file = f"images/{img.split}/{img.image_id}.{img.ext}"
            (root / file).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.rgb).save(root / file)
        for key, value in zip(
            rows_i, (img.image_id, img.split, w, h, file, f"ann/{img.image_id}.png", "objects"), strict=True
        ):
            rows_i[key].append(value)
        for sid in sorted(img.classes):
            area = img.areas.get(sid, int((img.segmap == sid).sum()))
            rows_s["image_id"].append(img.image_id)
            rows_s["layer"].append("objects")
            rows_s["segment_id"].append(sid)
            rows_s["class_id"].append(img.classes[sid])
            rows_s["area"].append(area)
            for key in ("bbox_x", "bbox_y", "bbox_w", "bbox_h", "parent_segment"):
                rows_s[key].append(0)
            rows_s["is_instance"].append(False)
            rows_s["iscrowd"].append(False)
    pq.write_table(table_from_columns(rows_i, IMAGE_SCHEMA), root / IMAGES_FILE)
    pq.write_table(table_from_columns(rows_s, SEGMENT_SCHEMA), root / SEGMENTS_FILE)
    splits: dict[str, int] = {}
    for img in images:
        splits[img.split] = splits.get(img.split, 0) + 1
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": root.name,
        "source": {"family": "test", "layout": "test"},
        "image_root": ".",
        "splits": splits,
        "layers": [{"name": "objects", "parent": None, "description": "objects"}],
        "counts": {"images": len(images), "segments": len(rows_s["image_id"]), "classes": len(classes)},
        "problems": [],
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return root

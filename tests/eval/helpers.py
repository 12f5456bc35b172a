"""Shared pieces of the eval tests: a unified-format writer, grey PNG writers, the CLI runner and
the reference counts the oracles start from.

Everything here is written from docs/format.md and the tools' documented rules, independently of
segdata's own code: masks and predictions are written with Pillow, tables with pyarrow, and the
per-class counts are plain numpy comparisons pixel by pixel (no confusion-matrix helper of
segdata is used).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner
from PIL import Image

from segdata.cli import main

# --------------------------------------------------------------------------- CLI


def run_cli(*args):
    """``segdata ARGS`` in-process; returns click's result (``stdout`` alone, ``output`` mixed)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def eval_json(*args) -> dict:
    """``segdata eval ARGS --json``, asserting exit 0, parsed."""
    result = run_cli("eval", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error_line(result) -> str:
    """The single ``error:`` line of a failed command (asserting there is exactly one)."""
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def per_class(report: dict, key: str = "name") -> dict:
    """``per_class`` entries of an eval report keyed by ``key``."""
    return {entry[key]: entry for entry in report["per_class"]}


# --------------------------------------------------------------------------- PNG


def write_grey(path: Path, arr: np.ndarray) -> Path:
    """A single-channel grey PNG with Pillow: 8-bit for uint8 input, 16-bit otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        Image.fromarray(arr, mode="L").save(path)
    else:
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError("16-bit PNG values must be in 0..65535")
        Image.fromarray(arr.astype(np.uint16)).save(path)  # mode I;16
    return path


def read_grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int64)


# --------------------------------------------------------------------------- unified format


def _schema(columns: list[tuple[str, pa.DataType]]) -> pa.Schema:
    return pa.schema(columns)


CLASS_COLUMNS = [
    ("class_id", pa.int32()),
    ("name", pa.string()),
    ("source_id", pa.int64()),
    ("source_name", pa.string()),
    ("is_thing", pa.bool_()),
    ("ignore", pa.bool_()),
    ("train_id", pa.int32()),
    ("color", pa.string()),
]
IMAGE_COLUMNS = [
    ("image_id", pa.string()),
    ("split", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("file", pa.string()),
    ("annotation", pa.string()),
    ("layers", pa.string()),
    ("scene", pa.string()),
]
SEGMENT_COLUMNS = [
    ("image_id", pa.string()),
    ("layer", pa.string()),
    ("segment_id", pa.int32()),
    ("class_id", pa.int32()),
    ("is_instance", pa.bool_()),
    ("iscrowd", pa.bool_()),
    ("area", pa.int64()),
    ("bbox_x", pa.int32()),
    ("bbox_y", pa.int32()),
    ("bbox_w", pa.int32()),
    ("bbox_h", pa.int32()),
    ("parent_segment", pa.int32()),
    ("source_area", pa.float64()),
    ("pixels_lost", pa.int64()),
    ("source_instance", pa.int64()),
    ("part_level", pa.int8()),
    ("occluded", pa.bool_()),
    ("crop", pa.bool_()),
    ("raw_name", pa.string()),
    ("attributes", pa.string()),
]


def class_rows(names: list[str], *, ignore=(), train_ids: dict[int, int] | None = None, things=()) -> list[dict]:
    """Class rows ``class_id = 1..len(names)``; ``ignore`` and ``things`` are sets of class ids."""
    rows = []
    for i, name in enumerate(names, start=1):
        rows.append(
            {
                "class_id": i,
                "name": name,
                "source_id": i,
                "source_name": name,
                "is_thing": i in things,
                "ignore": i in ignore,
                "train_id": None if train_ids is None else train_ids.get(i),
                "color": f"#{(i * 37) % 256:02x}{(i * 91) % 256:02x}{(i * 151) % 256:02x}",
            }
        )
    return rows


def write_unified(
    root: Path,
    classes: list[dict],
    images: list[tuple],
    *,
    family: str = "test",
    name: str = "evaltest",
) -> Path:
    """Write a unified-format dataset (docs/format.md) with one layer, ``objects``.

    ``images``: ``(image_id, split, semantic)`` or ``(image_id, split, semantic, instances)``,
    ``semantic`` an (H, W) array of class ids (0 = no annotation), ``instances`` an (H, W) array
    of instance numbers (0 = not an instance; a number is one instance within its class). One
    segment per (class, instance) pair: class regions have ``is_instance`` false.
    """
    root.mkdir(parents=True)
    img_rows, seg_rows = [], []
    for item in images:
        image_id, split, sem = item[0], item[1], np.asarray(item[2], dtype=np.int64)
        inst = np.asarray(item[3], dtype=np.int64) if len(item) > 3 else np.zeros_like(sem)
        h, w = sem.shape
        key = sem * (1 << 20) + inst
        values, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.reshape(sem.shape)
        segmap = np.zeros(sem.shape, dtype=np.int64)
        next_id = 1
        for k, v in enumerate(values.tolist()):
            cid, number = v >> 20, v & ((1 << 20) - 1)
            if cid == 0:
                continue
            where = inverse == k
            segmap[where] = next_id
            rows, cols = np.nonzero(where)
            seg_rows.append(
                {
                    "image_id": image_id,
                    "layer": "objects",
                    "segment_id": next_id,
                    "class_id": int(cid),
                    "is_instance": bool(number),
                    "iscrowd": False,
                    "area": int(where.sum()),
                    "bbox_x": int(cols.min()),
                    "bbox_y": int(rows.min()),
                    "bbox_w": int(cols.max() - cols.min() + 1),
                    "bbox_h": int(rows.max() - rows.min() + 1),
                    "parent_segment": 0,
                    "source_area": None,
                    "pixels_lost": None,
                    "source_instance": int(number) if number else None,
                    "part_level": None,
                    "occluded": None,
                    "crop": None,
                    "raw_name": None,
                    "attributes": None,
                }
            )
            next_id += 1
        dtype = np.uint8 if next_id <= 256 else np.uint16
        write_grey(root / "masks" / "objects" / split / f"{image_id}.png", segmap.astype(dtype))
        img_rows.append(
            {
                "image_id": image_id,
                "split": split,
                "width": w,
                "height": h,
                "file": None,
                "annotation": f"{image_id}.png",
                "layers": "objects",
                "scene": None,
            }
        )
    img_rows.sort(key=lambda r: (r["split"], r["image_id"]))
    seg_rows.sort(key=lambda r: (r["image_id"], r["layer"], r["segment_id"]))
    for rows, columns, file in (
        (sorted(classes, key=lambda r: r["class_id"]), CLASS_COLUMNS, "classes.parquet"),
        (img_rows, IMAGE_COLUMNS, "images.parquet"),
        (seg_rows, SEGMENT_COLUMNS, "segments.parquet"),
    ):
        schema = _schema(columns)
        table = pa.table({c: pa.array([r[c] for r in rows], type=t) for c, t in columns}, schema=schema)
        pq.write_table(table, root / file)
    splits: dict[str, int] = {}
    for r in img_rows:
        splits[r["split"]] = splits.get(r["split"], 0) + 1
    manifest = {
        "format": "segdata-unified",
        "format_version": 1,
        "name": name,
        "source": {"family": family, "layout": f"{family}-test", "release": "test", "root": str(root)},
        "image_root": ".",
        "splits": dict(sorted(splits.items())),
        "layers": [{"name": "objects", "parent": None, "description": "whole objects and stuff"}],
        "counts": {"images": len(img_rows), "segments": len(seg_rows), "classes": len(classes)},
        "problems": [],
        "segdata_version": "0.1.0",
    }
    (root / "segdata.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return root


def write_vocab(path: Path, entries: list[tuple[str, list[int]]], ignore_index: int | None = None) -> Path:
    """A vocabulary file (docs/format.md): entry ``i`` is train id ``i``."""
    doc = {
        "format": "segdata-vocab",
        "format_version": 1,
        "classes": [{"train_id": i, "name": n, "class_ids": list(c)} for i, (n, c) in enumerate(entries)],
    }
    if ignore_index is not None:
        doc["ignore_index"] = ignore_index
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------- counts


def pixel_counts(pairs, num_classes: int, miss_values=()):
    """Per-class TP, GT, PRED pixel counts summed over ``pairs`` of (gt, pred) eval-index maps,
    one class at a time by comparison (no confusion matrix).

    ``gt``: eval index ``0..K-1`` or negative (ignored: the pixel is not counted anywhere).
    ``pred``: eval index ``0..K-1``; any other value is a miss (counted in GT only).
    """
    tp = np.zeros(num_classes, dtype=np.int64)
    gt_n = np.zeros(num_classes, dtype=np.int64)
    pr_n = np.zeros(num_classes, dtype=np.int64)
    for gt, pred in pairs:
        gt, pred = np.asarray(gt), np.asarray(pred)
        valid = gt >= 0
        for c in range(num_classes):
            g = valid & (gt == c)
            p = valid & (pred == c)
            tp[c] += int((g & p).sum())
            gt_n[c] += int(g.sum())
            pr_n[c] += int(p.sum())
    return tp, gt_n, pr_n

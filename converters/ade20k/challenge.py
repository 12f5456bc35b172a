"""ADEChallengeData2016 (SceneParsing, 150 classes): uint8 class maps and ``objectInfo150``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from segdata.convert import ConvertedImage, SegmentRows
from segdata.errors import InputError
from segdata.maskio import read_png
from segdata.regions import bounding_boxes

from .layout import Layout, Task
from .levels import _check_size, _image_row, _missing_image

# --------------------------------------------------------------------------- challenge


def read_object_info(path: Path) -> pd.DataFrame:
    """Read ``objectInfo150.csv`` (``Idx,Ratio,Train,Val,Stuff,Name``) or ``objectInfo150.txt``
    (tab-separated ``Idx Ratio Train Val Name``) into a DataFrame with columns
    ``idx`` (1..150), ``ratio`` (pixel share, fraction), ``train``, ``val`` (image counts),
    ``stuff`` (bool or None), ``name`` (the raw string)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "class list not found") from None
    delimiter = "," if path.suffix == ".csv" else "\t"
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    need = ["Idx", "Ratio", "Train", "Val", "Name"]
    if any(h not in header for h in need):
        raise InputError(path, f"header {header} lacks one of {need}")
    col = {h: i for i, h in enumerate(header)}
    out = []
    for lineno, rec in enumerate(reader, 2):
        if not rec or not "".join(rec).strip():
            continue
        try:
            out.append(
                {
                    "idx": int(rec[col["Idx"]]),
                    "ratio": float(rec[col["Ratio"]]),
                    "train": int(rec[col["Train"]]),
                    "val": int(rec[col["Val"]]),
                    "stuff": bool(int(rec[col["Stuff"]])) if "Stuff" in col else None,
                    "name": rec[col["Name"]].strip(),
                }
            )
        except (ValueError, IndexError):
            raise InputError(path, f"line {lineno}: malformed row {rec}") from None
    return pd.DataFrame(out)


def _read_challenge(layout: Layout, task: Task) -> ConvertedImage:
    sub, stem = task.stem.split("/")
    png = layout.root / "annotations" / sub / f"{stem}.png"
    labels = read_png(png, expect="grey8")
    if labels.ndim != 2:
        raise InputError(png, f"expected a single-channel label PNG, found shape {labels.shape}")
    counts = np.bincount(labels.ravel(), minlength=256)
    bad = np.flatnonzero(counts[151:])
    if bad.size:
        raise InputError(
            png, f"unknown class value(s) {(bad + 151).tolist()[:5]}: ADEChallengeData2016 labels are 0..150"
        )
    image = layout.root / "images" / sub / f"{stem}.jpg"
    _check_size(png, labels.shape, image, None, None)
    rows = SegmentRows(task.image_id)
    present = np.flatnonzero(counts[1:151]) + 1
    boxes = bounding_boxes(labels, 150)
    for c in present:
        rows.add("objects", c, c, False, counts[c], boxes[c - 1])
    return ConvertedImage(
        image=_image_row(layout, task, segmap_shape=labels.shape, image=image, annotation=png, scene=task.scene),
        segments=rows.cols,
        masks={"objects": labels},
        classes=[],
        problems=_missing_image(image),
    )

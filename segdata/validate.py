"""Check a unified-format dataset against the specification (docs/format.md).

Table-level checks read only the parquet files; pixel checks decode every mask once, in the
process pool: mask present and of its image's size, every id in the mask has a segment row,
every row's ``area`` equals its pixel count, bounding boxes match, parents exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .errors import FormatError, InputError, SegdataError
from .format import (
    CLASS_SCHEMA,
    CLASSES_FILE,
    IMAGE_SCHEMA,
    IMAGES_FILE,
    MASKS_DIR,
    NO_PARENT,
    SEGMENT_SCHEMA,
    SEGMENTS_FILE,
    Dataset,
    layer_names,
    mask_relpath,
    text_or_none,
)
from .maskio import image_size, read_segment_map
from .regions import bounding_boxes
from .runner import parallel_map


@dataclass(frozen=True)
class Finding:
    """One thing wrong: ``where`` (a file, or table:row) and ``problem``."""

    where: str
    problem: str

    def as_dict(self) -> dict:
        return {"where": self.where, "problem": self.problem}


def _load_tables(ds: Dataset) -> tuple[dict[str, object], list[Finding]]:
    """Each table that reads (by file name), and a finding for each that does not (a damaged
    parquet file is one problem among others: the checks that do not need it still run)."""
    tables: dict[str, object] = {}
    out: list[Finding] = []
    for fname, getter in (
        (CLASSES_FILE, lambda: ds.classes),
        (IMAGES_FILE, lambda: ds.images),
        (SEGMENTS_FILE, lambda: ds.segments),
    ):
        try:
            tables[fname] = getter()
        except FormatError as exc:
            out.append(Finding(str(ds.path / fname), str(exc)))
    return tables, out


def _check_tables(ds: Dataset) -> list[Finding]:
    out: list[Finding] = []
    for table, schema, fname in (
        (ds.classes, CLASS_SCHEMA, "classes.parquet"),
        (ds.images, IMAGE_SCHEMA, "images.parquet"),
        (ds.segments, SEGMENT_SCHEMA, "segments.parquet"),
    ):
        missing = [c for c in schema.names if c not in table.columns]
        if missing:
            out.append(Finding(fname, f"missing columns {missing}"))
    if out:
        return out
    classes, images, segments = ds.classes, ds.images, ds.segments
    if classes["class_id"].duplicated().any():
        out.append(
            Finding(
                "classes.parquet",
                f"duplicate class ids {sorted(classes.loc[classes['class_id'].duplicated(), 'class_id'].unique().tolist())[:10]}",
            )
        )
    if (classes["class_id"] <= 0).any():
        out.append(Finding("classes.parquet", "class id 0 is reserved for unlabeled and ids must be positive"))
    if images["image_id"].duplicated().any():
        out.append(
            Finding(
                "images.parquet",
                f"duplicate image ids {images.loc[images['image_id'].duplicated(), 'image_id'].tolist()[:10]}",
            )
        )
    unknown_images = ~segments["image_id"].isin(images["image_id"])
    if unknown_images.any():
        out.append(
            Finding(
                "segments.parquet",
                f"{int(unknown_images.sum())} rows name images not in images.parquet, e.g. {segments.loc[unknown_images, 'image_id'].iloc[0]!r}",
            )
        )
    unknown_class = ~segments["class_id"].isin(classes["class_id"])
    if unknown_class.any():
        out.append(
            Finding(
                "segments.parquet",
                f"{int(unknown_class.sum())} rows have class ids without a class row: {sorted(segments.loc[unknown_class, 'class_id'].unique().tolist())[:10]}",
            )
        )
    dup = segments.duplicated(["image_id", "layer", "segment_id"])
    if dup.any():
        r = segments[dup].iloc[0]
        out.append(
            Finding(
                "segments.parquet",
                f"{int(dup.sum())} duplicate (image, layer, segment) rows, e.g. {r['image_id']}/{r['layer']}/{r['segment_id']}",
            )
        )
    if (segments["segment_id"] <= 0).any():
        out.append(Finding("segments.parquet", "segment id 0 means 'no annotation' and cannot have a row"))
    unknown_layer = ~segments["layer"].isin(ds.layers)
    if unknown_layer.any():
        out.append(
            Finding(
                "segments.parquet",
                f"layers not declared in segdata.json: {sorted(segments.loc[unknown_layer, 'layer'].unique())}",
            )
        )
    # parents
    parents = {layer["name"]: layer.get("parent") for layer in ds.manifest.get("layers", [])}
    with_parent = segments[segments["parent_segment"] != NO_PARENT]
    if len(with_parent):
        keys = set(zip(segments["image_id"], segments["layer"], segments["segment_id"]))
        bad = 0
        example = None
        for row in with_parent[["image_id", "layer", "parent_segment"]].itertuples(index=False):
            parent_layer = parents.get(row.layer)
            if parent_layer is None or (row.image_id, parent_layer, row.parent_segment) not in keys:
                bad += 1
                example = example or f"{row.image_id}/{row.layer} -> {parent_layer}/{row.parent_segment}"
        if bad:
            out.append(
                Finding("segments.parquet", f"{bad} parts link to a parent segment that does not exist, e.g. {example}")
            )
    return out


def _check_mask(mpath: Path) -> list[Finding]:
    """Decode one mask found on disk (when images.parquet cannot be read to list them)."""
    try:
        read_segment_map(mpath)
    except InputError as exc:
        return [Finding(str(mpath), exc.problem)]
    return []


def _check_image(path: Path, image_root: Path, item) -> list[Finding]:
    image_id, split, width, height, file, layers, seg = item
    file, layers = text_or_none(file), text_or_none(layers)
    out: list[Finding] = []
    if file:
        img = Path(file) if Path(file).is_absolute() else image_root / file
        if img.is_file():
            try:
                hw = image_size(img)
            except InputError as exc:
                out.append(Finding(str(img), exc.problem))
            else:
                if hw != (height, width):
                    out.append(Finding(str(img), f"image is {hw[1]}x{hw[0]}, images.parquet says {width}x{height}"))
    listed = layer_names(layers)
    for layer in listed:
        mpath = path / mask_relpath(layer, split, image_id)
        if not mpath.is_file():
            out.append(Finding(str(mpath), "mask missing"))
            continue
        try:
            segmap = read_segment_map(mpath)
        except InputError as exc:
            out.append(Finding(str(mpath), exc.problem))
            continue
        if segmap.shape != (height, width):
            out.append(Finding(str(mpath), f"mask is {segmap.shape[1]}x{segmap.shape[0]}, image is {width}x{height}"))
        if seg is None:  # segments.parquet unreadable (reported once): nothing to compare the mask with
            continue
        rows = seg[seg["layer"] == layer]
        counts = np.bincount(segmap.ravel())
        ids = rows["segment_id"].to_numpy()
        present = np.flatnonzero(counts[1:]) + 1
        no_row = np.setdiff1d(present, ids)
        if no_row.size:
            out.append(Finding(str(mpath), f"segment ids {no_row.tolist()[:10]} have no row in segments.parquet"))
        n = int(max(ids.max() if ids.size else 0, len(counts) - 1))
        full = np.zeros(n + 1, dtype=np.int64)
        full[: len(counts)] = counts
        wrong = rows[rows["area"].to_numpy() != full[ids]]
        for r in wrong.head(5).itertuples():
            out.append(
                Finding(
                    str(mpath),
                    f"segment {r.segment_id}: area {r.area} in segments.parquet, {int(full[r.segment_id])} pixels in the mask",
                )
            )
        boxes = bounding_boxes(segmap, n)
        stated = rows[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy()
        bad_box = np.flatnonzero((stated != boxes[ids - 1]).any(axis=1)) if ids.size else []
        for i in bad_box[:5]:
            out.append(
                Finding(
                    str(mpath),
                    f"segment {ids[i]}: bbox {stated[i].tolist()} in segments.parquet, {boxes[ids[i] - 1].tolist()} in the mask",
                )
            )
    for layer in sorted(set(seg["layer"]) - set(listed)) if seg is not None else []:
        rows = seg[(seg["layer"] == layer) & (seg["area"] > 0)]
        if len(rows):
            out.append(
                Finding(f"{image_id}/{layer}", f"{len(rows)} segments with pixels but the image has no {layer} mask")
            )
    return out


def validate(
    path: str | Path,
    *,
    workers: int | None = None,
    executor=None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Finding]:
    """Validate the dataset at ``path``; returns the findings (empty list: valid)."""
    path = Path(path)
    try:
        ds = Dataset(path)
    except SegdataError as exc:
        return [Finding(str(path), str(exc))]
    tables, findings = _load_tables(ds)
    if not findings:
        try:
            findings = _check_tables(ds)
        except SegdataError as exc:
            return [Finding(str(path), str(exc))]
        if findings and any("missing columns" in f.problem for f in findings):
            return findings
    else:  # a table is unreadable: the others are still checked for their columns, then used
        for fname, schema in (
            (CLASSES_FILE, CLASS_SCHEMA),
            (IMAGES_FILE, IMAGE_SCHEMA),
            (SEGMENTS_FILE, SEGMENT_SCHEMA),
        ):
            missing = [c for c in schema.names if fname in tables and c not in tables[fname].columns]
            if missing:
                findings.append(Finding(fname, f"missing columns {missing}"))
                del tables[fname]
    image_root = Path(ds.manifest.get("image_root", "."))
    if not image_root.is_absolute():
        image_root = path / image_root
    if IMAGES_FILE not in tables:  # no image list: decode every mask there is, to report those damaged too
        masks = sorted((path / MASKS_DIR).rglob("*.png")) if (path / MASKS_DIR).is_dir() else []
        for i, result in enumerate(
            parallel_map(_check_mask, masks, workers=workers, executor=executor, batch_size=16, ordered=True), 1
        ):
            findings.extend(result)
            if progress:
                progress(i, len(masks))
        return findings
    segments = tables.get(SEGMENTS_FILE)
    groups = segments.groupby("image_id", sort=False).indices if segments is not None else {}

    def items():
        for row in ds.images.itertuples(index=False):
            idx = groups.get(row.image_id)
            seg = segments.iloc[idx] if idx is not None else segments.iloc[0:0] if segments is not None else None
            yield (row.image_id, row.split, int(row.width), int(row.height), row.file, row.layers, seg)

    check = partial(_check_image, path, image_root)
    total = len(ds.images)
    for i, result in enumerate(
        parallel_map(check, items(), workers=workers, executor=executor, batch_size=16, ordered=True), 1
    ):
        findings.extend(result)
        if progress:
            progress(i, total)
    return findings

"""Converting one COCO image: instances and stuff JSON annotations rasterised and their overlaps
resolved, panoptic PNGs, COCO-Stuff label maps; and the class table (see the package docstring
for the conventions and the overlap rule)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils

from segdata.convert import ConvertedImage, SegmentRows, image_row
from segdata.errors import InputError
from segdata.maskio import image_size, read_png
from segdata.palette import class_color
from segdata.regions import bounding_boxes

from .layout import _MAX_SEGMENTS, LAYOUT_NAMES, Category, Layout, Source, Task, _is_int
from .stuff_labels import COCO_STUFF_NAMES, COCO_STUFF_UNLABELED


def _load_records(path: Path, spans: bytes) -> list:
    """Read back and parse the JSON records at the given byte spans of ``path``."""
    if not spans:
        return []
    pairs = np.frombuffer(spans, dtype=np.int64).reshape(-1, 2).tolist()
    out = []
    try:
        with open(path, "rb") as f:
            for start, length in pairs:
                f.seek(start)
                data = f.read(length)
                try:
                    out.append(json.loads(data))
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    problem = f"the record at byte {start} no longer parses ({exc}); did the file change during the conversion?"
                    raise InputError(path, problem) from None
    except FileNotFoundError:
        raise InputError(path, "file not found (removed during the conversion?)") from None
    return out


def rle_counts(counts: str | bytes) -> np.ndarray:
    """Decode COCO's compressed RLE string into run lengths.

    The string holds one variable-length number per run, 5 bits per character (offset 48, bit
    0x20 = more characters follow, bit 0x10 of the last one = negative); from the third run on
    each number is the difference to the run two before (pycocotools ``rleFrString``).

    Returns
    -------
    ndarray of int64
        Run lengths, alternating background and foreground, starting with background, in
        column-major (Fortran) order.

    Raises
    ------
    ValueError
        For characters outside ``'0'..'o'``, a truncated last number, or numbers too large.

    Examples
    --------
    >>> rle_counts("5220").tolist()  # an 11 x 1 mask: 5 off, 2 on, 2 off, 2 on
    [5, 2, 2, 2]
    """
    data = counts.encode("latin-1") if isinstance(counts, str) else bytes(counts)
    c = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, np.int64)
    if (c < 0).any() or (c > 63).any():
        raise ValueError("characters outside '0'..'o'")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("the last run length is truncated")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    k = np.arange(c.size) - np.repeat(starts, ends - starts + 1)
    if k.max() > 7:
        raise ValueError("a run length has more than 40 bits")
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * (k[ends][negative] + 1))
    out = x.copy()
    out[1::2] = np.cumsum(x[1::2])
    out[2::2] = np.cumsum(x[2::2])
    return out


def _annotation_rle(ann: dict, h: int, w: int, path: Path, what: str):
    """The pycocotools RLE of one annotation's ``segmentation`` (``annToRLE``), validated first:
    pycocotools itself accepts malformed input silently (odd-length polygons) or reads out of
    bounds (RLE counts that do not add up to the image)."""
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        if not seg:
            return None
        for j, poly in enumerate(seg):
            if not isinstance(poly, list):
                raise InputError(path, f"{what}: polygon #{j} is not a list of coordinates")
            if len(poly) < 6 or len(poly) % 2:
                raise InputError(
                    path,
                    f"{what}: polygon #{j} has {len(poly)} coordinate(s) ({len(poly) / 2:g} points); "
                    "a polygon needs at least 3 points, as x, y pairs",
                )
            try:
                arr = np.asarray(poly, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError(path, f"{what}: polygon #{j} has coordinates that are not numbers") from None
            if not np.isfinite(arr).all():
                raise InputError(path, f"{what}: polygon #{j} has coordinates that are not finite numbers")
            limit = 10 * max(h, w) + 100  # pycocotools rasterises the whole outline: keep it bounded
            if np.abs(arr).max() > limit:
                far = arr[np.abs(arr).argmax()]
                raise InputError(path, f"{what}: polygon #{j} has coordinate {far:g}, far outside the {w}x{h} image")
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        size = seg["size"]
        if not (isinstance(size, list) and len(size) == 2 and list(size) == [h, w]):
            raise InputError(path, f"{what}: RLE size {size!r} is not the image's [height, width] = [{h}, {w}]")
        counts = seg["counts"]
        if isinstance(counts, list):
            if not all(_is_int(c) and c >= 0 for c in counts):
                raise InputError(path, f"{what}: RLE counts must be non-negative integers")
            total = sum(counts)
            if total != h * w:
                raise InputError(
                    path, f"{what}: RLE counts add up to {total} pixels, the image has {h} x {w} = {h * w}"
                )
            return mask_utils.frPyObjects(seg, h, w)
        if isinstance(counts, str):
            try:
                runs = rle_counts(counts)
            except ValueError as exc:
                raise InputError(path, f"{what}: malformed compressed RLE counts ({exc})") from None
            if (runs < 0).any() or int(runs.sum()) != h * w:
                raise InputError(
                    path, f"{what}: compressed RLE counts add up to {int(runs.sum())} pixels, the image has {h * w}"
                )
            return {"size": [h, w], "counts": counts.encode("ascii")}
        raise InputError(
            path, f"{what}: RLE 'counts' must be a list of integers or a string, found {type(counts).__name__}"
        )
    found = str(seg)[:60]
    raise InputError(
        path, f"{what}: 'segmentation' must be a list of polygons or an RLE {{size, counts}}, found {found!r}"
    )


@lru_cache(maxsize=8)
def _category_map(layout: Layout) -> dict[int, Category]:
    return {c.id: c for c in layout.categories}


def _category_ids(layout: Layout) -> str:
    ids = [c.id for c in layout.categories]
    return f"{min(ids)}..{max(ids)}, {len(ids)} ids" if ids else "none"


def _image_row(layout: Layout, task: Task, src: Source, h: int, w: int, annotation: Path):
    image = src.image_dir / task.file_name if task.file_name else None
    problems = []
    file = None
    if image is not None and image.is_file():
        hw = image_size(image)
        if hw != (h, w):
            raise InputError(annotation, f"image {task.image_id} is {w}x{h} here, but {image.name} is {hw[1]}x{hw[0]}")
        file = image.relative_to(layout.image_root).as_posix()
    elif image is not None:
        problems.append((str(image), "image file missing; annotation converted without it"))
    else:
        problems.append((str(annotation), f"image {task.image_id} has no file_name; annotation converted without it"))
    try:
        ann_rel = annotation.relative_to(layout.root).as_posix()
    except ValueError:
        ann_rel = str(annotation)
    row = image_row(task.image_id, task.split, (h, w), file, ann_rel)
    return row, problems


def _read_json_annotations(layout: Layout, task: Task) -> ConvertedImage:
    src = layout.sources[task.source]
    h, w = task.height, task.width
    cats = _category_map(layout)
    rows = SegmentRows(task.image_id)
    problems: list[tuple[str, str]] = []
    records = [(ann, 1, src.annotation) for ann in _load_records(src.annotation, task.spans)]
    if src.stuff is not None:
        records += [(ann, 0, src.stuff) for ann in _load_records(src.stuff, task.stuff_spans)]
    items = []  # (group, annotation id, category, rle, pre-resolution pixels, ann, path)
    stuff_layout = layout.name == LAYOUT_NAMES["stuff"]
    for ann, group, path in records:
        aid = ann.get("id")
        if not _is_int(aid):
            raise InputError(path, f"an annotation of image {task.image_id} has no integer 'id' (found {aid!r})")
        what = f"annotation {aid} (image {task.image_id})"
        cid = ann.get("category_id")
        if not _is_int(cid) or cid not in cats:
            raise InputError(
                path, f"{what} has category_id {cid!r}, which is not in 'categories' ({_category_ids(layout)})"
            )
        rle = _annotation_rle(ann, h, w, path, what)
        pre = int(mask_utils.area(rle)) if rle is not None else 0
        if stuff_layout:
            group = 0
        items.append((group, aid, cats[cid], rle, pre, ann, path))
    n = len(items)
    if n > _MAX_SEGMENTS:
        raise InputError(
            src.annotation, f"image {task.image_id} has {n} annotations; at most {_MAX_SEGMENTS} fit a segment map"
        )
    # segment ids: instances JSON first, then stuff JSON, each by ascending annotation id
    items.sort(key=lambda it: (-it[0], it[1]))
    segmap = np.zeros((h, w), dtype=np.uint8 if n < 256 else np.uint16)
    # painting order, bottom to top: stuff below things, larger below smaller, equal sizes by id
    for idx in sorted(range(n), key=lambda i: (items[i][0], -items[i][4], items[i][1])):
        rle = items[idx][3]
        if rle is None or items[idx][4] == 0:
            continue
        x, y, bw, bh = (int(v) for v in mask_utils.toBbox(rle))
        m = mask_utils.decode(rle)[y : y + bh, x : x + bw].view(bool)
        segmap[y : y + bh, x : x + bw][m] = idx + 1
    areas = np.bincount(segmap.ravel(), minlength=n + 1)[1:]
    boxes = bounding_boxes(segmap, n)
    for idx, (group, aid, cat, _rle, pre, ann, path) in enumerate(items):
        area = ann.get("area")
        source_area = float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) else None
        iscrowd = bool(ann.get("iscrowd", 0))
        if pre == 0:
            problems.append((str(path), f"annotation {aid} covers no pixel of the {w}x{h} image (COCO area {area})"))
        thing = bool(cat.is_thing) and group == 1
        rows.add(
            "objects",
            idx + 1,
            cat.id,
            thing and not iscrowd,
            areas[idx],
            boxes[idx],
            source_instance=aid,
            iscrowd=iscrowd,
            source_area=source_area,
            pixels_lost=pre - int(areas[idx]),
        )
    row, missing = _image_row(layout, task, src, h, w, src.annotation)
    return ConvertedImage(
        image=row, segments=rows.cols, masks={"objects": segmap}, classes=[], problems=problems + missing
    )


def _panoptic_ids(rgb: np.ndarray) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG: ``R + 256 G + 256^2 B`` as int32, (H, W)."""
    ids = rgb[..., 2].astype(np.int32) << 16
    ids |= rgb[..., 1].astype(np.int32) << 8
    ids |= rgb[..., 0]
    return ids


def _read_panoptic(layout: Layout, task: Task) -> ConvertedImage:
    src = layout.sources[task.source]
    cats = _category_map(layout)
    rows = SegmentRows(task.image_id)
    problems: list[tuple[str, str]] = []
    if task.png is None:  # listed in images, absent from annotations
        if task.width < 0:
            raise InputError(src.annotation, f"image {task.image_id} has neither an annotation nor a size")
        segmap = np.zeros((task.height, task.width), np.uint8)
        problem = (
            f"image {task.image_id} is listed in 'images' but has no entry in 'annotations'; converted as unlabeled"
        )
        problems.append((str(src.annotation), problem))
        row, missing = _image_row(layout, task, src, task.height, task.width, src.annotation)
        return ConvertedImage(image=row, segments=rows.cols, masks={"objects": segmap}, problems=problems + missing)
    png = src.png_dir / task.png
    ann = _load_records(src.annotation, task.spans)[0]
    infos = ann.get("segments_info")
    if not isinstance(infos, list):
        raise InputError(src.annotation, f"annotation of image {task.image_id} has no 'segments_info' list")
    rgb = read_png(png, expect="rgb8")
    h, w = rgb.shape[:2]
    if task.width >= 0 and (h, w) != (task.height, task.width):
        raise InputError(
            png, f"PNG is {w}x{h}, but 'images' states {task.width}x{task.height} for image {task.image_id}"
        )
    listed = []
    for j, s in enumerate(infos):
        if not isinstance(s, dict) or not _is_int(s.get("id")) or not _is_int(s.get("category_id")):
            raise InputError(
                src.annotation, f"image {task.image_id}: segments_info[{j}] needs integer 'id' and 'category_id'"
            )
        if s["category_id"] not in cats:
            raise InputError(
                src.annotation,
                f"image {task.image_id}: segment {s['id']} has category_id {s['category_id']}, "
                f"which is not in the categories ({_category_ids(layout)})",
            )
        if not 0 < s["id"] < 1 << 24:
            raise InputError(
                src.annotation, f"image {task.image_id}: segment id {s['id']} is not in 1..16777215 (0 is void)"
            )
        listed.append(s["id"])
    n = len(listed)
    if n > _MAX_SEGMENTS:
        raise InputError(
            src.annotation, f"image {task.image_id} has {n} segments; at most {_MAX_SEGMENTS} fit a segment map"
        )
    listed_arr = np.asarray(listed, dtype=np.int64)
    if len(np.unique(listed_arr)) != n:
        dup = [v for v in listed if listed.count(v) > 1][0]
        raise InputError(src.annotation, f"image {task.image_id}: segment id {dup} is listed twice in segments_info")
    order = np.argsort(listed_arr)
    keys = np.concatenate([[0], listed_arr[order]])
    ids = _panoptic_ids(rgb)
    pos = np.searchsorted(keys, ids)
    np.minimum(pos, n, out=pos)
    bad = keys[pos] != ids
    if bad.any():
        values, counts = np.unique(ids[bad], return_counts=True)
        shown = ", ".join(f"{v} ({c} px)" for v, c in zip(values[:5].tolist(), counts[:5].tolist()))
        raise InputError(
            png, f"segment id(s) {shown} in the PNG are not listed in segments_info of {src.annotation.name}"
        )
    counts = np.bincount(pos.ravel(), minlength=n + 1)
    absent = listed_arr[order][counts[1:] == 0]
    if absent.size:
        listed_in = f"segments_info of {src.annotation.name}"
        raise InputError(png, f"segment id(s) {absent[:5].tolist()} listed in {listed_in} have no pixel in the PNG")
    lut = np.zeros(n + 1, dtype=np.uint8 if n < 256 else np.uint16)
    lut[1:] = order + 1  # JSON order gives the segment ids
    segmap = lut[pos]
    areas = np.zeros(n, np.int64)
    areas[order] = counts[1:]
    boxes = bounding_boxes(segmap, n)
    for j, s in enumerate(infos):
        cat = cats[s["category_id"]]
        iscrowd = bool(s.get("iscrowd", 0))
        area = s.get("area")
        source_area = float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) else None
        if source_area is not None and source_area != areas[j]:
            problem = (
                f"image {task.image_id}: segment {s['id']} has area {area} in the JSON, {areas[j]} pixels in {png.name}"
            )
            problems.append((str(src.annotation), problem))
        rows.add(
            "objects",
            j + 1,
            cat.id,
            bool(cat.is_thing) and not iscrowd,
            areas[j],
            boxes[j],
            source_instance=s["id"],
            iscrowd=iscrowd,
            source_area=source_area,
        )
    row, missing = _image_row(layout, task, src, h, w, png)
    return ConvertedImage(image=row, segments=rows.cols, masks={"objects": segmap}, problems=problems + missing)


def _read_stuffthingmap(layout: Layout, task: Task) -> ConvertedImage:
    src = layout.sources[task.source]
    png = src.annotation / task.png
    labels = read_png(png, expect="grey8")
    counts = np.bincount(labels.ravel(), minlength=256)
    bad = np.flatnonzero(counts[182:255])
    if bad.size:
        raise InputError(
            png,
            f"unknown label value(s) {(bad + 182).tolist()[:5]}: COCO-Stuff maps hold category id - 1 "
            f"(0..181) and {COCO_STUFF_UNLABELED} for unlabeled",
        )
    lut = np.arange(1, 257, dtype=np.int64)
    lut[COCO_STUFF_UNLABELED] = 0
    segmap = lut.astype(np.uint8)[labels]
    rows = SegmentRows(task.image_id)
    boxes = bounding_boxes(segmap, 182)
    observed = []
    for value in np.flatnonzero(counts[:182]):
        cid = int(value) + 1
        rows.add("objects", cid, cid, False, counts[value], boxes[cid - 1])
        observed.append(
            {
                "source_id": cid,
                "name": COCO_STUFF_NAMES[cid],
                "source_name": COCO_STUFF_NAMES[cid],
                "is_thing": cid <= 91,
            }
        )
    h, w = labels.shape
    row, missing = _image_row(layout, task, src, h, w, png)
    return ConvertedImage(image=row, segments=rows.cols, masks={"objects": segmap}, classes=observed, problems=missing)


def build_classes(layout: Layout, observations: pd.DataFrame) -> pd.DataFrame:
    """The class table: every category of the layout, seen or not (plus, for COCO-Stuff maps,
    any of COCO's never-annotated thing ids that does occur)."""
    cats = {c.id: c for c in layout.categories}
    if not observations.empty:
        for sid in sorted({int(s) for s in observations["source_id"]}):
            if sid not in cats and sid in COCO_STUFF_NAMES:
                cats[sid] = Category(sid, COCO_STUFF_NAMES[sid], None, sid <= 91, None)
    ids = sorted(cats)
    return pd.DataFrame(
        {
            "class_id": pd.array(ids, dtype="int32"),
            "name": [cats[i].name for i in ids],
            "source_id": pd.array(ids, dtype="int64"),
            "source_name": [cats[i].name for i in ids],
            "is_thing": pd.array([cats[i].is_thing for i in ids], dtype="boolean"),
            "ignore": False,
            "train_id": pd.array([None] * len(ids), dtype="Int32"),
            "color": [cats[i].color or class_color(i) for i in ids],
        }
    )

"""ADE20K, read exactly as it ships, in all four of its layouts.

Layouts (detected by :func:`detect`):

``ade20k-2021``  full dataset, release ``ADE20K_2021_17_01``::

    images/ADE/{training,validation}/<group>/<scene>/<stem>.jpg
    <stem>_seg.png, <stem>_parts_N.png      RGB: class code = R // 10 * 256 + G, instance in B
    <stem>.json                             objects and parts: name, name_ndx (= code), polygon, ...
    <stem>/instance_NNN_<stem>.png          amodal instance masks (255 visible, 128 occluded)
    index_ade20k.pkl (optional, at the root) objectnames[code - 1] = class name

``ade20k-2016``  full dataset, release ``ADE20K_2016_07_26``: the same PNGs and a per-image
``<stem>_atr.txt`` (``instance # part_level # occluded # name # raw name # "attributes"``).

``ade20k-challenge``  ``ADEChallengeData2016`` (SceneParsing, 150 classes):
``annotations/{training,validation}/<stem>.png`` (uint8; 0 = other/unlabeled, 1..150) and
``objectInfo150.csv`` (or ``.txt``) naming the classes.

``ade20k-consistency``  ``ADE20K_2017_05_30_consistency/images/consistencyanalysis/<annotation>/``:
the same images annotated more than once, each folder in the 2016 layout. The folder
``original_ade20k`` (or the first in sorted order) gives layers ``objects``, ``parts-N``; every
other folder ``F`` gives layers ``F`` and ``F-parts-N``.

How segments are built and linked:

- a segment is one (class code, B value) pair of a ``_seg``/``_parts_N`` map; segment ids are
  assigned in ascending order of ``code * 256 + B``. Code 0 is unlabeled whatever its B.
- 2021: the B values are not in JSON order, so each region is linked to its JSON object by class
  and by overlap with the object's polygon (maximum-IoU assignment within each class). Parts are
  linked to their parent through the JSON's ``parts.ispartof``. An object with no visible pixel
  becomes a row of area 0 with no pixels in the mask.
- 2016: object ``k`` of a level (its ``_atr.txt`` instance number) has B value
  ``round_half_up(k * 255 / N)`` for the N lines of that level; parts are linked to the
  region of the level above that covers most of their pixels.
- the open vocabulary is kept: every class code becomes its own class (``class_id`` = code,
  ``source_id`` = code, ``source_name`` = the WordNet-style name, ``name`` its first synonym);
  raw annotator names, occlusion, crop and attributes stay on the segment rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from scipy.optimize import linear_sum_assignment

from segdata.convert import ConvertedImage, SegmentRows, image_row
from segdata.errors import InputError, LayoutNotFoundError
from segdata.maskio import decode_ade_rgb, image_size, read_png
from segdata.palette import class_color
from segdata.regions import bounding_boxes, compact_labels, joint_counts

FAMILY = "ade20k"
SPLIT_DIRS = {"training": "train", "validation": "val"}
SPLIT_ALIASES = {"training": "train", "validation": "val", "train": "train", "val": "val"}
MAX_PART_LEVELS = 9
_SEG_SUFFIX = "_seg.png"
_WALK_LIMIT = 20000  # directory entries looked at while detecting a layout

LOOKED_FOR = (
    "ADE20K 2021_17_01 (<stem>_seg.png with <stem>.json), "
    "ADE20K 2016_07_26 (<stem>_seg.png with <stem>_atr.txt), "
    "ADEChallengeData2016 (annotations/ and objectInfo150.csv or .txt), "
    "the 2017 consistency set (images/consistencyanalysis/<annotation>/)"
)


@dataclass(frozen=True)
class Layout:
    """A detected ADE20K layout.

    ``root`` is where images are searched, ``image_root`` what ``images.file`` is relative to
    (the release directory, e.g. ``ADE20K_2021_17_01``).
    """

    name: str
    root: Path
    image_root: Path
    release: str
    annotations: tuple[str, ...] = ()
    index_file: Path | None = None
    classes_file: Path | None = None
    family: str = FAMILY


@dataclass(frozen=True)
class Task:
    """One image to convert: its id, split and where its files are (relative to the layout)."""

    image_id: str
    split: str
    stem: str  # path of the image without suffix, relative to Layout.root
    scene: str | None = None


# --------------------------------------------------------------------------- detection


def _split_of(path_parts: tuple[str, ...], stem: str) -> str:
    for part in reversed(path_parts):
        if part in SPLIT_DIRS:
            return SPLIT_DIRS[part]
    if stem.startswith("ADE_train_"):
        return "train"
    if stem.startswith("ADE_val_"):
        return "val"
    if stem.startswith("ADE_test_"):
        return "test"
    return "train"


def _first_seg_png(root: Path) -> Path | None:
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(_SEG_SUFFIX):
                return Path(dirpath) / name
        seen += len(filenames) + len(dirnames)
        if seen > _WALK_LIMIT:
            return None
    return None


def _release_root(path: Path, stop: Path) -> Path:
    """The directory above the nearest ``images`` ancestor of ``path`` (or ``stop``)."""
    for parent in path.parents:
        if parent.name == "images":
            return parent.parent
        if parent == stop:
            break
    return stop


def _challenge_root(root: Path) -> Path | None:
    for cand in (root, root / "ADEChallengeData2016"):
        if (cand / "annotations").is_dir() and any(
            (cand / f).is_file() for f in ("objectInfo150.csv", "objectInfo150.txt")
        ):
            return cand
    return None


def _consistency_root(root: Path) -> Path | None:
    for cand in (
        root,
        root / "images" / "consistencyanalysis",
        root / "ADE20K_2017_05_30_consistency" / "images" / "consistencyanalysis",
    ):
        if cand.name == "consistencyanalysis" and cand.is_dir():
            return cand
    return None


def detect(root: str | Path) -> Layout:
    """Detect which ADE20K layout ``root`` holds.

    ``root`` may be the release directory itself or a directory above or below it (any folder
    of ``images/...``). Raises :class:`LayoutNotFoundError` naming the layouts looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutNotFoundError(f"{root}: not a directory")
    challenge = _challenge_root(root)
    if challenge is not None:
        classes_file = challenge / "objectInfo150.csv"
        if not classes_file.is_file():
            classes_file = challenge / "objectInfo150.txt"
        return Layout("ade20k-challenge", challenge, challenge, "ADEChallengeData2016", classes_file=classes_file)
    consistency = _consistency_root(root)
    if consistency is not None:
        folders = sorted(p.name for p in consistency.iterdir() if p.is_dir() and any(p.glob("*" + _SEG_SUFFIX)))
        if len(folders) < 1:
            raise LayoutNotFoundError(f"{consistency}: no annotation folder with *_seg.png files")
        if "original_ade20k" in folders:
            folders.remove("original_ade20k")
            folders.insert(0, "original_ade20k")
        return Layout(
            "ade20k-consistency", consistency, consistency, "2017_05_30_consistency", annotations=tuple(folders)
        )
    seg = _first_seg_png(root)
    if seg is not None:
        stem = seg.name[: -len(_SEG_SUFFIX)]
        release = _release_root(seg, root)
        if (seg.parent / f"{stem}.json").is_file():
            index = release / "index_ade20k.pkl"
            return Layout("ade20k-2021", root, release, "2021_17_01", index_file=index if index.is_file() else None)
        if (seg.parent / f"{stem}_atr.txt").is_file():
            return Layout("ade20k-2016", root, release, "2016_07_26")
        raise LayoutNotFoundError(
            f"{root}: found {seg} but neither {stem}.json (2021 layout) nor {stem}_atr.txt (2016 layout) next to it"
        )
    raise LayoutNotFoundError(f"{root}: no ADE20K layout found. Looked for: {LOOKED_FOR}")


# --------------------------------------------------------------------------- listing


def _normalise_split(split: str | None) -> str | None:
    if split is None:
        return None
    return SPLIT_ALIASES.get(split, split)


def list_images(layout: Layout, split: str | None = None) -> list[Task]:
    """One :class:`Task` per image of the layout, sorted by (split, image id)."""
    split = _normalise_split(split)
    tasks: list[Task] = []
    if layout.name == "ade20k-challenge":
        scenes = _scene_categories(layout.root / "sceneCategories.txt")
        ann_root = layout.root / "annotations"
        for sub in sorted(p for p in ann_root.iterdir() if p.is_dir()):
            sp = SPLIT_DIRS.get(sub.name, sub.name)
            for png in sorted(sub.glob("*.png")):
                tasks.append(Task(png.stem, sp, f"{sub.name}/{png.stem}", scenes.get(png.stem)))
    elif layout.name == "ade20k-consistency":
        stems: dict[str, None] = {}
        for folder in layout.annotations:
            for seg in (layout.root / folder).glob("*" + _SEG_SUFFIX):
                stems.setdefault(seg.name[: -len(_SEG_SUFFIX)])
        for stem in stems:
            tasks.append(Task(stem, _split_of((), stem), stem))
    else:
        for dirpath, dirnames, filenames in os.walk(layout.root):
            dirnames.sort()
            rel = Path(dirpath).relative_to(layout.root)
            for name in filenames:
                if name.endswith(_SEG_SUFFIX):
                    stem = name[: -len(_SEG_SUFFIX)]
                    scene = rel.parts[-1] if rel.parts else None
                    tasks.append(Task(stem, _split_of(rel.parts, stem), str(rel / stem), scene))
    if split is not None:
        tasks = [t for t in tasks if t.split == split]
    tasks.sort(key=lambda t: (t.split, t.image_id))
    for a, b in zip(tasks, tasks[1:]):
        if a.image_id == b.image_id and a.split == b.split:
            raise InputError(layout.root / b.stem, f"image id {b.image_id} appears twice (also at {a.stem})")
    return tasks


def _scene_categories(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    scenes = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            scenes[parts[0]] = parts[1]
    return scenes


# --------------------------------------------------------------------------- helpers


def _short_name(wordnet_name: str) -> str:
    """First synonym of a WordNet-style name: 'car, auto, automobile' -> 'car'."""
    return wordnet_name.split(",")[0].split(";")[0].strip()


def _b_to_instance(b_values: np.ndarray, n: int) -> dict[int, int]:
    """Map B values of one level to instance numbers k (1..n).

    ADE20K writes instance k of n as B = round_half_up(k * 255 / n). When every observed B
    fits that rule it is inverted exactly; otherwise instances are numbered by B rank.
    """
    rule = {(2 * k * 255 + n) // (2 * n): k for k in range(1, n + 1)} if n > 0 else {}
    if n <= 255 and all(int(b) in rule for b in b_values):
        return {int(b): rule[int(b)] for b in b_values}
    return {int(b): i + 1 for i, b in enumerate(sorted(int(b) for b in b_values))}


def _decode_level(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode one ``_seg``/``_parts_N`` PNG into segments.

    Returns segmap (H, W), codes (n,), b_values (n,), areas (n,), boxes (n, 4).
    """
    rgb = read_png(path, expect="rgb8")
    codes, inst = decode_ade_rgb(rgb, path)
    keys = codes << 8
    keys |= inst
    segmap, present, areas = compact_labels(keys, min_key=256)
    return segmap, present >> 8, present & 255, areas, bounding_boxes(segmap, len(present))


def _iter_levels(base: Path, counts: dict[int, int], listed_in: Path, image: Path | None, stated=None):
    """Yield ``(level, png, decoded)`` for ``<base>_seg.png`` (level 0) and each ``_parts_N.png``.

    Checks that every level the annotation file ``listed_in`` has objects at exists as a PNG, that
    the object map has the image's size (and the ``stated`` (H, W) when given), and that part maps
    have the object map's size. ``decoded`` is what :func:`_decode_level` returns.
    """
    max_level = max(counts, default=0)
    shape = None
    for level in range(0, max_level + 1 + MAX_PART_LEVELS):
        png = base.with_name(base.name + (_SEG_SUFFIX if level == 0 else f"_parts_{level}.png"))
        if not png.is_file():
            if level == 0:
                raise InputError(png, "segmentation PNG not found")
            if level in counts:
                raise InputError(
                    png, f"not found, but {listed_in.name} lists {counts[level]} object(s) of level {level}"
                )
            if level > max_level:
                break
            continue
        decoded = _decode_level(png)
        hw = decoded[0].shape
        if level == 0:
            _check_size(png, hw, image, stated, listed_in if stated is not None else None)
            shape = hw
        elif hw != shape:
            raise InputError(png, f"part map is {hw[1]}x{hw[0]}, object map is {shape[1]}x{shape[0]}")
        yield level, png, decoded


def _check_size(
    mask_path: Path,
    mask_hw: tuple[int, int],
    image: Path | None,
    stated: tuple[int, int] | None,
    stated_in: Path | None,
):
    if stated is not None and tuple(stated) != tuple(mask_hw):
        raise InputError(
            mask_path,
            f"mask is {mask_hw[1]}x{mask_hw[0]} but {stated_in.name if stated_in else 'the annotation'} "
            f"states {stated[1]}x{stated[0]}",
        )
    if image is not None and image.is_file():
        hw = image_size(image)
        if hw != tuple(mask_hw):
            raise InputError(mask_path, f"mask is {mask_hw[1]}x{mask_hw[0]} but image {image.name} is {hw[1]}x{hw[0]}")


def _layer_name(prefix: str, level: int) -> str:
    base = prefix or "objects"
    if level == 0:
        return base
    return f"parts-{level}" if not prefix else f"{prefix}-parts-{level}"


# --------------------------------------------------------------------------- 2021


def _read_text(path: Path, what: str) -> str:
    """A source text file as str: UTF-8, or Latin-1 for the few ADE20K files that are not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, f"{what} not found") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _load_json(path: Path) -> dict:
    text = _read_text(path, "annotation JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    try:
        ann = data["annotation"]
        objects = ann["object"]
        ann["imsize"]
    except (KeyError, TypeError) as exc:
        raise InputError(path, f"malformed ADE20K annotation: missing key {exc}") from None
    if isinstance(objects, dict):  # a single object may be stored bare
        ann["object"] = [objects]
    for i, obj in enumerate(ann["object"]):
        for key in ("id", "name", "name_ndx", "parts"):
            if key not in obj:
                raise InputError(path, f"malformed ADE20K annotation: object #{i} has no {key!r}")
    return ann


def _as_bool(value) -> bool | None:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("yes", "1", "true"):
            return True
        if v in ("no", "0", "false"):
            return False
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return bool(value)
    return None


def _attributes_text(value) -> str | None:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if value else None
    if isinstance(value, str):
        return value or None
    return None


def _polygon_overlaps(obj: dict, segmap: np.ndarray, seg_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Pixels of each segment in ``seg_ids`` inside the object's polygon, and the polygon's area."""
    poly = obj.get("polygon") or {}
    xs = np.asarray(poly.get("x") or [], dtype=float)
    ys = np.asarray(poly.get("y") or [], dtype=float)
    if len(xs) < 3 or len(xs) != len(ys):
        return np.zeros(len(seg_ids), np.int64), 0
    h, w = segmap.shape
    x0, x1 = int(max(0, np.floor(xs.min()))), int(min(w - 1, np.ceil(xs.max())))
    y0, y1 = int(max(0, np.floor(ys.min()))), int(min(h - 1, np.ceil(ys.max())))
    if x1 < x0 or y1 < y0:
        return np.zeros(len(seg_ids), np.int64), 0
    canvas = Image.new("L", (x1 - x0 + 1, y1 - y0 + 1), 0)
    ImageDraw.Draw(canvas).polygon(list(zip((xs - x0).tolist(), (ys - y0).tolist())), fill=1)
    inside = np.asarray(canvas, dtype=bool)
    counts = np.bincount(segmap[y0 : y1 + 1, x0 : x1 + 1][inside], minlength=int(seg_ids.max()) + 1)
    return counts[seg_ids], int(inside.sum())


def _link_objects(objects: list[dict], codes: np.ndarray, areas: np.ndarray, segmap: np.ndarray) -> dict[int, int]:
    """Link each region (segment id 1..n) of one level to a JSON object (index into ``objects``).

    Within each class code, regions and objects are paired by maximum total IoU between the
    region and the object's polygon; a class with one region and one object pairs directly.
    """
    by_code: dict[int, list[int]] = {}
    for i, obj in enumerate(objects):
        by_code.setdefault(int(obj["name_ndx"]), []).append(i)
    links: dict[int, int] = {}
    for code in np.unique(codes):
        seg_ids = np.flatnonzero(codes == code) + 1
        obj_idx = by_code.get(int(code), [])
        if not obj_idx:
            continue
        if len(seg_ids) == 1 and len(obj_idx) == 1:
            links[int(seg_ids[0])] = obj_idx[0]
            continue
        iou = np.zeros((len(obj_idx), len(seg_ids)))
        for row, oi in enumerate(obj_idx):
            inter, poly_area = _polygon_overlaps(objects[oi], segmap, seg_ids)
            union = poly_area + areas[seg_ids - 1] - inter
            iou[row] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols):
            links[int(seg_ids[c])] = obj_idx[r]
    return links


def _read_2021(layout: Layout, task: Task) -> ConvertedImage:
    base = layout.root / task.stem
    json_path = base.with_name(base.name + ".json")
    ann = _load_json(json_path)
    objects = ann["object"]
    try:
        stated = (int(ann["imsize"][0]), int(ann["imsize"][1]))
    except (TypeError, ValueError, IndexError):
        raise InputError(json_path, f"malformed imsize {ann['imsize']!r}, expected [height, width, channels]") from None
    levels: dict[int, list[dict]] = {}
    for obj in objects:
        level = int((obj.get("parts") or {}).get("part_level", 0) or 0)
        levels.setdefault(level, []).append(obj)
    image = base.with_name(base.name + ".jpg")
    rows = SegmentRows(task.image_id)
    masks: dict[str, np.ndarray] = {}
    observed: dict[int, tuple[str, str]] = {}
    problems: list[tuple[str, str]] = []
    seg_of_object: dict[int, tuple[int, int]] = {}  # JSON id -> (level, segment id)
    pending_parents: list[tuple[int, int, dict]] = []  # (level, row index, obj)
    counts = {level: len(objs) for level, objs in levels.items()}
    for level, png, (segmap, codes, _b, areas, boxes) in _iter_levels(base, counts, json_path, image, stated):
        layer = _layer_name("", level)
        level_objects = levels.get(level, [])
        links = _link_objects(level_objects, codes, areas, segmap)
        for seg_id in range(1, len(codes) + 1):
            code = int(codes[seg_id - 1])
            oi = links.get(seg_id)
            if oi is None:
                if code not in observed:
                    named = [o for o in objects if int(o["name_ndx"]) == code]
                    if named:
                        observed[code] = (_short_name(named[0]["name"]), named[0]["name"])
                    elif layout.index_file is not None:  # named from index_ade20k.pkl at the end
                        observed[code] = (f"class {code}", f"class {code}")
                    else:
                        raise InputError(
                            png,
                            f"unknown class code {code} ({int(areas[seg_id - 1])} pixels): no object of "
                            f"{json_path.name} has name_ndx {code} and there is no index_ade20k.pkl to name it",
                        )
                problems.append(
                    (
                        str(png),
                        f"region of class {code} with B={int(_b[seg_id - 1])} matches no object of level {level} in {json_path.name}",
                    )
                )
                rows.add(layer, seg_id, code, False, areas[seg_id - 1], boxes[seg_id - 1], part_level=level)
                continue
            obj = level_objects[oi]
            observed[code] = (_short_name(obj["name"]), obj["name"])
            seg_of_object[int(obj["id"])] = (level, seg_id)
            if level > 0:
                pending_parents.append((level, len(rows.cols["segment_id"]), obj))
            rows.add(
                layer,
                seg_id,
                code,
                True,
                areas[seg_id - 1],
                boxes[seg_id - 1],
                source_instance=int(obj["id"]),
                part_level=level,
                occluded=_as_bool(obj.get("occluded")),
                crop=_as_bool(obj.get("crop")),
                raw_name=obj.get("raw_name"),
                attributes=_attributes_text(obj.get("attributes")),
            )
        # objects without a visible pixel: rows of area 0
        linked = set(links.values())
        next_id = len(codes) + 1
        for oi, obj in enumerate(level_objects):
            if oi in linked:
                continue
            code = int(obj["name_ndx"])
            observed[code] = (_short_name(obj["name"]), obj["name"])
            seg_of_object[int(obj["id"])] = (level, next_id)
            if level > 0:
                pending_parents.append((level, len(rows.cols["segment_id"]), obj))
            rows.add(
                layer,
                next_id,
                code,
                True,
                0,
                (0, 0, 0, 0),
                source_instance=int(obj["id"]),
                part_level=level,
                occluded=_as_bool(obj.get("occluded")),
                crop=_as_bool(obj.get("crop")),
                raw_name=obj.get("raw_name"),
                attributes=_attributes_text(obj.get("attributes")),
            )
            next_id += 1
        masks[layer] = segmap
    for level, row, obj in pending_parents:
        parent_id = (obj.get("parts") or {}).get("ispartof")
        if isinstance(parent_id, list):
            parent_id = parent_id[0] if parent_id else None
        parent = seg_of_object.get(int(parent_id)) if parent_id is not None else None
        if parent is None or parent[0] != level - 1:
            problems.append(
                (
                    str(json_path),
                    f"part {obj['id']} (level {level}) has no parent object of level {level - 1} (ispartof={parent_id!r})",
                )
            )
            continue
        rows.cols["parent_segment"][row] = parent[1]
    scene = ann.get("scene")
    scene = "/".join(scene) if isinstance(scene, list) else (scene or task.scene)
    return ConvertedImage(
        image=_image_row(
            layout, task, segmap_shape=masks["objects"].shape, image=image, annotation=json_path, scene=scene
        ),
        segments=rows.cols,
        masks=masks,
        classes=[{"source_id": c, "name": n, "source_name": s, "is_thing": None} for c, (n, s) in observed.items()],
        problems=problems + _missing_image(image),
    )


def _image_row(layout: Layout, task: Task, *, segmap_shape, image: Path | None, annotation: Path, scene) -> dict:
    file = None
    if image is not None and image.is_file():
        file = image.relative_to(layout.image_root).as_posix()
    return image_row(
        task.image_id, task.split, segmap_shape, file, annotation.relative_to(layout.image_root).as_posix(), scene
    )


def _missing_image(image: Path | None) -> list[tuple[str, str]]:
    if image is None or image.is_file():
        return []
    return [(str(image), "image file missing; annotation converted without it")]


# --------------------------------------------------------------------------- 2016 and consistency

_ATR_LINE = re.compile(r"\s+#\s+")


def parse_atr(path: Path) -> list[dict]:
    """Parse a 2016 ``_atr.txt``: one dict per line with instance, part_level, occluded, name,
    raw_name, attributes (the quoted, comma-separated list without its quotes)."""
    text = _read_text(path, "attribute file")
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = [c.strip() for c in _ATR_LINE.split(line.strip(), maxsplit=5)]
        if len(cols) != 6:
            raise InputError(
                path, f"line {lineno}: expected 6 ' # '-separated columns, found {len(cols)}: {line.strip()!r}"
            )
        try:
            instance, level, occluded = int(cols[0]), int(cols[1]), int(cols[2])
        except ValueError:
            raise InputError(
                path, f"line {lineno}: instance, part level and occluded must be integers: {line.strip()!r}"
            ) from None
        attrs = cols[5]
        if len(attrs) >= 2 and attrs[0] == '"' and attrs[-1] == '"':
            attrs = attrs[1:-1]
        rows.append(
            {
                "instance": instance,
                "part_level": level,
                "occluded": bool(occluded),
                "name": cols[3],
                "raw_name": cols[4],
                "attributes": attrs or None,
            }
        )
    return rows


def _read_2016_annotation(
    base: Path, image: Path | None, rows: SegmentRows, prefix: str, observed: dict, problems: list
) -> dict[str, np.ndarray]:
    """Read one 2016-layout annotation (``<base>_seg.png``, ``_parts_N.png``, ``_atr.txt``)."""
    atr_path = base.with_name(base.name + "_atr.txt")
    atr = parse_atr(atr_path)
    by_level: dict[int, dict[int, dict]] = {}
    for row in atr:
        by_level.setdefault(row["part_level"], {})[row["instance"]] = row
    masks: dict[str, np.ndarray] = {}
    prev_segmap = None
    prev_n = 0
    counts = {level: len(lines) for level, lines in by_level.items()}
    for level, png, (segmap, codes, b_values, areas, boxes) in _iter_levels(base, counts, atr_path, image):
        layer = _layer_name(prefix, level)
        lines = by_level.get(level, {})
        k_of_b = _b_to_instance(np.unique(b_values), len(lines))
        parents = None
        if level > 0 and prev_segmap is not None and len(codes):
            overlap = joint_counts(segmap, prev_segmap, len(codes), prev_n)[:, 1:]
            parents = np.where(overlap.max(axis=1) > 0, overlap.argmax(axis=1) + 1, 0)
        used = set()
        for seg_id in range(1, len(codes) + 1):
            code, b = int(codes[seg_id - 1]), int(b_values[seg_id - 1])
            k = k_of_b.get(b)
            line = lines.get(k)
            if line is None:
                raise InputError(
                    atr_path, f"no line for instance {k} of level {level} (class code {code}, B={b} in {png.name})"
                )
            used.add(k)
            observed.setdefault(code, {}).setdefault((_short_name(line["name"]), line["name"]), 0)
            observed[code][(_short_name(line["name"]), line["name"])] += 1
            rows.add(
                layer,
                seg_id,
                code,
                True,
                areas[seg_id - 1],
                boxes[seg_id - 1],
                parent=int(parents[seg_id]) if parents is not None else 0,
                source_instance=k,
                part_level=level,
                occluded=line["occluded"],
                raw_name=line["raw_name"],
                attributes=line["attributes"],
            )
        for k, line in sorted(lines.items()):
            if k not in used:
                problems.append(
                    (str(atr_path), f"instance {k} of level {level} ({line['name']}) has no pixels in {png.name}")
                )
        masks[layer] = segmap
        prev_segmap, prev_n = segmap, len(codes)
    return masks


def _observed_classes(observed: dict) -> list[dict]:
    out = []
    for code, names in observed.items():
        for (name, source_name), count in names.items():
            out.extend(
                {"source_id": code, "name": name, "source_name": source_name, "is_thing": None} for _ in range(count)
            )
    return out


def _read_2016(layout: Layout, task: Task) -> ConvertedImage:
    base = layout.root / task.stem
    image = base.with_name(base.name + ".jpg")
    rows = SegmentRows(task.image_id)
    observed: dict = {}
    problems: list = []
    masks = _read_2016_annotation(base, image, rows, "", observed, problems)
    return ConvertedImage(
        image=_image_row(
            layout,
            task,
            segmap_shape=masks["objects"].shape,
            image=image,
            annotation=base.with_name(base.name + "_atr.txt"),
            scene=task.scene,
        ),
        segments=rows.cols,
        masks=masks,
        classes=_observed_classes(observed),
        problems=problems + _missing_image(image),
    )


def _consistency_prefix(layout: Layout, folder: str) -> str:
    return "" if folder == layout.annotations[0] else re.sub(r"[^A-Za-z0-9_.-]+", "_", folder)


def _read_consistency(layout: Layout, task: Task) -> ConvertedImage:
    rows = SegmentRows(task.image_id)
    observed: dict = {}
    problems: list = []
    masks: dict[str, np.ndarray] = {}
    image = None
    for folder in layout.annotations:
        base = layout.root / folder / task.stem
        if not base.with_name(base.name + _SEG_SUFFIX).is_file():
            problems.append((str(layout.root / folder), f"{task.stem} is not annotated in this folder"))
            continue
        jpg = base.with_name(base.name + ".jpg")
        if image is None and jpg.is_file():
            image = jpg
        got = _read_2016_annotation(
            base, jpg if jpg.is_file() else None, rows, _consistency_prefix(layout, folder), observed, problems
        )
        for layer, segmap in got.items():
            first = next(iter(masks.values()), None)
            if first is not None and first.shape != segmap.shape:
                raise InputError(
                    base.with_name(base.name + _SEG_SUFFIX),
                    f"annotation is {segmap.shape[1]}x{segmap.shape[0]}, another annotation of the same image is {first.shape[1]}x{first.shape[0]}",
                )
            masks[layer] = segmap
    shape = next(iter(masks.values())).shape
    return ConvertedImage(
        image=_image_row(
            layout,
            task,
            segmap_shape=shape,
            image=image,
            annotation=layout.root / layout.annotations[0] / f"{task.stem}_atr.txt",
            scene=None,
        ),
        segments=rows.cols,
        masks=masks,
        classes=_observed_classes(observed),
        problems=problems,
    )


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


# --------------------------------------------------------------------------- module API


def read_image(layout: Layout, task: Task) -> ConvertedImage:
    """Convert one image of ``layout``; raises :class:`InputError` naming the bad file."""
    reader = {
        "ade20k-2021": _read_2021,
        "ade20k-2016": _read_2016,
        "ade20k-challenge": _read_challenge,
        "ade20k-consistency": _read_consistency,
    }[layout.name]
    return reader(layout, task)


def read(root: str | Path, split: str | None = None):
    """Yield one :class:`~segdata.convert.ConvertedImage` per image of the dataset at ``root``.

    The in-memory counterpart of ``segdata convert``, for notebooks: masks are returned as
    arrays, not written.
    """
    layout = detect(root)
    for task in list_images(layout, split=split):
        yield read_image(layout, task)


def layers(layout: Layout) -> list[dict]:
    """The layers this layout can produce, with their parent layer."""
    prefixes = (
        [""] if layout.name != "ade20k-consistency" else [_consistency_prefix(layout, f) for f in layout.annotations]
    )
    out = []
    for folder, prefix in zip(layout.annotations or ("",), prefixes):
        for level in range(0, MAX_PART_LEVELS + 1):
            if layout.name == "ade20k-challenge" and level > 0:
                break
            name = _layer_name(prefix, level)
            what = "whole objects and stuff" if level == 0 else f"object parts of level {level}"
            if folder:
                what += f" (annotation {folder})"
            out.append({"name": name, "parent": _layer_name(prefix, level - 1) if level else None, "description": what})
    return out


def _load_index_names(path: Path) -> list[str]:
    with open(path, "rb") as f:
        index = pickle.load(f)
    try:
        return [str(n) for n in index["objectnames"]]
    except (KeyError, TypeError):
        raise InputError(path, "index has no 'objectnames'") from None


def build_classes(layout: Layout, observations: pd.DataFrame) -> pd.DataFrame:
    """The class table: one row per class code seen (full dataset) or per benchmark class
    (SceneParsing: all 150, whether seen or not)."""
    if layout.name == "ade20k-challenge":
        info = read_object_info(layout.classes_file)
        return pd.DataFrame(
            {
                "class_id": info["idx"].astype("int32"),
                "name": [_short_name(n) for n in info["name"]],
                "source_id": info["idx"].astype("int64"),
                "source_name": info["name"],
                "is_thing": [None if s is None else not s for s in info["stuff"]],
                "ignore": False,
                "train_id": (info["idx"] - 1).astype("int32"),
                "color": [class_color(int(i)) for i in info["idx"]],
            }
        )
    names: dict[int, tuple[str, str]] = {}
    if not observations.empty:
        ranked = observations.groupby(["source_id", "name", "source_name"], as_index=False)["count"].sum()
        ranked = ranked.sort_values(["source_id", "count", "source_name"], ascending=[True, False, True])
        for row in ranked.drop_duplicates("source_id").itertuples():
            names[int(row.source_id)] = (row.name, row.source_name)
    if layout.index_file is not None:
        objectnames = _load_index_names(layout.index_file)
        for code in list(names):
            if 1 <= code <= len(objectnames):
                names[code] = (_short_name(objectnames[code - 1]), objectnames[code - 1])
    codes = sorted(names)
    return pd.DataFrame(
        {
            "class_id": pd.array(codes, dtype="int32"),
            "name": [names[c][0] for c in codes],
            "source_id": pd.array(codes, dtype="int64"),
            "source_name": [names[c][1] for c in codes],
            "is_thing": pd.array([None] * len(codes), dtype="boolean"),
            "ignore": False,
            "train_id": pd.array([None] * len(codes), dtype="Int32"),
            "color": [class_color(c) for c in codes],
        }
    )

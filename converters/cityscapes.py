"""Cityscapes, read exactly as it ships: gtFine, gtCoarse, and gtCoarse as a layer next to gtFine.

Layouts (detected by :func:`detect`)::

    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      8-bit grey, labelId 0..33
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   16-bit grey, see below
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_color.png         RGBA (not read)
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json     (not read)
    <root>/gtCoarse/<split>/<city>/..._gtCoarse_{labelIds,instanceIds}.png     same encoding
    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png     the image

``cityscapes-gtfine``  ``ROOT`` holds ``gtFine/`` (or ``ROOT`` is the ``gtFine`` folder itself):
one image per ``gtFine`` label pair, layer ``objects``. With ``detect(root, coarse=True)`` (CLI
``--coarse``) the ``gtCoarse`` annotation of the same image, where there is one, becomes a second
layer ``coarse``; gtCoarse images without a gtFine annotation (``train_extra``) are not listed.

``cityscapes-gtcoarse``  ``ROOT`` holds ``gtCoarse/`` but no ``gtFine/`` (or ``ROOT`` is the
``gtCoarse`` folder itself): one image per ``gtCoarse`` label pair, layer ``objects``.

Encoding (cityscapesScripts ``json2instanceImg.py``, checked on the real files): an instanceIds
value ``v >= 1000`` is instance ``k = v % 1000`` of labelId ``v // 1000`` (``k`` counts from 0 in
polygon order); ``v < 1000`` is the labelId itself, for stuff and for thing pixels that have no
instance id (the "group" polygons such as ``cargroup``, drawn as the base class). So instanceIds
alone holds every pixel's labelId, and it is all that is decoded by default (as cityscapesScripts'
own panoptic conversion does); with ``detect(root, check_labelids=True)`` (CLI
``--check-labelids``) the labelIds PNG is decoded too and must agree with it at every pixel.

How the unified format holds it:

- classes: the 34 labels of cityscapesScripts' ``labels.py`` plus ``license plate``, seen or not.
  ``class_id = labelId + 1`` (segdata reserves 0 for "no annotation", Cityscapes uses labelId 0 for
  its own ``unlabeled`` class, which is kept as class 1); ``license plate`` (labelId -1, never in
  a PNG) is class 35. ``source_id`` = labelId; ``source_name`` = ``"<category>/<name>"`` (the
  category has no column of its own); ``train_id`` = trainId as ``labels.py`` defines it, 255
  (ignored in training) kept as 255, license plate's -1 ("no train id") as null; ``ignore`` =
  ignoreInEval; ``is_thing`` = hasInstances; ``color`` = the official colour.
- segments: one per distinct instanceIds value of an image, ids in ascending order of the value:
  first the class regions (``v < 1000``, ``is_instance`` false: stuff, labelId 0 and group regions),
  then the instances (``v >= 1000``, ``is_instance`` true, ``source_instance = v``). A class region
  of a class with instances (a group such as ``cargroup``) has ``iscrowd`` true, as
  cityscapesScripts' ``createPanopticImgs.py`` marks it. Every pixel of a Cityscapes mask belongs
  to a segment; segdata's 0 does not occur.
- images: ``image_id`` = ``<city>_<seq>_<frame>``, ``split`` = the folder (``train``, ``val``,
  ``test``, ``train_extra``), ``file`` = the leftImg8bit path relative to ``ROOT`` (null, and a
  non-fatal problem, when the image is missing), ``annotation`` = the labelIds path.

:func:`write` exports a dataset converted from Cityscapes back to Cityscapes PNGs; the pixels
round-trip exactly.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from segdata.convert import ConvertedImage, SegmentRows, atomic_output, image_row
from segdata.errors import InputError, LayoutNotFoundError, SegdataError
from segdata.maskio import png_size, read_png, read_segment_map
from segdata.runner import parallel_map

FAMILY = "cityscapes"
FINE, COARSE = "gtFine", "gtCoarse"
IMAGE_DIR = "leftImg8bit"
LAYOUT_OF = {FINE: "cityscapes-gtfine", COARSE: "cityscapes-gtcoarse"}
INSTANCE_BASE = 1000  # instanceIds: labelId * 1000 + k
MAX_LABEL_ID = 33

LOOKED_FOR = (
    "gtFine/<split>/<city>/*_gtFine_labelIds.png (+ _instanceIds.png), "
    "gtCoarse/<split>/<city>/*_gtCoarse_labelIds.png (+ _instanceIds.png), "
    "or ROOT being the gtFine or gtCoarse folder itself"
)


# --------------------------------------------------------------------------- the label table


class Label(NamedTuple):
    """One row of cityscapesScripts' ``labels.py`` (field names as there)."""

    name: str
    id: int  # labelId: the value in *_labelIds.png; -1 = never drawn
    trainId: int  # 0..18, 255 = ignored in training, -1 = none
    category: str
    categoryId: int
    hasInstances: bool
    ignoreInEval: bool
    color: tuple[int, int, int]


# fmt: off
LABELS: tuple[Label, ...] = (
    #      name                     id  trainId  category         catId  hasInstances  ignoreInEval  color
    Label("unlabeled",              0,     255,  "void",              0,  False,        True,         (  0,   0,   0)),
    Label("ego vehicle",            1,     255,  "void",              0,  False,        True,         (  0,   0,   0)),
    Label("rectification border",   2,     255,  "void",              0,  False,        True,         (  0,   0,   0)),
    Label("out of roi",             3,     255,  "void",              0,  False,        True,         (  0,   0,   0)),
    Label("static",                 4,     255,  "void",              0,  False,        True,         (  0,   0,   0)),
    Label("dynamic",                5,     255,  "void",              0,  False,        True,         (111,  74,   0)),
    Label("ground",                 6,     255,  "void",              0,  False,        True,         ( 81,   0,  81)),
    Label("road",                   7,       0,  "flat",              1,  False,        False,        (128,  64, 128)),
    Label("sidewalk",               8,       1,  "flat",              1,  False,        False,        (244,  35, 232)),
    Label("parking",                9,     255,  "flat",              1,  False,        True,         (250, 170, 160)),
    Label("rail track",            10,     255,  "flat",              1,  False,        True,         (230, 150, 140)),
    Label("building",              11,       2,  "construction",      2,  False,        False,        ( 70,  70,  70)),
    Label("wall",                  12,       3,  "construction",      2,  False,        False,        (102, 102, 156)),
    Label("fence",                 13,       4,  "construction",      2,  False,        False,        (190, 153, 153)),
    Label("guard rail",            14,     255,  "construction",      2,  False,        True,         (180, 165, 180)),
    Label("bridge",                15,     255,  "construction",      2,  False,        True,         (150, 100, 100)),
    Label("tunnel",                16,     255,  "construction",      2,  False,        True,         (150, 120,  90)),
    Label("pole",                  17,       5,  "object",            3,  False,        False,        (153, 153, 153)),
    Label("polegroup",             18,     255,  "object",            3,  False,        True,         (153, 153, 153)),
    Label("traffic light",         19,       6,  "object",            3,  False,        False,        (250, 170,  30)),
    Label("traffic sign",          20,       7,  "object",            3,  False,        False,        (220, 220,   0)),
    Label("vegetation",            21,       8,  "nature",            4,  False,        False,        (107, 142,  35)),
    Label("terrain",               22,       9,  "nature",            4,  False,        False,        (152, 251, 152)),
    Label("sky",                   23,      10,  "sky",               5,  False,        False,        ( 70, 130, 180)),
    Label("person",                24,      11,  "human",             6,  True,         False,        (220,  20,  60)),
    Label("rider",                 25,      12,  "human",             6,  True,         False,        (255,   0,   0)),
    Label("car",                   26,      13,  "vehicle",           7,  True,         False,        (  0,   0, 142)),
    Label("truck",                 27,      14,  "vehicle",           7,  True,         False,        (  0,   0,  70)),
    Label("bus",                   28,      15,  "vehicle",           7,  True,         False,        (  0,  60, 100)),
    Label("caravan",               29,     255,  "vehicle",           7,  True,         True,         (  0,   0,  90)),
    Label("trailer",               30,     255,  "vehicle",           7,  True,         True,         (  0,   0, 110)),
    Label("train",                 31,      16,  "vehicle",           7,  True,         False,        (  0,  80, 100)),
    Label("motorcycle",            32,      17,  "vehicle",           7,  True,         False,        (  0,   0, 230)),
    Label("bicycle",               33,      18,  "vehicle",           7,  True,         False,        (119,  11,  32)),
    Label("license plate",         -1,      -1,  "vehicle",           7,  False,        True,         (  0,   0, 142)),
)
# fmt: on

#: labelId -> Label (license plate under -1), name -> Label
ID_TO_LABEL: dict[int, Label] = {label.id: label for label in LABELS}
NAME_TO_LABEL: dict[str, Label] = {label.name: label for label in LABELS}
#: trainId 0..18 -> Label (the first label with that train id, as cityscapesScripts' inverse map)
TRAIN_ID_TO_LABEL: dict[int, Label] = {label.trainId: label for label in reversed(LABELS) if 0 <= label.trainId < 255}
LICENSE_PLATE_CLASS_ID = 35


def class_id_of(label_id: int) -> int:
    """segdata ``class_id`` of a Cityscapes labelId: ``labelId + 1``; license plate (-1) is 35."""
    if label_id == -1:
        return LICENSE_PLATE_CLASS_ID
    if not 0 <= label_id <= MAX_LABEL_ID:
        raise ValueError(f"labelId {label_id} is not a Cityscapes label id (0..33, or -1)")
    return label_id + 1


def label_id_of(class_id: int) -> int:
    """Inverse of :func:`class_id_of`."""
    if class_id == LICENSE_PLATE_CLASS_ID:
        return -1
    if not 1 <= class_id <= MAX_LABEL_ID + 1:
        raise ValueError(f"class_id {class_id} is not a Cityscapes class (1..35)")
    return class_id - 1


#: (34,) lookups indexed by labelId 0..33: trainId (uint8, 255 = ignore) and RGB colour (uint8)
TRAIN_ID_LUT = np.array([ID_TO_LABEL[i].trainId for i in range(MAX_LABEL_ID + 1)], dtype=np.uint8)
COLOR_LUT = np.array([ID_TO_LABEL[i].color for i in range(MAX_LABEL_ID + 1)], dtype=np.uint8)


def _check_labels() -> None:
    """The facts of ``labels.py`` this module relies on; checked at import."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"converters/cityscapes.py LABELS: {what}")

    ids = [label.id for label in LABELS]
    need(len(set(ids)) == len(ids), f"duplicate label ids {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    need(sorted(ids) == [-1, *range(MAX_LABEL_ID + 1)], "label ids must be 0..33 plus -1 (license plate)")
    need(len(NAME_TO_LABEL) == len(LABELS), "duplicate names")
    train = sorted(label.trainId for label in LABELS if label.trainId not in (255, -1))
    need(train == list(range(19)), f"train ids 0..18 must each be used once, found {train}")
    for label in LABELS:
        need(
            label.ignoreInEval == (label.trainId in (255, -1)), f"{label.name}: ignoreInEval must equal trainId == 255"
        )
        need(
            all(0 <= c <= 255 for c in label.color) and len(label.color) == 3, f"{label.name}: bad colour {label.color}"
        )
    category_ids = {(label.category, label.categoryId) for label in LABELS}
    need(len({c for c, _ in category_ids}) == len(category_ids), "a category has two category ids")
    class_ids = [class_id_of(i) for i in ids]
    need(len(set(class_ids)) == len(class_ids) and min(class_ids) >= 1, "class ids not unique and positive")


_check_labels()


def class_table() -> pd.DataFrame:
    """The class table of every Cityscapes dataset: 35 rows (the 34 labelIds, license plate),
    with the columns of ``segdata.format.CLASS_SCHEMA``; see the module docstring for the mapping.

    >>> t = class_table(); t.loc[t.source_id == 26, ["class_id", "name", "train_id"]].values.tolist()
    [[27, 'car', 13]]
    """
    rows = sorted(LABELS, key=lambda label: class_id_of(label.id))
    return pd.DataFrame(
        {
            "class_id": pd.array([class_id_of(label.id) for label in rows], dtype="int32"),
            "name": [label.name for label in rows],
            "source_id": pd.array([label.id for label in rows], dtype="int64"),
            "source_name": [f"{label.category}/{label.name}" for label in rows],
            "is_thing": pd.array([label.hasInstances for label in rows], dtype="boolean"),
            "ignore": [label.ignoreInEval for label in rows],
            "train_id": pd.array([None if label.trainId < 0 else label.trainId for label in rows], dtype="Int32"),
            "color": ["#{:02x}{:02x}{:02x}".format(*label.color) for label in rows],
        }
    )


def category_of(source_name: str) -> str:
    """The Cityscapes category of a class from its ``source_name`` (``"vehicle/car"`` -> ``"vehicle"``)."""
    return source_name.split("/", 1)[0]


# --------------------------------------------------------------------------- layout and listing


@dataclass(frozen=True)
class Layout:
    """A detected Cityscapes layout.

    ``root`` is the Cityscapes root (the folder holding ``gtFine/``, ``gtCoarse/``,
    ``leftImg8bit/``); ``image_root`` is the same folder. ``annotation`` is the folder whose label
    pairs are the images (``gtFine`` or ``gtCoarse``), ``coarse`` whether gtCoarse is read as the
    extra layer ``coarse`` of a gtFine dataset.
    """

    name: str
    root: Path
    image_root: Path
    release: str
    annotation: str
    coarse: bool = False
    check_labelids: bool = False
    family: str = FAMILY


@dataclass(frozen=True)
class Task:
    """One image: id ``<city>_<seq>_<frame>``, split and city folders, and whether it has a
    gtCoarse annotation to read as layer ``coarse``."""

    image_id: str
    split: str
    city: str
    coarse: bool = False


def detect(root: str | Path, *, coarse: bool = False, check_labelids: bool = False) -> Layout:
    """Detect the Cityscapes layout at ``root``.

    Parameters
    ----------
    root : path
        The Cityscapes root (holding ``gtFine/`` and/or ``gtCoarse/``), or the ``gtFine`` or
        ``gtCoarse`` folder itself to pick that annotation when both exist.
    coarse : bool
        Read ``gtCoarse`` as layer ``coarse`` next to gtFine's ``objects`` (CLI ``--coarse``).
        Needs both folders.
    check_labelids : bool
        Also decode every ``labelIds`` PNG and check it against ``instanceIds`` (CLI
        ``--check-labelids``). Off by default: ``instanceIds`` holds every pixel's labelId
        (``v`` or ``v // 1000``), which is all cityscapesScripts' own panoptic conversion reads,
        and the second decode costs a third of the conversion time. Every image needs its
        ``instanceIds`` PNG: a missing one is an :class:`InputError` naming it, never read as
        "no instances" from ``labelIds``.

    Raises
    ------
    LayoutNotFoundError
        When ``root`` holds neither folder (naming what was looked for), or ``coarse`` is asked
        for without both.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutNotFoundError(f"{root}: not a directory")
    if root.name in (FINE, COARSE) and not (root / root.name).is_dir():
        base, annotation = root.parent, root.name
    elif (root / FINE).is_dir():
        base, annotation = root, FINE
    elif (root / COARSE).is_dir():
        base, annotation = root, COARSE
    else:
        raise LayoutNotFoundError(f"{root}: no Cityscapes layout found. Looked for: {LOOKED_FOR}")
    if coarse:
        if annotation != FINE:
            raise LayoutNotFoundError(
                f"{root}: coarse=True (--coarse) adds gtCoarse as a layer of a gtFine dataset, but the "
                f"dataset here is {annotation}; drop the option to convert gtCoarse on its own"
            )
        if not (base / COARSE).is_dir():
            raise LayoutNotFoundError(f"{base}: coarse=True (--coarse) needs {base / COARSE}, which does not exist")
    release = f"{FINE}+{COARSE}" if coarse else annotation
    return Layout(LAYOUT_OF[annotation], base, base, release, annotation, coarse=coarse, check_labelids=check_labelids)


def _suffix(annotation: str, kind: str) -> str:
    return f"_{annotation}_{kind}.png"


def _label_pair(root: Path, annotation: str, split: str, city: str, image_id: str) -> tuple[Path, Path]:
    folder = root / annotation / split / city
    return (
        folder / f"{image_id}{_suffix(annotation, 'labelIds')}",
        folder / f"{image_id}{_suffix(annotation, 'instanceIds')}",
    )


def list_images(layout: Layout, split: str | None = None) -> list[Task]:
    """One :class:`Task` per image (a ``labelIds``/``instanceIds`` pair; either file alone counts,
    the missing one is reported when the image is read), sorted by (split, image id)."""
    ann_root = layout.root / layout.annotation
    suffixes = (_suffix(layout.annotation, "labelIds"), _suffix(layout.annotation, "instanceIds"))
    tasks: list[Task] = []
    for split_dir in sorted(p for p in ann_root.iterdir() if p.is_dir()):
        if split is not None and split_dir.name != split:
            continue
        for city_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            ids: set[str] = set()
            with os.scandir(city_dir) as entries:
                for entry in entries:
                    for suffix in suffixes:
                        if entry.name.endswith(suffix):
                            ids.add(entry.name[: -len(suffix)])
            for image_id in ids:
                has_coarse = False
                if layout.coarse:
                    lab, inst = _label_pair(layout.root, COARSE, split_dir.name, city_dir.name, image_id)
                    has_coarse = lab.is_file() or inst.is_file()
                tasks.append(Task(image_id, split_dir.name, city_dir.name, has_coarse))
    tasks.sort(key=lambda t: (t.split, t.image_id))
    for a, b in zip(tasks, tasks[1:]):
        if a.image_id == b.image_id and a.split == b.split:
            raise InputError(ann_root / b.split / b.city, f"image id {b.image_id} appears twice (also in {a.city}/)")
    return tasks


# --------------------------------------------------------------------------- reading one image

# valid instanceIds values: a labelId 0..33, or labelId * 1000 + k for labelId 0..33
_VALID_VALUE = np.zeros(65536, dtype=bool)
_VALID_VALUE[: MAX_LABEL_ID + 1] = True
_VALID_VALUE[INSTANCE_BASE : (MAX_LABEL_ID + 1) * INSTANCE_BASE] = True


def label_of_value(values: np.ndarray) -> np.ndarray:
    """labelId of instanceIds values: ``v // 1000`` where ``v >= 1000``, else ``v``."""
    values = np.asarray(values)
    return np.where(values >= INSTANCE_BASE, values // INSTANCE_BASE, values)


def _run_starts(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: True where a horizontal run of equal values starts (column 0 always)."""
    starts = np.empty(values.shape, dtype=bool)
    starts[:, :1] = True
    np.not_equal(values[:, 1:], values[:, :-1], out=starts[:, 1:])
    return starts


def _stats_of_runs(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values, areas and boxes from the runs of ``values`` (see :func:`region_stats`),
    and the flat index of every run start."""
    w = values.shape[1]
    flat = np.flatnonzero(starts)
    rows, first = np.divmod(flat, w)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = w - 1
    row_end = np.empty(len(rows), dtype=bool)
    row_end[:-1] = rows[1:] != rows[:-1]
    row_end[-1] = True
    last[row_end] = w - 1
    value = values.ravel()[flat].astype(np.int64)
    # numpy sorts 16-bit keys stably by radix sort: linear in the number of runs
    keys = value.astype(np.uint16) if values.dtype.itemsize <= 2 and value.min() >= 0 else value
    order = np.argsort(keys, kind="stable")
    value, rows, first, last = value[order], rows[order], first[order], last[order]
    group = np.flatnonzero(np.r_[True, value[1:] != value[:-1]])
    present = value[group]
    areas = np.add.reduceat(last - first + 1, group)
    x0 = np.minimum.reduceat(first, group)
    x1 = np.maximum.reduceat(last, group)
    y0 = rows[group]  # a stable sort keeps the runs of one value in row-major order
    y1 = np.maximum.reduceat(rows, group)
    boxes = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], axis=1).astype(np.int32)
    return present, areas.astype(np.int64), boxes, flat


def region_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values of a label map with their pixel counts and boxes, from its horizontal runs.

    Linear time: label maps have few runs (tens of thousands on a 2-megapixel Cityscapes map), so
    everything after finding them is cheap; no bincount over the value range, no per-region pass.

    Parameters
    ----------
    values : ndarray of int, shape (H, W)

    Returns
    -------
    present : ndarray of int64, shape (n,)
        The distinct values, ascending (0 included when it occurs).
    areas : ndarray of int64, shape (n,)
        Pixels per value.
    boxes : ndarray of int32, shape (n, 4)
        ``(x, y, w, h)`` per value, x = column, half-open (COCO convention).

    Examples
    --------
    >>> present, areas, boxes = region_stats(np.array([[7, 7, 26000], [7, 26000, 26000]]))
    >>> present.tolist(), areas.tolist(), boxes.tolist()
    ([7, 26000], [3, 3], [[0, 0, 2, 2], [1, 0, 2, 2]])
    """
    if values.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.int32)
    present, areas, boxes, _ = _stats_of_runs(values, _run_starts(values))
    return present, areas, boxes


def _describe_disagreement(lab: np.ndarray, derived: np.ndarray, lab_path: Path, inst_path: Path) -> InputError:
    bad = derived != lab
    n_bad = int(np.count_nonzero(bad))
    r, c = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return InputError(
        inst_path,
        f"{n_bad} pixels disagree with {lab_path.name}: the labelId of an instanceIds value v is v // 1000 "
        f"(v >= 1000) or v, and must equal labelIds; first at row {r}, column {c}: labelIds has "
        f"{int(lab[r, c])}, instanceIds gives {int(derived[r, c])}",
    )


def _check_label_range(lab: np.ndarray, lab_path: Path) -> None:
    counts = np.bincount(lab.ravel(), minlength=MAX_LABEL_ID + 1)
    bad = np.flatnonzero(counts[MAX_LABEL_ID + 1 :]) + MAX_LABEL_ID + 1
    if bad.size:
        raise InputError(
            lab_path,
            f"labelId(s) {bad.tolist()[:8]} outside 0..33 ({int(counts[bad].sum())} pixels)",
            hint="Cityscapes labelIds are 0..33; a labelTrainIds PNG (0..18, 255) is not a labelIds PNG",
        )


def _wrong_size(files: list[Path]) -> InputError:
    """The error for an image whose files differ in size (read from the PNG headers): it names the
    file whose size the others do not share, or ``files[0]`` when no size has a majority."""
    sizes = {f: hw for f in files if (hw := _header_size(f)) is not None}
    ranked = Counter(sizes.values()).most_common()
    tie = len(ranked) < 2 or ranked[0][1] == ranked[1][1]
    wrong = files[0] if tie else next(f for f in sizes if sizes[f] != ranked[0][0])
    others = " and ".join(f"{f.name} is {hw[1]}x{hw[0]}" for f, hw in sizes.items() if f != wrong)
    h, w = sizes[wrong]
    kind = wrong.stem.rsplit("_", 1)[-1]  # instanceIds, labelIds or leftImg8bit
    unsure = " (the other files of this image do not tell which is wrong)" if tie else ""
    return InputError(wrong, f"{kind} is {w}x{h} but {others}{unsure}")


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(H, W)`` from a PNG header; None when the file is missing or no PNG (not this check's business)."""
    try:
        return png_size(path)
    except (OSError, SegdataError):
        return None


def read_label_pair(
    lab_path: Path, inst_path: Path, check_labelids: bool = True, image: Path | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read one ``labelIds``/``instanceIds`` pair; cross-check them when ``check_labelids``.

    Without the check only ``instanceIds`` is decoded (it holds every pixel's labelId; a missing
    ``instanceIds`` is an error, never read as "no instances"). With the check both must exist.
    ``image`` (the leftImg8bit PNG, when there is one) and ``labelIds`` (its header, when it is not
    decoded) must have the same size: where sizes differ, the file named is the one whose size the
    others (image, labelIds, instanceIds) do not share.

    Returns
    -------
    segmap : ndarray of uint8 or uint16, shape (H, W)
        Segment ids 1..n in ascending order of the instanceIds value; every pixel has one.
    values : ndarray of int64, shape (n,)
        ``values[i - 1]`` is the instanceIds value of segment ``i``.
    areas : ndarray of int64, shape (n,)
    boxes : ndarray of int32, shape (n, 4)

    Raises
    ------
    InputError
        Naming the file: missing, not a PNG or corrupt, wrong bit depth (labelIds must be 8-bit
        single-channel, instanceIds 16-bit grey), sizes differ, a labelId outside 0..33, an
        instanceIds value that is neither a labelId nor labelId*1000+k, or the two disagree.
    """
    if not inst_path.is_file():
        raise InputError(
            inst_path,
            "file not found: the instanceIds PNG holds the image's instances (labelIds alone has none)",
            hint="restore it, or convert with --on-error skip to leave this image out",
        )
    lab = read_png(lab_path, expect="grey8") if check_labelids else None
    inst = read_png(inst_path, expect="grey16")
    # sizes from the headers where a file is not decoded (an unreadable labelIds is not checked)
    lab_hw = lab.shape if lab is not None else _header_size(lab_path)
    if (lab_hw is not None and lab_hw != inst.shape) or (image is not None and png_size(image) != inst.shape):
        raise _wrong_size([inst_path, lab_path] + ([image] if image is not None else []))
    if inst.size == 0:
        raise InputError(inst_path, "image has no pixels")
    starts = _run_starts(inst)
    present, areas, boxes, flat = _stats_of_runs(inst, starts)
    invalid = present[~_VALID_VALUE[present]]
    if invalid.size:
        if lab is not None:
            _check_label_range(lab, lab_path)  # a bad labelIds file is the likelier culprit: name it first
        pixels = int(areas[~_VALID_VALUE[present]].sum())
        raise InputError(
            inst_path,
            f"value(s) {invalid.tolist()[:8]} ({pixels} pixels) are neither a labelId 0..33 nor labelId*1000+k",
        )
    # Agreement without a per-pixel lookup: labelIds must equal label(v) at the start of every
    # run of instanceIds, and must not change value inside a run.
    agree = lab is None or np.array_equal(lab.ravel()[flat], label_of_value(inst.ravel()[flat]))
    if agree and lab is not None:
        lab_starts = np.not_equal(lab[:, 1:], lab[:, :-1])
        agree = not np.any(np.greater(lab_starts, starts[:, 1:], out=lab_starts))
    if not agree:
        _check_label_range(lab, lab_path)
        raise _describe_disagreement(lab, label_of_value(inst).astype(np.int64), lab_path, inst_path)
    n = len(present)
    lut = np.zeros(int(present[-1]) + 1, dtype=np.uint8 if n < 256 else np.uint16)
    lut[present] = np.arange(1, n + 1)
    # the runs partition the pixels: repeating each run's segment id over its length builds the
    # map ten times faster than a per-pixel lookup (a few thousand runs for two million pixels)
    lengths = np.diff(flat, append=inst.size)
    segmap = np.repeat(lut[inst.ravel()[flat]], lengths).reshape(inst.shape)
    return segmap, present, areas, boxes


_HAS_INSTANCES = np.array([ID_TO_LABEL[i].hasInstances for i in range(MAX_LABEL_ID + 1)])


def _add_segments(rows: SegmentRows, layer: str, values: np.ndarray, areas: np.ndarray, boxes: np.ndarray) -> None:
    labels = label_of_value(values)
    for i in range(len(values)):
        v, label = int(values[i]), int(labels[i])
        is_instance = v >= INSTANCE_BASE
        # a class region of a class with instances is a group ("cargroup"): a crowd, as
        # cityscapesScripts' createPanopticImgs.py marks it (iscrowd 1)
        crowd = not is_instance and bool(_HAS_INSTANCES[label])
        rows.add(
            layer,
            i + 1,
            label + 1,
            is_instance,
            areas[i],
            boxes[i],
            source_instance=v if is_instance else None,
            iscrowd=crowd,
        )


def read_image(layout: Layout, task: Task) -> ConvertedImage:
    """Convert one image of ``layout``; raises :class:`InputError` naming the bad file."""
    rows = SegmentRows(task.image_id)
    image = layout.root / IMAGE_DIR / task.split / task.city / f"{task.image_id}_{IMAGE_DIR}.png"
    known_image = image if image.is_file() else None
    lab_path, inst_path = _label_pair(layout.root, layout.annotation, task.split, task.city, task.image_id)
    segmap, values, areas, boxes = read_label_pair(lab_path, inst_path, layout.check_labelids, known_image)
    _add_segments(rows, "objects", values, areas, boxes)
    masks = {"objects": segmap}
    if task.coarse:
        c_lab, c_inst = _label_pair(layout.root, COARSE, task.split, task.city, task.image_id)
        c_map, c_values, c_areas, c_boxes = read_label_pair(c_lab, c_inst, layout.check_labelids, known_image)
        if c_map.shape != segmap.shape:  # no image to tell which is wrong: the four label files vote
            raise _wrong_size([c_inst, c_lab, inst_path, lab_path])
        _add_segments(rows, "coarse", c_values, c_areas, c_boxes)
        masks["coarse"] = c_map
    problems = []
    file = None
    if known_image is not None:
        file = image.relative_to(layout.root).as_posix()
    else:
        problems.append((str(image), "image file missing; annotation converted without it"))
    return ConvertedImage(
        image=image_row(task.image_id, task.split, segmap.shape, file, lab_path.relative_to(layout.root).as_posix()),
        segments=rows.cols,
        masks=masks,
        classes=[],
        problems=problems,
    )


def read(root: str | Path, split: str | None = None, *, coarse: bool = False):
    """Yield one :class:`~segdata.convert.ConvertedImage` per image of the Cityscapes dataset at
    ``root`` (masks in memory, nothing written), for notebooks."""
    layout = detect(root, coarse=coarse)
    for task in list_images(layout, split=split):
        yield read_image(layout, task)


def layers(layout: Layout) -> list[dict]:
    """The layers this layout can produce."""
    out = [{"name": "objects", "parent": None, "description": f"{layout.annotation}: class regions and instances"}]
    if layout.coarse:
        out.append({"name": "coarse", "parent": None, "description": "gtCoarse annotation of the same image"})
    return out


def build_classes(layout: Layout, observations: pd.DataFrame) -> pd.DataFrame:
    """The fixed class table (:func:`class_table`): every Cityscapes label, seen or not."""
    return class_table()


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class _ExportTask:
    mask: Path
    stem: Path  # output path without the "labelIds.png" etc. suffix, relative to the output root
    label_lut: np.ndarray  # segment id -> labelId
    value_lut: np.ndarray  # segment id -> instanceIds value


def _save_png(path: Path, array: np.ndarray) -> None:
    """uint8 (H, W) -> 8-bit grey, uint16 -> 16-bit grey, uint8 (H, W, 4) -> RGBA.

    Pillow's default encoder (zlib level 6, adaptive row filters) is the one the official files
    were written with: equal pixels give byte-identical files (checked on the real samples).
    """
    from PIL import Image

    Image.fromarray(array).save(path)


def _export_one(out: Path, color: bool, task: _ExportTask) -> int:
    segmap = read_segment_map(task.mask)
    if int(segmap.max(initial=0)) >= len(task.label_lut):
        raise InputError(task.mask, f"segment id {int(segmap.max())} has no row in segments.parquet")
    labels = np.take(task.label_lut, segmap)
    values = np.take(task.value_lut, segmap)
    target = out / task.stem
    target.parent.mkdir(parents=True, exist_ok=True)
    _save_png(Path(f"{target}labelIds.png"), labels)
    _save_png(Path(f"{target}instanceIds.png"), values)
    if color:
        rgba = np.empty(labels.shape + (4,), dtype=np.uint8)
        rgba[..., :3] = np.take(COLOR_LUT, labels, axis=0)
        rgba[..., 3] = 255
        _save_png(Path(f"{target}color.png"), rgba)
    return 3 if color else 2


def _instance_values(label: np.ndarray, is_instance: np.ndarray, source: np.ndarray) -> np.ndarray:
    """instanceIds value per segment: the source's where it fits the label, else the next free k."""
    values = label.astype(np.int64).copy()
    ok = is_instance & (source >= INSTANCE_BASE) & (source // INSTANCE_BASE == label)
    values[ok] = source[ok]
    for i in np.flatnonzero(is_instance & ~ok):
        used = set(values[is_instance & (label == label[i])].tolist())
        k = 0
        while label[i] * INSTANCE_BASE + k in used:
            k += 1
        if k >= INSTANCE_BASE:
            raise SegdataError(f"more than {INSTANCE_BASE} instances of labelId {label[i]} in one image")
        values[i] = label[i] * INSTANCE_BASE + k
    return values


def annotation_folders(ds) -> dict[str, str]:
    """layer -> the annotation folder it comes from (``objects`` of a gtCoarse dataset: gtCoarse)."""
    layout = ds.manifest.get("source", {}).get("layout")
    return {"objects": COARSE if layout == LAYOUT_OF[COARSE] else FINE, "coarse": COARSE}


def value_tables(ds, layers: tuple[str, ...] | None = None):
    """Per image of ``ds`` (a dataset converted from Cityscapes) and layer (all, or those in
    ``layers``): ``(image row, layer, annotation folder, city, label_lut, value_lut)``, where
    ``label_lut`` (uint8) maps a segment id to its labelId and ``value_lut`` (uint16) to its
    instanceIds value (see :func:`write`; segment id 0, no annotation, maps to labelId 0).

    Raises :class:`SegdataError` when ``ds`` is not from Cityscapes (its classes carry no labelIds),
    has a layer other than ``objects`` and ``coarse``, or a segment of a class without a labelId.
    """
    from segdata.format import layer_names, lookup_table, text_or_none

    source = ds.manifest.get("source", {})
    if source.get("family") != FAMILY:
        raise SegdataError(
            f"{ds.path}: the Cityscapes exporters write datasets converted from Cityscapes only; this one is "
            f"from {source.get('family')!r} (its classes carry no Cityscapes labelIds)"
        )
    folder_of = annotation_folders(ds)
    unknown_layers = [layer for layer in ds.layers if layer not in folder_of]
    if unknown_layers:
        raise SegdataError(f"{ds.path}: layers {unknown_layers} have no Cityscapes counterpart (objects, coarse)")
    classes = ds.classes
    label_of_class = np.full(int(classes["class_id"].max()) + 1 if len(classes) else 1, -1, dtype=np.int64)
    label_of_class[classes["class_id"].to_numpy()] = classes["source_id"].to_numpy()
    segments = ds.segments
    groups = segments.groupby(["image_id", "layer"], sort=False).indices
    for img in ds.images.itertuples(index=False):
        parts = (text_or_none(img.annotation) or "").split("/")
        city = parts[2] if len(parts) == 4 else img.image_id.rsplit("_", 2)[0]
        for layer in layer_names(img.layers):
            if layers is not None and layer not in layers:
                continue
            idx = groups.get((img.image_id, layer))
            seg = segments.iloc[idx] if idx is not None else segments.iloc[0:0]
            class_ids = seg["class_id"].to_numpy()
            if len(class_ids) and class_ids.max() >= len(label_of_class):
                raise SegdataError(f"{ds.path}: image {img.image_id} has class ids without a class row")
            label = label_of_class[class_ids]
            if ((label < 0) | (label > MAX_LABEL_ID)).any():
                bad = sorted(set(class_ids[(label < 0) | (label > MAX_LABEL_ID)].tolist()))
                raise SegdataError(
                    f"{ds.path}: image {img.image_id} has segments of classes {bad}, which have no labelId 0..33"
                )
            source_inst = seg["source_instance"].astype("Int64").fillna(-1).to_numpy(dtype=np.int64)
            values = _instance_values(label, seg["is_instance"].to_numpy(dtype=bool), source_inst)
            seg_ids = seg["segment_id"].to_numpy()
            label_lut = lookup_table(seg_ids, label, dtype=np.uint8)
            yield img, layer, folder_of[layer], city, label_lut, lookup_table(seg_ids, values, dtype=np.uint16)


def write(
    dataset,
    out: str | Path,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    color: bool = True,
) -> dict:
    """Export a unified dataset converted from Cityscapes back to Cityscapes label PNGs.

    Writes, for every image and annotation layer, ``<ann>/<split>/<city>/<id>_<ann>_labelIds.png``
    (8-bit grey), ``_instanceIds.png`` (16-bit grey) and, with ``color``, ``_color.png`` (RGBA),
    where ``<ann>`` is ``gtFine`` for layer ``objects`` of a gtFine dataset, ``gtCoarse`` for layer
    ``coarse`` and for a gtCoarse dataset. Pixels round-trip exactly: an instance segment gets its
    ``source_instance`` back (the next free ``labelId*1000+k`` when it has none), a class region its
    labelId, a pixel of no segment labelId 0. Polygons and images are not written.

    Only datasets whose ``source.family`` is ``cityscapes`` are accepted: other families would need
    a mapping of their classes onto Cityscapes labelIds, which segdata does not guess.

    Parameters
    ----------
    dataset : segdata.Dataset or path
    out : path
        Output directory, written atomically (must not exist unless ``overwrite``).
    workers : int, optional
        Processes; default all cores.
    progress : callable(done, total), optional
    color : bool
        Also write the ``_color.png`` files (the slowest of the three to encode).

    Returns
    -------
    dict
        ``path``, ``images``, ``files``, ``layers`` (layer -> annotation folder), ``seconds``.
    """
    from segdata.format import Dataset, mask_relpath

    start = time.perf_counter()
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    tasks: list[_ExportTask] = []
    for img, layer, folder, city, label_lut, value_lut in value_tables(ds):
        stem = Path(folder) / img.split / city / f"{img.image_id}_{folder}_"
        tasks.append(_ExportTask(ds.path / mask_relpath(layer, img.split, img.image_id), stem, label_lut, value_lut))

    files = 0
    with atomic_output(out, overwrite=overwrite) as tmp:
        if progress:
            progress(0, len(tasks))
        for done, n in enumerate(parallel_map(partial(_export_one, tmp, color), tasks, workers=workers), 1):
            files += n
            if progress:
                progress(done, len(tasks))
    used = sorted(set(ds.layers))
    return {
        "path": str(out),
        "images": len(ds.images),
        "files": files,
        "layers": {layer: annotation_folders(ds)[layer] for layer in used},
        "seconds": round(time.perf_counter() - start, 3),
    }

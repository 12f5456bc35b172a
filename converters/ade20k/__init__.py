"""ADE20K, read exactly as it ships, in all four of its layouts.

Layouts (detected by :func:`detect`):

``ade20k-2021``  full dataset, release ``ADE20K_2021_17_01``::

    images/ADE/{training,validation}/<group>/<scene>/<stem>.jpg
    <stem>_seg.png, <stem>_parts_N.png      RGB: class code = R // 10 * 256 + G, instance in B
    <stem>.json                             objects and parts: name, name_ndx (= code), polygon, ...
    <stem>/instance_NNN_<stem>.png          amodal instance masks (255 visible, 128 occluded),
                                            read only with detect(root, check_instance_masks=True)
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
  becomes a row of area 0 with no pixels in the mask. With ``check_instance_masks`` (CLI
  ``--check-instance-masks``) each object's instance mask is read: a missing or truncated one
  raises :class:`InputError` naming it, and one whose visible pixels (255) overlap the object's
  linked region at IoU below 0.9 is a problem naming the mask (real samples: 134 of 139
  objects at IoU 1, all at least 0.964).
- 2016: object ``k`` of a level (its ``_atr.txt`` instance number) has B value
  ``round_half_up(k * 255 / N)`` for the N lines of that level; parts are linked to the
  region of the level above that covers most of their pixels.
- the open vocabulary is kept: every class code becomes its own class (``class_id`` = code,
  ``source_id`` = code, ``source_name`` = the WordNet-style name, ``name`` its first synonym);
  raw annotator names, occlusion, crop and attributes stay on the segment rows.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd

from segdata.convert import ConvertedImage
from segdata.errors import InputError
from segdata.palette import class_color

from .challenge import _read_challenge, read_object_info
from .full2016 import _consistency_prefix, _read_2016, _read_consistency, parse_atr
from .full2021 import _read_2021
from .layout import (
    FAMILY,
    LOOKED_FOR,
    MAX_PART_LEVELS,
    SPLIT_ALIASES,
    SPLIT_DIRS,
    Layout,
    Task,
    detect,
    list_images,
)
from .levels import _layer_name, _short_name

__all__ = [
    "FAMILY",
    "LOOKED_FOR",
    "MAX_PART_LEVELS",
    "SPLIT_ALIASES",
    "SPLIT_DIRS",
    "Layout",
    "Task",
    "build_classes",
    "detect",
    "layers",
    "list_images",
    "parse_atr",
    "read",
    "read_image",
    "read_object_info",
]

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

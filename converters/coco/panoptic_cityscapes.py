"""COCO panoptic in the official Cityscapes convention (``segdata export --to coco-panoptic
--convention cityscapes``): what cityscapesScripts' ``csCreatePanopticImgs``
(``preparation/createPanopticImgs.py``, 2.3.0) writes from ``gtFine``, and what detectron2 and
mmdetection train and evaluate Cityscapes panoptic models with.

Output (``OUT`` plays the role of the tool's ``--output-folder``, by default the ``gtFine`` folder)::

    OUT/cityscapes_panoptic_<split>[_trainId].json
    OUT/cityscapes_panoptic_<split>[_trainId]/<image_id>_gtFine_panoptic.png

Conventions, as in the tool:

- the segments of an image are the distinct instanceIds values ``v`` of its ``objects`` layer
  (rebuilt exactly, see ``cityscapes.write``), in ascending order; segment id = ``v`` (PNG
  ``R = v % 256``, ``G = v // 256``, ``B = 0``);
- a segment whose label is ``ignoreInEval`` (unlabeled, ego vehicle, ..., parking, caravan,
  trailer, license plate) is void: id 0 in the PNG, no entry in ``segments_info``; so are
  pixels of no segment (labelId 0);
- ``category_id`` = the labelId, or the trainId with ``use_train_id`` (the tool's
  ``--use-train-id``); ``categories`` = the labels of ``labels.py`` that are not ignoreInEval, in
  that order, with ``id``, ``name``, ``color``, ``supercategory`` (the Cityscapes category) and
  ``isthing``;
- ``iscrowd`` = 1 for a class region (``v < 1000``) of a class with instances (a group such as
  ``cargroup``), else 0; ``area`` in pixels and ``bbox`` ``[x, y, w, h]`` from the map;
- image ids are the strings ``<city>_<seq>_<frame>``; ``images[].file_name`` is what the tool
  writes, ``<image_id>_gtFine_leftImg8bit.png`` (sic: the tool derives it from the instanceIds
  file name; the image itself is ``leftImg8bit/<split>/<city>/<image_id>_leftImg8bit.png``),
  whether or not the dataset has the image; ``annotations[].file_name`` is the PNG's name;
- the JSON is ``json.dump(..., sort_keys=True, indent=4)``, images ordered by city and id (the
  tool's sorted file list), and the PNGs are written by Pillow with its default settings: the
  files equal the tool's byte for byte.

A gtCoarse dataset is exported the same way with ``gtCoarse`` in the file names (the tool itself
reads only gtFine); a ``coarse`` layer next to gtFine is not exported.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from segdata.convert import atomic_output
from segdata.converters import cityscapes as cs
from segdata.errors import InputError
from segdata.format import Dataset, mask_relpath
from segdata.maskio import read_segment_map
from segdata.runner import parallel_map

_IGNORE = np.array([cs.ID_TO_LABEL[i].ignoreInEval for i in range(cs.MAX_LABEL_ID + 1)])
_HAS_INSTANCES = np.array([cs.ID_TO_LABEL[i].hasInstances for i in range(cs.MAX_LABEL_ID + 1)])


def categories(use_train_id: bool = False) -> list[dict]:
    """The tool's ``categories``: every label of ``labels.py`` that is not ``ignoreInEval``."""
    return [
        {
            "id": label.trainId if use_train_id else label.id,
            "name": label.name,
            "color": list(label.color),
            "supercategory": label.category,
            "isthing": 1 if label.hasInstances else 0,
        }
        for label in cs.LABELS
        if not label.ignoreInEval
    ]


@dataclass(frozen=True)
class _Task:
    image_id: str
    split: str
    width: int
    height: int
    mask: str | None  # the objects mask, None when the image has none (all void)
    value_lut: np.ndarray  # segment id -> instanceIds value
    folder: str  # gtFine or gtCoarse


def _export_one(task: _Task, out_dir: str, base: str, use_train_id: bool) -> tuple:
    """Worker: write one panoptic PNG; return (split, image id, images entry, annotation, void regions)."""
    if task.mask is None:
        values = np.zeros((task.height, task.width), np.uint16)
    else:
        segmap = read_segment_map(task.mask)
        if segmap.shape != (task.height, task.width):
            raise InputError(
                task.mask, f"mask is {segmap.shape[1]}x{segmap.shape[0]}, image is {task.width}x{task.height}"
            )
        if int(segmap.max(initial=0)) >= len(task.value_lut):
            raise InputError(task.mask, f"segment id {int(segmap.max())} has no row in segments.parquet")
        values = np.take(task.value_lut, segmap)
    present, areas, boxes = cs.region_stats(values)
    labels = cs.label_of_value(present)
    kept = ~_IGNORE[labels]
    ids = np.zeros(int(present[-1]) + 1 if len(present) else 1, np.uint16)
    ids[present[kept]] = present[kept]
    pan = np.take(ids, values)
    rgb = np.zeros(values.shape + (3,), np.uint8)
    rgb[..., 0] = pan & 255
    rgb[..., 1] = pan >> 8
    png = f"{task.image_id}_{task.folder}_panoptic.png"
    Image.fromarray(rgb).save(Path(out_dir) / f"{base.format(split=task.split)}" / png)
    segments_info = [
        {
            "id": int(v),
            "category_id": int(cs.TRAIN_ID_LUT[label] if use_train_id else label),
            "area": int(area),
            "bbox": [int(b) for b in box],
            "iscrowd": int(v < cs.INSTANCE_BASE and bool(_HAS_INSTANCES[label])),
        }
        for v, label, area, box in zip(present[kept], labels[kept], areas[kept], boxes[kept])
    ]
    image = {
        "id": task.image_id,
        "width": task.width,
        "height": task.height,
        "file_name": f"{task.image_id}_{task.folder}_leftImg8bit.png",
    }
    annotation = {"image_id": task.image_id, "file_name": png, "segments_info": segments_info}
    return task.split, task.image_id, image, annotation, int(np.count_nonzero(~kept & (present > 0)))


def write(
    dataset, out: str | Path, *, overwrite: bool = False, workers=None, progress=None, use_train_id: bool = False
) -> dict:
    """Export a dataset converted from Cityscapes as ``csCreatePanopticImgs`` would (see the module
    docstring); ``use_train_id`` is the tool's ``--use-train-id``.

    Returns
    -------
    dict
        ``path``, ``convention`` ("cityscapes"), ``images``, ``segments`` (written), ``void_regions``
        (distinct instanceIds values 1.. of ignoreInEval classes, written as void), ``categories``, ``splits`` (JSON path
        per split), ``seconds``.

    Raises
    ------
    SegdataError
        When the dataset is not from Cityscapes (its classes carry no labelIds).
    InputError
        Naming a mask that does not fit its image or its segment rows.
    """
    start = time.perf_counter()
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    base = "cityscapes_panoptic_{split}" + ("_trainId" if use_train_id else "")
    tasks, order = [], {}
    for img, layer, folder, city, _, value_lut in cs.value_tables(ds, layers=("objects",)):
        order[img.image_id] = (city, img.image_id)  # the tool's sorted <city>/<file> list
        mask = str(ds.path / mask_relpath(layer, img.split, img.image_id))
        tasks.append(_Task(img.image_id, img.split, int(img.width), int(img.height), mask, value_lut, folder))
    folder = cs.annotation_folders(ds)["objects"]
    for img in ds.images.itertuples(index=False):  # images without an objects mask: all void
        if img.image_id not in order:
            order[img.image_id] = (img.image_id.rsplit("_", 2)[0], img.image_id)
            tasks.append(_Task(img.image_id, img.split, int(img.width), int(img.height), None, np.zeros(1), folder))
    splits = sorted({t.split for t in tasks})
    cats = categories(use_train_id)
    per_split: dict[str, list] = {s: [] for s in splits}
    n_seg = n_void = 0
    with atomic_output(out, overwrite=overwrite) as tmp:
        for split in splits:
            (tmp / base.format(split=split)).mkdir(parents=True)
        if progress:
            progress(0, len(tasks))
        worker = partial(_export_one, out_dir=str(tmp), base=base, use_train_id=use_train_id)
        for done, (split, image_id, image, annotation, void) in enumerate(
            parallel_map(worker, tasks, workers=workers), 1
        ):
            per_split[split].append((order[image_id], image, annotation))
            n_seg += len(annotation["segments_info"])
            n_void += void
            if progress:
                progress(done, len(tasks))
        paths = {}
        for split, items in per_split.items():
            items.sort(key=lambda it: it[0])
            doc = {"images": [it[1] for it in items], "annotations": [it[2] for it in items], "categories": cats}
            name = f"{base.format(split=split)}.json"
            with open(tmp / name, "w", encoding="utf-8") as f:
                json.dump(doc, f, sort_keys=True, indent=4)
            paths[split] = str(Path(out) / name)
    return {
        "path": str(out),
        "convention": "cityscapes",
        "images": len(tasks),
        "segments": n_seg,
        "void_regions": n_void,
        "categories": len(cats),
        "splits": paths,
        "seconds": round(time.perf_counter() - start, 3),
    }

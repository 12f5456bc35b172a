"""The exporter to COCO panoptic (:func:`write`): a unified dataset's ``objects`` layer as
panopticapi's JSON + RGB PNGs, in segdata's convention or (``panoptic_cityscapes``) the official
Cityscapes one."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from segdata import __version__
from segdata.convert import atomic_output
from segdata.errors import FormatError, InputError
from segdata.format import Dataset, layer_flags, mask_relpath, text_or_none
from segdata.maskio import read_segment_map
from segdata.regions import bounding_boxes
from segdata.runner import parallel_map


@dataclass(frozen=True)
class _ExportTask:
    image_id: str
    split: str
    json_id: int
    width: int
    height: int
    png: str
    file_name: str | None  # the image file's name (null where the dataset records no file)
    mask: str | None  # path of the objects mask, None when the image has none
    segments: bytes  # int64 rows (segment_id, class_id, iscrowd) of the image's objects segments with a class row


def _export_one(task: _ExportTask, out_dir: str) -> tuple:
    """Worker: write one panoptic PNG; return (split, json id, images entry, annotation JSON text, counts)."""
    seg = np.frombuffer(task.segments, np.int64).reshape(-1, 3)
    if task.mask is not None:
        segmap = read_segment_map(task.mask)
        if segmap.shape != (task.height, task.width):
            raise InputError(
                task.mask, f"mask is {segmap.shape[1]}x{segmap.shape[0]}, image is {task.width}x{task.height}"
            )
    else:
        segmap = np.zeros((task.height, task.width), np.uint8)
    max_id = int(segmap.max()) if segmap.size else 0
    size = max(max_id, int(seg[:, 0].max()) if len(seg) else 0) + 1
    keep = np.zeros(size, bool)
    keep[seg[:, 0]] = True
    ids = np.where(keep[segmap], segmap, 0).astype(np.int32)
    unlisted = int(((segmap > 0) & ~keep[segmap]).sum())
    counts = np.bincount(ids.ravel(), minlength=size)
    boxes = bounding_boxes(ids, size - 1)
    segments_info = []
    for sid, cid, crowd in seg.tolist():
        if not keep[sid] or counts[sid] == 0:
            continue
        x, y, bw, bh = boxes[sid - 1].tolist()
        segments_info.append(
            {"id": sid, "category_id": cid, "iscrowd": int(crowd), "bbox": [x, y, bw, bh], "area": int(counts[sid])}
        )
    rgb = np.zeros((task.height, task.width, 3), np.uint8)
    rgb[..., 0] = ids & 255
    rgb[..., 1] = (ids >> 8) & 255
    rgb[..., 2] = ids >> 16
    dest = Path(out_dir) / "annotations" / f"panoptic_{task.split}" / task.png
    Image.fromarray(rgb, "RGB").save(dest, compress_level=1)
    image = {"id": task.json_id, "width": task.width, "height": task.height, "file_name": task.file_name}
    if str(task.json_id) != task.image_id:
        image["segdata_image_id"] = task.image_id
    annotation = {"segments_info": segments_info, "file_name": task.png, "image_id": task.json_id}
    dropped = len(seg) - len(segments_info)
    return task.split, task.json_id, json.dumps(image), json.dumps(annotation), len(segments_info), dropped, unlisted


CONVENTIONS = ("segdata", "cityscapes")


def write(
    dataset,
    out: str | Path,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    progress=None,
    convention: str = "segdata",
    use_train_id: bool = False,
) -> dict:
    """Export a unified dataset to COCO panoptic: ``annotations/panoptic_<split>.json`` and the
    RGB PNGs ``annotations/panoptic_<split>/<name>.png`` (id = R + 256 G + 256^2 B, 0 = void),
    as panopticapi and detectron2 read them.

    Every segment of the ``objects`` layer with ``area > 0`` becomes one panoptic segment whose
    id is its ``segment_id`` (instances stay separate; class regions that are not instances
    become segments of their class, which is a stuff category unless the class is a thing);
    ``iscrowd`` is kept, ``area`` and ``bbox`` are counted from the mask. Categories are the
    class table (``id`` = ``class_id``, ``isthing`` from ``is_thing``, where null: whether any
    segment of the class is an instance; ``color`` from the class colour). Image ids are the
    dataset's when they are all decimal numbers (COCO), otherwise 1..N in (split, image id)
    order with the dataset's id kept as ``segdata_image_id`` (detectron2 needs integer ids).
    ``images[].file_name`` is the image file's own name, with the extension it has
    (``000000397133.jpg``, ``frankfurt_000000_000294_leftImg8bit.png``), and null for an image
    whose file the dataset does not record (it was missing at conversion; ``images_without_file``
    counts them). PNGs are named after the image file's stem (``000000397133.png``); in a split
    where an image has no file or two files share a stem, every PNG of the split is named after
    its image id instead (one scheme per split).

    This is the ``segdata`` convention. ``convention="cityscapes"`` (a dataset converted from
    Cityscapes only) writes instead what cityscapesScripts' ``csCreatePanopticImgs`` writes:
    labelIds as category ids (trainIds with ``use_train_id``), ignoreInEval classes void, string
    image ids; see :mod:`segdata.converters.coco.panoptic_cityscapes`.

    Parameters
    ----------
    dataset : Dataset or path
        A unified-format dataset.
    out : path
        Output directory, written atomically (must not exist unless ``overwrite``).
    workers : int, optional
        Processes; default all cores.
    progress : callable(done, total), optional
    convention : {"segdata", "cityscapes"}
        ``segdata``: the dataset's class ids and segments, as above. ``cityscapes``: the official
        Cityscapes flavour.
    use_train_id : bool
        ``cityscapes`` only: category ids are Cityscapes trainIds (``--use-train-id``).

    Returns
    -------
    dict
        ``path``, ``images``, ``images_without_file`` (``file_name`` null), ``segments``
        (written), ``dropped_segments`` (rows of area 0, which a panoptic PNG cannot hold),
        ``unlisted_pixels`` (mask pixels without a segment row of a class in the class table,
        written as void), ``categories``, ``splits`` (JSON path per split), ``seconds``. The
        ``cityscapes`` convention reports its own (see ``panoptic_cityscapes.write``).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if convention == "cityscapes":
        from . import panoptic_cityscapes

        return panoptic_cityscapes.write(
            dataset, out, overwrite=overwrite, workers=workers, progress=progress, use_train_id=use_train_id
        )
    if use_train_id:
        raise ValueError("use_train_id applies to convention='cityscapes' only")
    start = time.perf_counter()
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    if "objects" not in ds.layers:
        raise FormatError(f"{ds.path}: no 'objects' layer to export (layers: {', '.join(ds.layers) or 'none'})")
    classes = ds.classes
    images = ds.images.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    segments = ds.segments
    objects = segments[segments["layer"] == "objects"]
    instance_classes = set(objects.loc[objects["is_instance"].astype(bool), "class_id"].tolist())
    categories = []
    for c in classes.sort_values("class_id").itertuples(index=False):
        thing = c.is_thing if isinstance(c.is_thing, (bool, np.bool_)) else int(c.class_id) in instance_classes
        color = text_or_none(c.color)
        entry = {"id": int(c.class_id), "name": c.name, "isthing": int(bool(thing))}
        if color and re.fullmatch(r"#[0-9a-fA-F]{6}", color):
            entry["color"] = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
        categories.append(entry)

    ids = images["image_id"].tolist()
    decimal = all(isinstance(i, str) and i.isdigit() and str(int(i)) == i for i in ids)
    json_ids = [int(i) for i in ids] if decimal else list(range(1, len(ids) + 1))
    objects = objects[objects["class_id"].isin([c["id"] for c in categories])]  # others are written as void
    groups = objects.groupby("image_id", sort=False).indices
    seg_cols = objects[["segment_id", "class_id", "iscrowd"]].to_numpy(dtype=np.int64)
    files = [text_or_none(f) for f in images["file"]]
    names = [Path(f).stem if f else None for f in files]
    # one naming scheme per split: file stems where every image has a file of its own stem, else image ids
    clash = {
        split
        for split, group in images.assign(_n=names).groupby("split")
        if group["_n"].isna().any() or group["_n"].nunique() != len(group)
    }
    tasks = []
    masked = layer_flags(images["layers"].tolist(), "objects")
    for k, row in enumerate(images.itertuples(index=False)):
        stem = row.image_id if row.split in clash else names[k]
        has_mask = bool(masked[k])
        rows = groups.get(row.image_id)
        seg = seg_cols[rows] if rows is not None else np.zeros((0, 3), np.int64)
        tasks.append(
            _ExportTask(
                row.image_id,
                row.split,
                json_ids[k],
                int(row.width),
                int(row.height),
                f"{stem}.png",
                Path(files[k]).name if files[k] else None,
                str(ds.path / mask_relpath("objects", row.split, row.image_id)) if has_mask else None,
                np.ascontiguousarray(seg).tobytes(),
            )
        )
    splits = sorted(set(images["split"]))
    with atomic_output(out, overwrite=overwrite) as tmp:
        for split in splits:
            (tmp / "annotations" / f"panoptic_{split}").mkdir(parents=True)
        per_split: dict[str, list] = {s: [] for s in splits}
        n_seg = n_dropped = n_unlisted = 0
        done = 0
        if progress:
            progress(0, len(tasks))
        for split, jid, image, annotation, written, dropped, unlisted in parallel_map(
            partial(_export_one, out_dir=str(tmp)), tasks, workers=workers
        ):
            per_split[split].append((jid, image, annotation))
            n_seg += written
            n_dropped += dropped
            n_unlisted += unlisted
            done += 1
            if progress:
                progress(done, len(tasks))
        source = ds.manifest.get("source", {}).get("layout", "unknown")
        info = json.dumps(
            {"description": f"{ds.name}, exported by segdata {__version__} from {source}", "version": "1.0"}
        )
        cats_text = ", ".join(json.dumps(c) for c in categories)
        paths = {}
        for split, items in per_split.items():
            items.sort(key=lambda it: it[0])
            path = tmp / "annotations" / f"panoptic_{split}.json"
            with open(path, "w", encoding="utf-8") as f:
                f.write(f'{{"info": {info}, "licenses": [], "images": [')
                f.write(", ".join(it[1] for it in items))
                f.write('], "annotations": [')
                f.write(", ".join(it[2] for it in items))
                f.write(f'], "categories": [{cats_text}]}}')
            paths[split] = str(Path(out) / "annotations" / path.name)
    return {
        "path": str(out),
        "images": len(tasks),
        "images_without_file": sum(f is None for f in files),
        "segments": n_seg,
        "dropped_segments": n_dropped,
        "unlisted_pixels": n_unlisted,
        "categories": len(categories),
        "splits": paths,
        "seconds": round(time.perf_counter() - start, 3),
    }

"""Label-PNG directories, the layout mmsegmentation and detectron2 train from: export and read back.

:func:`write` exports one layer of a unified dataset as one 8-bit label PNG per image, in a class
vocabulary of the user's choice (train ids ``0..K-1``, ``255`` = ignore)::

    OUT/
      vocab.json                          the vocabulary (:mod:`segdata.vocab`), ignore_index 255
      ann_dir/<split>/<image_id>.png      8-bit grey PNG: train id per pixel, 255 = ignore
      img_dir/<split>/<image_id><ext>     the image: a symlink (default), a copy, or absent
      splits/<split>.txt                  the split's image ids, one per line (an mmseg ann_file)
      export.json                         provenance: dataset, source, layer, counts

This is mmsegmentation's custom-dataset layout (``img_dir/{train,val}``, ``ann_dir/{train,val}``,
same file stem, ``reduce_zero_label=False``, ``ignore_index=255``)::

    dict(type="BaseSegDataset", data_root=OUT, img_suffix=".jpg", seg_map_suffix=".png",
         data_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train"),
         metainfo=dict(classes=segdata.vocab.read_vocab(OUT / "vocab.json").names))

and detectron2 reads it with ``load_sem_seg(OUT/ann_dir/train, OUT/img_dir/train, "png", "jpg")``
and ``ignore_label=255``.

Mapping of unified class ids to label values, through a :class:`segdata.vocab.Vocabulary`:

- a vocabulary entry maps one or more unified ``class_id`` (merged classes) to its ``train_id``;
- every class in no entry, every class flagged ``ignore`` (VOC void, Cityscapes ignoreInEval)
  and unlabeled (``class_id`` 0, no segment) become 255;
- the default vocabulary is every class of the dataset not flagged ``ignore``, in ``class_id``
  order (train ids 0..K-1);
- a label PNG holds at most 255 train ids (0..254): a vocabulary of more classes (full ADE20K's
  3,688) is refused here, with a hint to build one with ``segdata vocab DATASET --top 150``;
  the vocabulary written next to the labels always has ``ignore_index`` 255.

Reading back (``segdata convert label-png OUT``, the module functions :func:`detect`,
:func:`list_images`, :func:`read_image`, :func:`build_classes`, :func:`layers`, :func:`read`):
label value ``v`` becomes ``class_id = v + 1`` for every value, so train id ``t`` is class
``t + 1`` (named by the vocabulary, ``train_id = t``) and 255 is class 256 ``ignore``
(``ignore`` true). Each value present in an image is one segment of layer ``objects``
(``is_instance`` false). What a label PNG cannot hold is lost: instances, and the difference
between unlabeled, ignored and unmapped pixels (all 255).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from segdata import __version__
from segdata.convert import ConvertedImage, SegmentRows, atomic_output, image_row
from segdata.errors import InputError, LayoutNotFoundError, SegdataError
from segdata.format import CLASSES_FILE, Dataset, text_or_none
from segdata.maskio import GREY, PALETTE, decode_png, encode_png, image_size, png_header, read_segment_map
from segdata.palette import class_color
from segdata.regions import bounding_boxes, compact_labels
from segdata.runner import parallel_map
from segdata.vocab import VOCAB_FILE, Vocabulary, as_vocabulary, read_vocab, write_vocab

FAMILY = "label_png"
IGNORE = 255
MAX_CLASSES = 255  # train ids 0..254; 255 is ignore
ANN_DIR = "ann_dir"
IMG_DIR = "img_dir"
SPLITS_DIR = "splits"
EXPORT_FILE = "export.json"
IMAGE_MODES = ("link", "copy", "none")

# --------------------------------------------------------------------------- vocabulary (segdata.vocab)


def _label_png_vocabulary(vocabulary: Vocabulary) -> Vocabulary:
    """``vocabulary`` with ``ignore_index`` 255, checked to fit 8-bit labels (train ids 0..254)."""
    if vocabulary.num_classes > MAX_CLASSES:
        raise InputError(
            vocabulary.source,
            f"{vocabulary.num_classes} classes; a label PNG holds at most {MAX_CLASSES} "
            "(train ids 0..254, 255 is ignore)",
            "build a smaller vocabulary, e.g. `segdata vocab DATASET --top 150 -o vocab.json`, and pass it with --vocab",
        )
    return vocabulary if vocabulary.ignore_index == IGNORE else vocabulary.with_ignore_index(IGNORE)


def _as_vocabulary(vocab, ds: Dataset) -> Vocabulary:
    if vocab is None:
        vocabulary = Vocabulary.default(ds.classes, source=str(ds.path / CLASSES_FILE))
    else:
        vocabulary = as_vocabulary(vocab)
    return _label_png_vocabulary(vocabulary)


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class _ExportItem:
    image_id: str
    split: str
    height: int
    width: int
    mask: str | None  # segment map, None: no annotation in the layer
    lut: np.ndarray = field(repr=False)  # segment id -> label value (uint8)
    image: str | None  # absolute source image path, None when unknown


def _export_one(tmp: str, images: str, item: _ExportItem) -> tuple[str, np.ndarray, bool]:
    """Worker: write one label PNG (and the image); returns (image id, label counts, image written)."""
    if item.mask is None:
        labels = np.full((item.height, item.width), IGNORE, dtype=np.uint8)
    else:
        segmap = read_segment_map(item.mask)
        if segmap.shape != (item.height, item.width):
            raise InputError(
                item.mask,
                f"mask is {segmap.shape[1]}x{segmap.shape[0]}, images.parquet says {item.width}x{item.height}",
            )
        top = int(segmap.max()) if segmap.size else 0
        if top >= len(item.lut):
            raise InputError(item.mask, f"segment id {top} has no row in segments.parquet")
        labels = item.lut[segmap]
    dest = Path(tmp) / ANN_DIR / item.split / f"{item.image_id}.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(encode_png(labels))
    written = False
    if images != "none" and item.image is not None and os.path.isfile(item.image):
        target = Path(tmp) / IMG_DIR / item.split / (item.image_id + Path(item.image).suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if images == "link":
            os.symlink(os.path.abspath(item.image), target)
        else:
            shutil.copyfile(item.image, target)
        written = True
    return item.image_id, np.bincount(labels.ravel(), minlength=256), written


def _export_items(ds: Dataset, layer: str, class_lut: np.ndarray) -> list[_ExportItem]:
    images = ds.images.sort_values(["split", "image_id"])

    def label_of(class_ids: np.ndarray) -> np.ndarray:
        bad = (class_ids < 0) | (class_ids >= len(class_lut))
        if bad.any():
            raise InputError(
                ds.path / "segments.parquet",
                f"class ids {sorted(set(class_ids[bad].tolist()))[:5]} have no row in classes.parquet",
            )
        return class_lut[class_ids]

    # per image: segment id -> label value, 255 for ids without a row
    luts = ds.lookup_tables(layer, images["image_id"], label_of, dtype=np.uint8, fill=IGNORE)
    masked = ds.has_layer(layer)[images.index.to_numpy()]
    image_root = Path(ds.manifest.get("image_root", "."))
    if not image_root.is_absolute():
        image_root = ds.path / image_root
    items = []
    for k, row in enumerate(images.itertuples(index=False)):
        file = text_or_none(row.file)
        image = None
        if file is not None:
            image = str(Path(file) if Path(file).is_absolute() else image_root / file)
        items.append(
            _ExportItem(
                row.image_id,
                row.split,
                int(row.height),
                int(row.width),
                str(ds.mask_path(row.image_id, layer)) if masked[k] else None,
                luts[row.image_id],
                image,
            )
        )
    return items


def write(
    dataset: Dataset | str | Path,
    out: str | Path,
    *,
    vocab: Vocabulary | str | Path | Iterable | None = None,
    layer: str = "objects",
    images: str = "link",
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Export one layer of a unified dataset as label PNGs in a class vocabulary.

    Parameters
    ----------
    dataset : Dataset or path
        A unified-format dataset.
    out : path
        Output directory (layout in the module docstring); written to ``out.segdata-partial``
        and renamed when complete. Must not exist unless ``overwrite``.
    vocab : Vocabulary, path or list of entries, optional
        Unified class ids -> train ids. Default: every class not flagged ignore, in class_id
        order (:meth:`Vocabulary.default`). At most 255 classes; its ``ignore_index`` becomes 255.
    layer : str
        The layer whose semantic map is exported (``objects``, ``sbd``, ``parts-1``, ...).
    images : {"link", "copy", "none"}
        Put each image in ``img_dir/<split>/`` as a symlink to the source file, a copy, or not
        at all. Images whose file is unknown or missing are listed in the result.
    overwrite : bool
        Replace an existing ``out`` (only once the new one is complete).
    workers : int, optional
        Processes; default all cores.
    progress : callable(done, total), optional

    Returns
    -------
    dict
        ``path``, ``layer``, ``images``, ``splits`` (images per split), ``num_classes`` (K),
        ``ignore_index`` (255), ``vocab`` (file name), ``pixels_per_train_id`` (list of K pixel
        counts), ``ignored_pixels``, ``missing_images`` (ids written without an image),
        ``seconds``.
    """
    start = time.perf_counter()
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    if layer not in ds.layers:
        raise SegdataError(f"{ds.path}: no layer {layer!r}; layers: {', '.join(ds.layers) or 'none'}")
    vocabulary = _as_vocabulary(vocab, ds)
    class_lut = vocabulary.lookup(ds.classes, dtype=np.uint8)
    items = _export_items(ds, layer, class_lut)
    counts = np.zeros(256, dtype=np.int64)
    missing: list[str] = []
    splits: dict[str, list[str]] = {}
    for item in items:
        splits.setdefault(item.split, []).append(item.image_id)
    with atomic_output(out, overwrite=overwrite) as tmp:
        write_vocab(tmp / VOCAB_FILE, vocabulary)
        worker = partial(_export_one, str(tmp), images)
        done = 0
        if progress:
            progress(0, len(items))
        for image_id, image_counts, written in parallel_map(worker, items, workers=workers, batch_size=16):
            counts += image_counts
            if not written and images != "none":
                missing.append(image_id)
            done += 1
            if progress:
                progress(done, len(items))
        (tmp / SPLITS_DIR).mkdir()
        for split, ids in sorted(splits.items()):
            (tmp / SPLITS_DIR / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        k = vocabulary.num_classes
        result = {
            "path": str(out),
            "layer": layer,
            "images": len(items),
            "splits": {s: len(ids) for s, ids in sorted(splits.items())},
            "num_classes": k,
            "ignore_index": IGNORE,
            "vocab": VOCAB_FILE,
            "pixels_per_train_id": counts[:k].tolist(),
            "ignored_pixels": int(counts[IGNORE]),
            "missing_images": sorted(missing),
        }
        provenance = {
            "format": "segdata-label-png",
            "dataset": ds.name,
            "source": ds.manifest.get("source"),
            "layer": layer,
            "images_mode": images,
            **{
                key: result[key]
                for key in (
                    "images",
                    "splits",
                    "num_classes",
                    "ignore_index",
                    "pixels_per_train_id",
                    "ignored_pixels",
                    "missing_images",
                )
            },
            "segdata_version": __version__,
        }
        (tmp / EXPORT_FILE).write_text(json.dumps(provenance, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class Layout:
    """A label-PNG directory: ``root`` holds ``ann_dir/<split>/*.png`` (and ``img_dir``);
    ``vocab_file`` names its classes; ``num_classes`` is K (label values 0..K-1 and 255)."""

    name: str
    root: Path
    image_root: Path
    release: str
    vocab_file: Path
    num_classes: int
    family: str = FAMILY


@dataclass(frozen=True)
class Task:
    """One label PNG: image id (file stem), split (folder) and its image, relative to the root."""

    image_id: str
    split: str
    image: str | None = None


def detect(root: str | Path, *, vocab: str | Path | None = None) -> Layout:
    """Detect a label-PNG directory (``ann_dir/<split>/*.png``) and its vocabulary.

    ``vocab`` defaults to ``root/vocab.json``. Raises :class:`LayoutNotFoundError` when there is
    no ``ann_dir`` or no vocabulary, :class:`InputError` when the vocabulary is malformed.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutNotFoundError(f"{root}: not a directory")
    if not (root / ANN_DIR).is_dir():
        raise LayoutNotFoundError(
            f"{root}: no label-PNG layout found. Looked for: {ANN_DIR}/<split>/<image_id>.png with {VOCAB_FILE} "
            "(what `segdata export label-png` writes)"
        )
    vocab_file = Path(vocab) if vocab is not None else root / VOCAB_FILE
    if not vocab_file.is_file():
        raise LayoutNotFoundError(
            f"{root}: label PNGs found but no vocabulary at {vocab_file}; pass vocab=PATH (--vocab)"
        )
    vocabulary = _label_png_vocabulary(read_vocab(vocab_file))
    return Layout("label-png", root, root, "label-png", vocab_file, vocabulary.num_classes)


def list_images(layout: Layout, split: str | None = None) -> list[Task]:
    """One :class:`Task` per label PNG, sorted by (split, image id)."""
    tasks: list[Task] = []
    for split_dir in sorted(p for p in (layout.root / ANN_DIR).iterdir() if p.is_dir()):
        if split is not None and split_dir.name != split:
            continue
        img_dir = layout.root / IMG_DIR / split_dir.name
        image_of: dict[str, str] = {}
        if img_dir.is_dir():
            for p in sorted(img_dir.iterdir(), reverse=True):  # first in name order wins
                image_of[p.stem] = f"{IMG_DIR}/{split_dir.name}/{p.name}"
        for png in sorted(split_dir.glob("*.png")):
            tasks.append(Task(png.stem, split_dir.name, image_of.get(png.stem)))
    tasks.sort(key=lambda t: (t.split, t.image_id))
    seen: dict[str, str] = {}
    for t in tasks:
        if t.image_id in seen:
            raise InputError(
                layout.root / ANN_DIR / t.split / f"{t.image_id}.png",
                f"image id {t.image_id} is also in {ANN_DIR}/{seen[t.image_id]}/",
            )
        seen[t.image_id] = t.split
    return tasks


def read_label_png(path: Path) -> np.ndarray:
    """An 8-bit label PNG (grey, or palette read as indices) as ``(H, W)`` uint8."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror})") from None
    _, _, depth, ctype = png_header(data, path)
    if ctype not in (GREY, PALETTE) or depth > 8 or (ctype == GREY and depth != 8):
        kind = {GREY: "grey", PALETTE: "palette"}.get(ctype, "colour" if ctype in (2, 6) else f"colour type {ctype}")
        raise InputError(
            path, f"{depth}-bit {kind} PNG, expected an 8-bit single-channel label map (train ids, 255 = ignore)"
        )
    arr = decode_png(data, path)
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise InputError(path, f"expected a single-channel 8-bit label map, decoded {arr.dtype} of shape {arr.shape}")
    return arr


def read_image(layout: Layout, task: Task) -> ConvertedImage:
    """Convert one label PNG: one segment per label value present (``class_id = value + 1``)."""
    rel = f"{ANN_DIR}/{task.split}/{task.image_id}.png"
    path = layout.root / rel
    labels = read_label_png(path)
    counts = np.bincount(labels.ravel(), minlength=256)
    k = layout.num_classes
    bad = np.flatnonzero(counts[k:IGNORE]) + k
    if bad.size:
        raise InputError(
            path,
            f"label value(s) {bad.tolist()[:8]} are neither train ids of {layout.vocab_file.name} (0..{k - 1}) nor 255 (ignore)",
        )
    keys = labels.astype(np.int32) + 1  # class_id = value + 1
    segmap, present, areas = compact_labels(keys, max_key=IGNORE + 1)
    boxes = bounding_boxes(segmap, len(present))
    rows = SegmentRows(task.image_id)
    for i, (class_id, area) in enumerate(zip(present.tolist(), areas.tolist()), 1):
        rows.add("objects", i, class_id, False, area, boxes[i - 1])
    problems: list[tuple[str, str]] = []
    file = task.image
    if file is None or not (layout.image_root / file).is_file():
        problems.append(
            (str(layout.root / IMG_DIR / task.split / task.image_id), "image file missing; labels converted without it")
        )
        file = None
    else:
        ih, iw = image_size(layout.image_root / file)
        if (ih, iw) != labels.shape:
            raise InputError(path, f"label map is {labels.shape[1]}x{labels.shape[0]} but image {file} is {iw}x{ih}")
    image = image_row(task.image_id, task.split, labels.shape, file, rel)
    return ConvertedImage(image=image, segments=rows.cols, masks={"objects": segmap}, problems=problems)


def read(root: str | Path, split: str | None = None, **options):
    """Yield one :class:`~segdata.convert.ConvertedImage` per label PNG (nothing written);
    ``options`` as for :func:`detect`."""
    layout = detect(root, **options)
    for task in list_images(layout, split=split):
        yield read_image(layout, task)


def layers(layout: Layout) -> list[dict]:
    return [
        {"name": "objects", "parent": None, "description": f"label PNGs in the vocabulary {layout.vocab_file.name}"}
    ]


def build_classes(layout: Layout, observations: pd.DataFrame) -> pd.DataFrame:
    """One class per vocabulary entry (``class_id = train_id + 1``) and ``ignore`` (class 256,
    label value 255, flagged ignore), whether seen or not."""
    entries = read_vocab(layout.vocab_file).entries
    return pd.DataFrame(
        {
            "class_id": pd.array([e.train_id + 1 for e in entries] + [IGNORE + 1], dtype="int32"),
            "name": [e.name for e in entries] + ["ignore"],
            "source_id": pd.array([e.train_id for e in entries] + [IGNORE], dtype="int64"),
            "source_name": [e.name for e in entries] + ["ignore"],
            "is_thing": pd.array([None] * (len(entries) + 1), dtype="boolean"),
            "ignore": [False] * len(entries) + [True],
            "train_id": pd.array([e.train_id for e in entries] + [None], dtype="Int32"),
            "color": [e.color or class_color(e.train_id + 1) for e in entries] + ["#e0e0c0"],
        }
    )

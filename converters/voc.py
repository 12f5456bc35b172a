"""PASCAL VOC 2012 segmentation and SBD (the Semantic Boundaries Dataset), read exactly as they ship.

Layouts (detected by :func:`detect`):

``voc``  ``VOCdevkit/VOC2012`` (``root`` may be ``VOCdevkit``, ``VOC2012`` or its parent)::

    SegmentationClass/<id>.png      8-bit palette PNG: index = VOC class (0..20), 255 = void
    SegmentationObject/<id>.png     8-bit palette PNG: index = object number 1..n, 0 none, 255 void
    JPEGImages/<id>.jpg
    ImageSets/Segmentation/{train,val,trainval}.txt

``voc-aug``  the grayscale ``SegmentationClassAug`` variant many repositories train on
(8-bit grey or palette PNGs, the same values), read when it is the only class directory or
when asked for with ``detect(root, aug=True)``. Split lists ``train_aug.txt``, ``trainaug.txt``
or ``aug.txt`` in ``ImageSets/Segmentation`` count as ``train``.

``sbd``  ``benchmark_RELEASE/dataset`` (``root`` may be ``benchmark_RELEASE`` or ``dataset``)::

    cls/<id>.mat     struct GTcls: Boundaries (20x1 cell of sparse maps), Segmentation (HxW,
                     values 0..20), CategoriesPresent (classes present, column vector)
    inst/<id>.mat    struct GTinst: Segmentation (HxW, object number 1..n, 0 none),
                     Boundaries (nx1 cell), Categories (class of each object, column vector)
    img/<id>.jpg
    train.txt, val.txt

``detect(voc_root, sbd=PATH)`` adds SBD as a second layer ``sbd`` next to VOC's own ``objects``
for the images both annotate (SBD's split lists are not used then; VOC's splits are kept).

Classes (the classic trap): in VOC, index 0 is *background*, a real class that is evaluated. In
segdata ``class_id`` 0 is reserved for unlabeled, so every VOC index ``i`` in 0..20 becomes
``class_id = i + 1`` (background 1, aeroplane 2, ..., tvmonitor 21) with ``source_id = i`` and
``train_id = i`` (the index networks train on). Index 255, the void band drawn around objects and
over ambiguous regions, becomes its own class ``void`` with ``class_id = 255``, ``source_id = 255``,
``ignore = True``. Colours are the devkit's colormap (:func:`voc_colormap`). The class table is
the same 22 rows for every layout, seen or not.

Segments (layer ``objects``, and ``sbd``):

- every object of the object map (values 1..254) is one segment, ``is_instance`` true,
  ``source_instance`` = its number. Its class is the class its pixels carry in the class map
  (``SegmentationClass``, ``cls/*.mat``): the most frequent of 1..20 among its pixels (of 0 and
  255 when it has none). Pixels of the object that carry another class are counted under
  ``problems``; they keep the object's class. SBD's ``Categories`` is checked against it.
- every other pixel (object map 0 or 255) belongs to one region per class of the class map,
  ``is_instance`` false: background, void, and, when the maps disagree, class pixels that belong
  to no object (counted under ``problems``). So the semantic map of the layer equals the class
  map except at pixels of an object that carry a second class.
- without an object map (``voc-aug``, a VOC tree without ``SegmentationObject``) every class of
  the class map is one region. An image whose object file is missing in a layout that has the
  directory is converted the same way and listed under ``problems``.

Splits: an image in ``train.txt`` is ``train``, in ``val.txt`` ``val``, in ``trainval.txt`` only
``trainval``, in no list ``unlisted`` (kept, never dropped). An image in two of train/val lists
is an error. An id listed but without a label file is an error for that image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from segdata.convert import ConvertedImage, SegmentRows, image_row
from segdata.errors import InputError, LayoutNotFoundError
from segdata.maskio import GREY, GREY_ALPHA, PALETTE, RGB, RGBA, decode_png, image_size, png_header
from segdata.regions import bounding_boxes

FAMILY = "voc"
VOID = 255
N_CLASSES = 21  # background + 20 object classes

LOOKED_FOR = (
    "PASCAL VOC (SegmentationClass/ or SegmentationClassAug/ in ROOT, ROOT/VOC2012 or "
    "ROOT/VOCdevkit/VOC2012), SBD (cls/ in ROOT, ROOT/dataset or ROOT/benchmark_RELEASE/dataset)"
)


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC devkit's colormap (``VOClabelcolormap.m``): ``(n, 3)`` uint8 RGB.

    Bits 0, 1, 2 of the index go to the most significant free bit of R, G, B, then the next
    three bits one bit lower, and so on. Index 0 is black, 1 ``(128, 0, 0)``, 255 (void)
    ``(224, 224, 192)``.

    >>> voc_colormap()[[0, 1, 15, 255]].tolist()
    [[0, 0, 0], [128, 0, 0], [192, 128, 128], [224, 224, 192]]
    """
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


@dataclass(frozen=True)
class VocClass:
    """One row of the VOC class table: the value in the label files (``index``), the unified
    ``class_id``, the devkit's name, thing or stuff, and whether evaluation ignores it."""

    index: int
    class_id: int
    name: str
    is_thing: bool | None
    ignore: bool


# fmt: off
VOC_CLASSES: tuple[VocClass, ...] = (
    #        index class_id  name            is_thing ignore
    VocClass(0,    1,        "background",   False,   False),
    VocClass(1,    2,        "aeroplane",    True,    False),
    VocClass(2,    3,        "bicycle",      True,    False),
    VocClass(3,    4,        "bird",         True,    False),
    VocClass(4,    5,        "boat",         True,    False),
    VocClass(5,    6,        "bottle",       True,    False),
    VocClass(6,    7,        "bus",          True,    False),
    VocClass(7,    8,        "car",          True,    False),
    VocClass(8,    9,        "cat",          True,    False),
    VocClass(9,    10,       "chair",        True,    False),
    VocClass(10,   11,       "cow",          True,    False),
    VocClass(11,   12,       "diningtable",  True,    False),
    VocClass(12,   13,       "dog",          True,    False),
    VocClass(13,   14,       "horse",        True,    False),
    VocClass(14,   15,       "motorbike",    True,    False),
    VocClass(15,   16,       "person",       True,    False),
    VocClass(16,   17,       "pottedplant",  True,    False),
    VocClass(17,   18,       "sheep",        True,    False),
    VocClass(18,   19,       "sofa",         True,    False),
    VocClass(19,   20,       "train",        True,    False),
    VocClass(20,   21,       "tvmonitor",    True,    False),
    VocClass(255,  255,      "void",         None,    True),
)
# fmt: on

#: label-file value -> unified class id (0 for values that are not VOC classes)
CLASS_ID_OF_INDEX = np.zeros(256, dtype=np.int32)
NAME_OF_INDEX: dict[int, str] = {}
for _c in VOC_CLASSES:
    CLASS_ID_OF_INDEX[_c.index] = _c.class_id
    NAME_OF_INDEX[_c.index] = _c.name


def _check_class_table() -> None:
    indices = [c.index for c in VOC_CLASSES]
    ids = [c.class_id for c in VOC_CLASSES]
    if len(set(indices)) != len(indices) or len(set(ids)) != len(ids):
        raise RuntimeError("VOC class table: indices and class ids must be unique")
    if 0 in ids:
        raise RuntimeError("VOC class table: class_id 0 is reserved for unlabeled")
    if [c.index for c in VOC_CLASSES if not c.ignore] != list(range(N_CLASSES)):
        raise RuntimeError("VOC class table: the evaluated classes must be indices 0..20")
    if [c.index for c in VOC_CLASSES if c.ignore] != [VOID]:
        raise RuntimeError("VOC class table: 255 (void) must be the only ignored class")


_check_class_table()

# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """A detected VOC or SBD layout.

    ``root`` is the VOC2012 (or SBD ``dataset``) directory; ``image_root`` is the same directory.
    ``class_dir``/``object_dir`` are directory names inside ``root`` (``object_dir`` None when
    the layout has no object maps); ``sbd`` is the SBD ``dataset`` directory giving layer ``sbd``.
    """

    name: str
    root: Path
    image_root: Path
    release: str
    class_dir: str
    object_dir: str | None
    sbd: Path | None = None
    family: str = FAMILY


@dataclass(frozen=True)
class Task:
    """One image to convert: its id, its split, and whether SBD annotates it (layer ``sbd``)."""

    image_id: str
    split: str
    in_sbd: bool = False


def _voc_root(root: Path) -> Path | None:
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "SegmentationClass").is_dir() or (cand / "SegmentationClassAug").is_dir():
            return cand
    return None


def _sbd_root(root: Path) -> Path | None:
    for cand in (root, root / "dataset", root / "benchmark_RELEASE" / "dataset"):
        if (cand / "cls").is_dir():
            return cand
    return None


def detect(root: str | Path, *, sbd: str | Path | None = None, aug: bool = False) -> Layout:
    """Detect the VOC or SBD layout at ``root``.

    Parameters
    ----------
    root : path
        ``VOCdevkit``, ``VOC2012`` (or a directory holding ``SegmentationClassAug``), or SBD's
        ``benchmark_RELEASE`` / ``dataset``.
    sbd : path, optional
        SBD (``benchmark_RELEASE`` or its ``dataset``): adds layer ``sbd`` for the VOC images SBD
        also annotates. Only with a VOC root.
    aug : bool
        Read ``SegmentationClassAug`` even when ``SegmentationClass`` is there too.

    Raises
    ------
    LayoutNotFoundError
        Naming every layout looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutNotFoundError(f"{root}: not a directory")
    sbd_dir = None
    if sbd is not None:
        sbd_dir = _sbd_root(Path(sbd))
        if sbd_dir is None:
            raise LayoutNotFoundError(
                f"{sbd}: not SBD (looked for cls/ in it, in dataset/ and in benchmark_RELEASE/dataset/)"
            )
    voc = _voc_root(root)
    if voc is not None:
        release = voc.name if re.fullmatch(r"VOC\d{4}", voc.name) else "unknown"
        has_class = (voc / "SegmentationClass").is_dir()
        if aug and not (voc / "SegmentationClassAug").is_dir():
            raise LayoutNotFoundError(f"{voc}: aug asked for, but there is no SegmentationClassAug/ directory")
        object_dir = "SegmentationObject" if (voc / "SegmentationObject").is_dir() else None
        if has_class and not aug:
            return Layout("voc", voc, voc, release, "SegmentationClass", object_dir, sbd_dir)
        return Layout("voc-aug", voc, voc, release, "SegmentationClassAug", object_dir, sbd_dir)
    sbd_here = _sbd_root(root)
    if sbd_here is not None:
        if sbd_dir is not None:
            raise LayoutNotFoundError(f"{root} is SBD itself; sbd= adds SBD as a layer next to a VOC root")
        if aug:
            raise LayoutNotFoundError(f"{root} is SBD; aug= selects SegmentationClassAug in a VOC root")
        inst = "inst" if (sbd_here / "inst").is_dir() else None
        release = "benchmark_RELEASE" if sbd_here.parent.name == "benchmark_RELEASE" else "unknown"
        return Layout("sbd", sbd_here, sbd_here, release, "cls", inst)
    raise LayoutNotFoundError(f"{root}: no VOC or SBD layout found. Looked for: {LOOKED_FOR}")


# --------------------------------------------------------------------------- listing


def _read_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "split list is not UTF-8 text") from None
    # VOC lists hold one id per line; derived lists (DeepLab's train_aug.txt) hold
    # "/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png": the id is the first path's stem
    ids = []
    for line in text.splitlines():
        if line.strip():
            token = line.split()[0]
            ids.append(Path(token).stem if ("/" in token or "." in token) else token)
    return ids


def _split_lists(layout: Layout) -> list[tuple[str, Path]]:
    """(split, list file) pairs in the order they are consulted, only files that exist."""
    if layout.name == "sbd":
        base = layout.root
        names = [("train", "train.txt"), ("val", "val.txt")]
    else:
        base = layout.root / "ImageSets" / "Segmentation"
        names = [("train", "train.txt"), ("val", "val.txt"), ("trainval", "trainval.txt")]
        if layout.name == "voc-aug":
            names += [("train", "train_aug.txt"), ("train", "trainaug.txt"), ("train", "aug.txt")]
    return [(split, base / f) for split, f in names if (base / f).is_file()]


def _label_suffix(layout: Layout) -> str:
    return ".mat" if layout.name == "sbd" else ".png"


def list_images(layout: Layout, split: str | None = None) -> list[Task]:
    """One :class:`Task` per image, sorted by (split, image id).

    Images come from the class directory and from the split lists (an id listed but without a
    label file gives a task whose :func:`read_image` raises, naming the missing file).
    """
    suffix = _label_suffix(layout)
    class_dir = layout.root / layout.class_dir
    ids = {p.stem for p in class_dir.iterdir() if p.suffix == suffix and p.is_file()}
    split_of: dict[str, tuple[str, Path]] = {}
    weak: dict[str, str] = {}  # trainval-only membership
    for name, path in _split_lists(layout):
        for image_id in _read_list(path):
            if name == "trainval":
                weak.setdefault(image_id, name)
                continue
            prev = split_of.get(image_id)
            if prev is not None and prev[0] != name:
                raise InputError(
                    path, f"image {image_id} is listed for {name} here and for {prev[0]} in {prev[1].name}"
                )
            split_of.setdefault(image_id, (name, path))
    listed = set(split_of) | set(weak)
    sbd_ids: set[str] = set()
    if layout.sbd is not None:
        sbd_ids = {p.stem for p in (layout.sbd / "cls").glob("*.mat")}
    tasks = []
    for image_id in sorted(ids | listed):
        sp = split_of[image_id][0] if image_id in split_of else weak.get(image_id, "unlisted")
        tasks.append(Task(image_id, sp, image_id in sbd_ids))
    if split is not None:
        tasks = [t for t in tasks if t.split == split]
    tasks.sort(key=lambda t: (t.split, t.image_id))
    return tasks


# --------------------------------------------------------------------------- reading labels


def read_label_png(path: Path) -> np.ndarray:
    """Read a VOC label PNG as its values: palette indices or 8-bit grey, never through RGB.

    Returns
    -------
    ndarray of uint8, shape (H, W)

    Raises
    ------
    InputError
        The file is missing or corrupt, or not a single-channel 8-bit PNG (an RGB colour
        image, a 16-bit PNG, grey with alpha).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror})") from None
    _, _, depth, ctype = png_header(data, path)
    if ctype in (RGB, RGBA):
        raise InputError(
            path,
            f"{'RGBA' if ctype == RGBA else 'RGB'} colour image, expected palette indices: "
            "did you convert it with .convert('RGB')?",
            "VOC label PNGs are palette images whose indices are the class values; save the "
            "indices (Image.open(f) without .convert, or a grey PNG of the values)",
        )
    if ctype == GREY_ALPHA:
        raise InputError(path, f"{depth}-bit grey+alpha PNG, expected 8-bit palette indices or grey values")
    if depth == 16:
        raise InputError(path, "16-bit PNG, expected 8-bit palette indices or grey values (0..20, 255)")
    if ctype == GREY and depth != 8:
        raise InputError(path, f"{depth}-bit grey PNG, expected 8-bit palette indices or grey values")
    if ctype not in (GREY, PALETTE):
        raise InputError(path, f"PNG colour type {ctype}, expected 8-bit palette indices or grey values")
    arr = decode_png(data, path)
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise InputError(path, f"expected a single-channel 8-bit label map, decoded {arr.dtype} of shape {arr.shape}")
    return arr


def _check_class_values(labels: np.ndarray, path: Path) -> np.ndarray:
    """Per-value pixel counts (256,); raises when a value is not 0..20 or 255."""
    counts = np.bincount(labels.ravel(), minlength=256)
    bad = np.flatnonzero(counts[N_CLASSES:VOID]) + N_CLASSES
    if bad.size:
        raise InputError(
            path,
            f"class value(s) {bad.tolist()[:8]} outside the VOC classes 0..20 and 255 (void) "
            f"({int(counts[bad].sum())} pixels)",
        )
    return counts


def _mat_struct(path: Path, name: str, fields: tuple[str, ...]) -> dict:
    """The fields of the 1x1 MATLAB struct ``name`` in a .mat file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, variable_names=[name])
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise InputError(
            path, f"unsupported .mat file ({exc})", "SBD ships MATLAB v5 files; re-save with save(..., '-v7')"
        ) from None
    except Exception as exc:  # scipy raises many types for broken files
        raise InputError(path, f"corrupt or unreadable .mat file ({type(exc).__name__}: {exc})") from None
    if name not in mat:
        raise InputError(path, f"no variable {name!r} in the .mat file")
    struct = mat[name]
    if not isinstance(struct, np.ndarray) or struct.dtype.names is None or struct.size != 1:
        raise InputError(path, f"{name} is not a 1x1 MATLAB struct")
    missing = [f for f in fields if f not in struct.dtype.names]
    if missing:
        raise InputError(path, f"{name} has no field(s) {missing}; fields: {list(struct.dtype.names)}")
    record = struct.ravel()[0]
    return {f: record[f] for f in fields}


def _mat_labels(value, path: Path, what: str) -> np.ndarray:
    """A 2-D label array from a .mat field, as uint8 (values must be integers 0..255)."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(path, f"{what} is not a 2-D array (shape {arr.shape})")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(path, f"{what} holds non-integer values")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise InputError(path, f"{what} has type {arr.dtype}, expected integers")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 255:
        raise InputError(path, f"{what} holds values {lo}..{hi}, expected 0..255")
    return np.ascontiguousarray(arr.astype(np.uint8))


def _mat_vector(value) -> np.ndarray:
    """A MATLAB vector field (column, row or empty) as a flat int64 array."""
    arr = np.asarray(value)
    if arr.dtype == object:  # a cell
        arr = np.array([np.asarray(v).ravel()[0] for v in arr.ravel() if np.asarray(v).size], dtype=np.int64)
    return arr.ravel().astype(np.int64)


def read_sbd_cls(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SBD ``cls/<id>.mat``: ``(labels (H, W) uint8 0..20, categories_present (k,) int64)``."""
    f = _mat_struct(path, "GTcls", ("Segmentation", "CategoriesPresent"))
    return _mat_labels(f["Segmentation"], path, "GTcls.Segmentation"), _mat_vector(f["CategoriesPresent"])


def read_sbd_inst(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SBD ``inst/<id>.mat``: ``(objects (H, W) uint8 1..n, categories (n,) int64)``."""
    f = _mat_struct(path, "GTinst", ("Segmentation", "Categories"))
    return _mat_labels(f["Segmentation"], path, "GTinst.Segmentation"), _mat_vector(f["Categories"])


# --------------------------------------------------------------------------- segments


def _class_name(index: int) -> str:
    return NAME_OF_INDEX.get(index, str(index))


def build_layer(
    rows: SegmentRows,
    layer: str,
    classes: np.ndarray,
    objects: np.ndarray | None,
    class_file: str,
    object_file: str | None,
    problems: list[tuple[str, str]],
    stated: np.ndarray | None = None,
) -> np.ndarray:
    """Segments of one layer from a class map and an optional object map; returns the segment map.

    Parameters
    ----------
    rows : SegmentRows
        Receives one row per segment.
    classes : ndarray of uint8, shape (H, W)
        VOC class values 0..20, 255 void (already checked).
    objects : ndarray of uint8, shape (H, W), optional
        Object numbers 1..254; 0 and 255 are no object.
    class_file : str
        The class map's name, used in the text of problems.
    object_file : str
        The object map's path: the file of every problem found.
    problems : list
        Receives ``(file, problem)`` pairs for every disagreement between the two maps.
    stated : ndarray of int, optional
        The class the source states for object ``k`` at ``stated[k - 1]`` (SBD ``Categories``).

    Returns
    -------
    ndarray of uint8 or uint16, shape (H, W)
        Segment ids 1..n: class regions first (in class order), then objects (in number order).
    """
    # one pass: pixel counts of every (object value, class value) pair, then one lookup
    pair = classes.astype(np.uint16)
    if objects is not None:
        pair |= objects.astype(np.uint16) << 8
    counts = np.bincount(pair.ravel(), minlength=65536).reshape(256, 256)  # [object, class]
    region_counts = counts[0] + counts[VOID]  # pixels of no object, per class
    region_classes = np.flatnonzero(region_counts)
    object_counts = counts[1:VOID].sum(axis=1)
    object_ids = np.flatnonzero(object_counts) + 1
    n = len(region_classes) + len(object_ids)
    if n >= 65536:
        raise ValueError(f"{n} segments in one map")
    lut = np.zeros((256, 256), dtype=np.uint8 if n < 256 else np.uint16)
    for sid, c in enumerate(region_classes, 1):
        lut[[0, VOID], c] = sid
    for sid, k in enumerate(object_ids, len(region_classes) + 1):
        lut[k, :] = sid
    segmap = lut.ravel()[pair]
    boxes = bounding_boxes(segmap, n)
    for sid, c in enumerate(region_classes.tolist(), 1):
        area = int(region_counts[c])
        rows.add(layer, sid, CLASS_ID_OF_INDEX[c], False, area, boxes[sid - 1])
        if objects is not None and 1 <= c < N_CLASSES:
            problems.append(
                (
                    object_file,
                    f"{area} pixel(s) of class {_class_name(c)} in {class_file} belong to no object; kept as a class region",
                )
            )
    for sid, k in enumerate(object_ids.tolist(), len(region_classes) + 1):
        row = counts[k]
        area = int(object_counts[k - 1])
        real = row[1:N_CLASSES]
        index = int(np.argmax(real)) + 1 if real.any() else int(np.argmax(row))
        other = area - int(row[index])
        if other:
            found = {_class_name(int(c)): int(row[c]) for c in np.flatnonzero(row) if c != index}
            problems.append(
                (
                    object_file,
                    f"object {k} is {_class_name(index)} by most of its pixels; {other} of its {area} pixels carry {found} in {class_file} and are kept as {_class_name(index)}",
                )
            )
        if stated is not None:
            if k > len(stated):
                problems.append((object_file, f"object {k} has no entry in Categories ({len(stated)} entries)"))
            elif int(stated[k - 1]) != index:
                problems.append(
                    (
                        object_file,
                        f"Categories says object {k} is {_class_name(int(stated[k - 1]))}, its pixels in {class_file} are {_class_name(index)}; the pixels' class is kept",
                    )
                )
        rows.add(layer, sid, CLASS_ID_OF_INDEX[index], True, area, boxes[sid - 1], source_instance=k)
    if objects is not None:
        void_diff = int(counts[VOID, :VOID].sum() + counts[:VOID, VOID].sum())
        if void_diff:
            problems.append(
                (
                    object_file,
                    f"the void band differs from {class_file}'s in {void_diff} pixel(s); {class_file}'s is kept",
                )
            )
        if stated is not None:
            for k in range(1, len(stated) + 1):
                if k >= VOID or not object_counts[k - 1]:
                    problems.append(
                        (
                            object_file,
                            f"object {k} ({_class_name(int(stated[k - 1]))}) is listed in Categories but has no pixels",
                        )
                    )
    return segmap


# --------------------------------------------------------------------------- per image


def _check_same_size(path: Path, arr: np.ndarray, ref_name: str, ref: np.ndarray, what: str) -> None:
    if arr.shape != ref.shape:
        raise InputError(
            path, f"{what} is {arr.shape[1]}x{arr.shape[0]} but {ref_name} is {ref.shape[1]}x{ref.shape[0]}"
        )


def _read_voc_layer(layout: Layout, task: Task, rows: SegmentRows, problems: list) -> tuple[np.ndarray, np.ndarray]:
    """Layer ``objects`` of a VOC image: ``(segment map, class map)``."""
    class_path = layout.root / layout.class_dir / f"{task.image_id}.png"
    if not class_path.is_file():
        raise InputError(class_path, f"label PNG not found (image {task.image_id} is listed for {task.split})")
    classes = read_label_png(class_path)
    _check_class_values(classes, class_path)
    objects = None
    object_rel = None
    if layout.object_dir is not None:
        object_path = layout.root / layout.object_dir / f"{task.image_id}.png"
        object_rel = str(object_path)
        if object_path.is_file():
            objects = read_label_png(object_path)
            _check_same_size(
                object_path, objects, f"{layout.class_dir}/{task.image_id}.png", classes, layout.object_dir
            )
        elif layout.name == "voc":
            problems.append((str(object_path), "object map missing: classes converted as regions, without instances"))
    return build_layer(
        rows, "objects", classes, objects, f"{layout.class_dir}/{task.image_id}.png", object_rel, problems
    ), classes


def _read_sbd_layer(
    sbd: Path, image_id: str, layer: str, rows: SegmentRows, problems: list, has_inst: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One layer from SBD's ``cls``/``inst`` files: ``(segment map, class map)``."""
    cls_path = sbd / "cls" / f"{image_id}.mat"
    if not cls_path.is_file():
        raise InputError(cls_path, "SBD class file not found")
    classes, present = read_sbd_cls(cls_path)
    _check_class_values(classes, cls_path)
    seen = set((np.flatnonzero(np.bincount(classes.ravel(), minlength=256)[1:N_CLASSES]) + 1).tolist())
    stated_present = {int(c) for c in present if 1 <= c < N_CLASSES}
    if stated_present != seen:
        problems.append(
            (str(cls_path), f"CategoriesPresent lists {sorted(stated_present)}, the pixels hold classes {sorted(seen)}")
        )
    objects = stated = None
    inst_path = sbd / "inst" / f"{image_id}.mat"
    if inst_path.is_file():
        objects, stated = read_sbd_inst(inst_path)
        _check_same_size(inst_path, objects, f"cls/{image_id}.mat", classes, "GTinst.Segmentation")
    elif has_inst:
        problems.append((str(inst_path), "object map missing: classes converted as regions, without instances"))
    segmap = build_layer(rows, layer, classes, objects, f"cls/{image_id}.mat", str(inst_path), problems, stated)
    return segmap, classes


def _image_file(layout: Layout, task: Task, mask_path: Path, hw: tuple[int, int], problems: list) -> str | None:
    rel = f"img/{task.image_id}.jpg" if layout.name == "sbd" else f"JPEGImages/{task.image_id}.jpg"
    image = layout.image_root / rel
    if not image.is_file():
        problems.append((str(image), "image file missing; annotation converted without it"))
        return None
    ih, iw = image_size(image)
    if (ih, iw) != tuple(hw):
        raise InputError(mask_path, f"label map is {hw[1]}x{hw[0]} but image {image.name} is {iw}x{ih}")
    return rel


def read_image(layout: Layout, task: Task) -> ConvertedImage:
    """Convert one image of ``layout``; raises :class:`InputError` naming the bad file."""
    rows = SegmentRows(task.image_id)
    problems: list[tuple[str, str]] = []
    masks: dict[str, np.ndarray] = {}
    if layout.name == "sbd":
        segmap, classes = _read_sbd_layer(
            layout.root, task.image_id, "objects", rows, problems, layout.object_dir is not None
        )
        annotation = f"cls/{task.image_id}.mat"
        mask_path = layout.root / annotation
    else:
        segmap, classes = _read_voc_layer(layout, task, rows, problems)
        annotation = f"{layout.class_dir}/{task.image_id}.png"
        mask_path = layout.root / annotation
    masks["objects"] = segmap
    if layout.sbd is not None and task.in_sbd:
        sbd_map, sbd_classes = _read_sbd_layer(layout.sbd, task.image_id, "sbd", rows, problems, True)
        _check_same_size(
            layout.sbd / "cls" / f"{task.image_id}.mat", sbd_classes, annotation, classes, "the SBD annotation"
        )
        masks["sbd"] = sbd_map
    file = _image_file(layout, task, mask_path, classes.shape, problems)
    image = image_row(task.image_id, task.split, classes.shape, file, annotation)
    return ConvertedImage(image=image, segments=rows.cols, masks=masks, classes=[], problems=problems)


# --------------------------------------------------------------------------- module API


def read(root: str | Path, split: str | None = None, **options):
    """Yield one :class:`~segdata.convert.ConvertedImage` per image of the dataset at ``root``
    (masks in memory, nothing written); ``options`` as for :func:`detect`."""
    layout = detect(root, **options)
    for task in list_images(layout, split=split):
        yield read_image(layout, task)


def layers(layout: Layout) -> list[dict]:
    """The layers this layout can produce."""
    what = {
        "voc": "VOC SegmentationClass with SegmentationObject instances",
        "voc-aug": "SegmentationClassAug class maps",
        "sbd": "SBD cls/ with inst/ instances",
    }[layout.name]
    out = [{"name": "objects", "parent": None, "description": what}]
    if layout.sbd is not None:
        out.append({"name": "sbd", "parent": None, "description": "SBD re-annotation (cls/, inst/) of the same images"})
    return out


def build_classes(layout: Layout, observations: pd.DataFrame) -> pd.DataFrame:
    """The fixed VOC class table: background and the 20 classes (``class_id`` = index + 1,
    ``train_id`` = index) and void (``class_id`` 255, ignore), whether seen or not."""
    cmap = voc_colormap()
    return pd.DataFrame(
        {
            "class_id": pd.array([c.class_id for c in VOC_CLASSES], dtype="int32"),
            "name": [c.name for c in VOC_CLASSES],
            "source_id": pd.array([c.index for c in VOC_CLASSES], dtype="int64"),
            "source_name": [c.name for c in VOC_CLASSES],
            "is_thing": pd.array([c.is_thing for c in VOC_CLASSES], dtype="boolean"),
            "ignore": [c.ignore for c in VOC_CLASSES],
            "train_id": pd.array([None if c.ignore else c.index for c in VOC_CLASSES], dtype="Int32"),
            "color": ["#{:02x}{:02x}{:02x}".format(*cmap[c.index]) for c in VOC_CLASSES],
        }
    )

"""Counting predictions against the ground truth, image by image, into :class:`Counts`.

Per image, one pass over the two maps counts the (ground-truth segment, predicted value) pairs:
the C kernel of the consistency analysis (``segdata._runs.count_pair``, one sweep over the rows of
both PNGs as decoded, no image-sized temporary) where it applies, numpy otherwise. The pairs then
give, on a table of a few hundred rows, the image's confusion cells in the evaluation's id space
and the pixels of each segment predicted as its own class (size recall, Cityscapes' iIoU).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..maskio import read_segment_map
from ..runner import parallel_map
from .predictions import read_prediction
from .space import INVALID, EvalSpace

try:  # the C extension (setup.py); numpy does the same without it
    from segdata import _runs as _runs_ext
except ImportError:  # pragma: no cover - the extension was not compiled
    _runs_ext = None

_DENSE_PAIRS = 1 << 18  # segment ids x prediction values the C kernel counts in its dense table
_NUMPY_DENSE = 1 << 22  # (segments + 1) x (K + 1) up to which numpy uses one bincount


@dataclass
class Counts:
    """What an evaluation counted: the confusion matrix and its per-image sums.

    Attributes
    ----------
    image_ids : list of str
        The N images counted, in the dataset's order.
    matrix : ndarray of int64, shape (K, K + 1)
        Pixels by (ground-truth eval index, predicted eval index); column ``K`` = no prediction
        (or a class not evaluated). Ignored ground truth is dropped before counting.
    tp, gt, pred : ndarray of int64, shape (N, K)
        Per image: pixels of class k predicted k; non-ignored ground-truth pixels of class k;
        pixels predicted k on non-ignored ground truth. Sums over images are the matrix's
        diagonal, row sums and column sums.
    segment_hits : dict of str to ndarray of int64
        Per image, indexed by segment id of the ``objects`` layer: pixels of the segment
        predicted as its own evaluated class (0 for segments not evaluated).
    miss : ndarray of int64, shape (N, K), optional
        Per image, pixels of class k with no prediction (column ``K``); None where the source of
        the counts cannot miss (a model's argmax), read as zeros.
    """

    image_ids: list[str]
    matrix: np.ndarray
    tp: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    segment_hits: dict[str, np.ndarray] = field(default_factory=dict)
    miss: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return int(self.matrix.shape[0])

    @classmethod
    def empty(cls, num_classes: int) -> Counts:
        k = num_classes
        z = np.zeros((0, k), dtype=np.int64)
        return cls([], np.zeros((k, k + 1), dtype=np.int64), z, z.copy(), z.copy(), {})

    @classmethod
    def from_cells(cls, num_classes: int, images: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]):
        """Assemble from per-image sparse cells ``(image_id, cells, pixels, segment_hits)``; a
        cell is ``gt_index * (K + 1) + pred_index``."""
        k = num_classes
        n = len(images)
        flat = np.zeros(k * (k + 1), dtype=np.int64)
        tp = np.zeros((n, k), dtype=np.int64)
        gt = np.zeros((n, k), dtype=np.int64)
        pred = np.zeros((n, k), dtype=np.int64)
        miss = np.zeros((n, k), dtype=np.int64)
        hits = {}
        for i, (image_id, cells, pixels, seg_hits) in enumerate(images):
            if len(cells):
                np.add.at(flat, cells, pixels)
                rows, cols = np.divmod(cells, k + 1)
                gt[i] = np.bincount(rows, weights=pixels, minlength=k)[:k].astype(np.int64)
                p = cols < k
                pred[i] = np.bincount(cols[p], weights=pixels[p], minlength=k)[:k].astype(np.int64)
                d = rows == cols
                tp[i] = np.bincount(rows[d], weights=pixels[d], minlength=k)[:k].astype(np.int64)
                m = cols == k
                miss[i] = np.bincount(rows[m], weights=pixels[m], minlength=k)[:k].astype(np.int64)
            if seg_hits is not None:
                hits[image_id] = seg_hits
        return cls([i[0] for i in images], flat.reshape(k, k + 1), tp, gt, pred, hits, miss)

    def merge(self, other: Counts) -> Counts:
        """The counts of both sets of images (each image once)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge counts of {self.num_classes} and {other.num_classes} classes")
        return Counts(
            self.image_ids + other.image_ids,
            self.matrix + other.matrix,
            np.concatenate([self.tp, other.tp]),
            np.concatenate([self.gt, other.gt]),
            np.concatenate([self.pred, other.pred]),
            {**self.segment_hits, **other.segment_hits},
            np.concatenate([self.missing_pixels(), other.missing_pixels()]),
        )

    def missing_pixels(self) -> np.ndarray:
        """``miss`` as an (N, K) array (zeros when None)."""
        return self.miss if self.miss is not None else np.zeros_like(self.gt)

    def per_image(self) -> dict[str, np.ndarray]:
        """The per-image sums the bootstrap resamples (``tp``, ``gt``, ``pred``, ``miss``, each (N, K))."""
        return {"tp": self.tp, "gt": self.gt, "pred": self.pred, "miss": self.missing_pixels()}


# --------------------------------------------------------------------------- one image


def _pairs_native(seg: np.ndarray, pred: np.ndarray, n_seg: int, where) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(segment id, prediction value, pixels) of every pair present, by the C kernel."""
    if seg.dtype.itemsize != pred.dtype.itemsize:
        seg, pred = (np.asarray(m, dtype=np.uint16) for m in (seg, pred))
    values = 1 << (8 * pred.dtype.itemsize)
    try:
        raw, _ = _runs_ext.count_pair(
            seg, pred, np.arange(n_seg, dtype=np.int64), np.arange(values, dtype=np.int64), -1, -1, 0.5, 0.5
        )
    except IndexError as exc:  # "<map> <id>": a segment id beyond the image's lookup table
        which, sid = (int(x) for x in str(exc).split())
        raise InputError(where[which], f"segment id {sid} has no row in segments.parquet") from None
    rows = np.frombuffer(raw, dtype=np.int64).reshape(-1, 4)
    return rows[:, 0], rows[:, 1], rows[:, 2]


def _pairs_numpy(seg, pred, n_seg: int, pred_lut: np.ndarray, k: int, where):
    """(segment id, predicted eval index, pixels) of every pair present, with numpy."""
    seg = np.asarray(seg, dtype=np.int64)
    if seg.size and int(seg.max()) >= n_seg:
        raise InputError(where[0], f"segment id {int(seg.max())} has no row in segments.parquet")
    p = pred_lut[np.asarray(pred)]
    bad = p == INVALID
    if bad.any():
        value = int(np.asarray(pred)[bad].flat[0])
        return None, value, None
    code = seg * (k + 1) + p
    if n_seg * (k + 1) <= _NUMPY_DENSE:
        n = np.bincount(code.ravel(), minlength=n_seg * (k + 1))
        cells = np.flatnonzero(n)
        pixels = n[cells]
    else:
        cells, pixels = np.unique(code, return_counts=True)
    s, pe = np.divmod(cells, k + 1)
    return s, pe, pixels.astype(np.int64)


def count_pair(
    seg: np.ndarray,
    pred: np.ndarray,
    seg_lut: np.ndarray,
    space_or_lut,
    num_classes: int | None = None,
    *,
    where: Sequence = ("<ground truth>", "<prediction>"),
    describe: Callable[[], str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count one image.

    Parameters
    ----------
    seg : ndarray of uint8/uint16, shape (H, W)
        The ground truth's segment-id map (0 = no annotation; strided views accepted).
    pred : ndarray of uint8/uint16, shape (H, W)
        The prediction's values (strided, big-endian views accepted).
    seg_lut : ndarray of int
        Segment id -> eval index, -1 where not evaluated (id 0 included).
    space_or_lut : EvalSpace or ndarray
        The space, or its ``pred_lut`` (prediction value -> eval index, ``K`` = miss, -2 invalid).
    num_classes : int
        K, when a lookup table is given.

    Returns
    -------
    (cells, pixels, segment_hits)
        Sparse confusion cells ``gt * (K + 1) + pred`` with their pixel counts, and per segment
        id the pixels predicted as the segment's own class.

    Raises
    ------
    InputError
        Naming the prediction: a value outside the id space; naming the ground truth: a segment
        id without a row.
    """
    if isinstance(space_or_lut, EvalSpace):
        pred_lut, k = space_or_lut.pred_lut, space_or_lut.num_classes
        describe = describe or space_or_lut.describe_pred_ids
    else:
        pred_lut, k = space_or_lut, int(num_classes)
    seg_lut = np.asarray(seg_lut, dtype=np.int64)
    n_seg = len(seg_lut)
    native = (
        _runs_ext is not None
        and seg.dtype.kind == "u"
        and pred.dtype.kind == "u"
        and max(seg.dtype.itemsize, pred.dtype.itemsize) <= 2
        and n_seg * (1 << (8 * max(seg.dtype.itemsize, pred.dtype.itemsize))) <= _DENSE_PAIRS
    )
    if native:
        s, values, pixels = _pairs_native(seg, pred, n_seg, where)
        pe = pred_lut[values]
        bad = pe == INVALID
        value = int(values[bad][0]) if bad.any() else None
    else:
        s, pe, pixels = _pairs_numpy(seg, pred, n_seg, pred_lut, k, where)
        value = pe if s is None else None
    if value is not None:
        valid = describe() if describe else f"0..{k - 1}"
        raise InputError(where[1], f"value {value} is outside the id space ({valid})")
    g = seg_lut[s]
    keep = g >= 0
    cells = g[keep] * (k + 1) + pe[keep]
    px = pixels[keep]
    if len(cells):
        uniq, inverse = np.unique(cells, return_inverse=True)
        px = np.bincount(inverse, weights=px).astype(np.int64)
        cells = uniq
    hit = keep & (g == pe)
    hits = np.bincount(s[hit], weights=pixels[hit], minlength=n_seg).astype(np.int64)
    return cells.astype(np.int64), px.astype(np.int64), hits


def _count_file(item, pred_lut: np.ndarray, k: int, valid_text: str):
    image_id, mask_path, pred_path, shape, seg_lut = item
    pred = read_prediction(pred_path, shape, view=True)
    if mask_path is None:
        seg = np.zeros(shape, dtype=np.uint8)
    else:
        seg = read_segment_map(mask_path, view=True)
        if seg.shape != tuple(shape):
            raise InputError(mask_path, f"mask is {seg.shape[1]}x{seg.shape[0]}, the image is {shape[1]}x{shape[0]}")
    cells, pixels, hits = count_pair(
        seg, pred, seg_lut, pred_lut, k, where=(mask_path, pred_path), describe=lambda: valid_text
    )
    return image_id, cells, pixels, hits


def count_files(
    space: EvalSpace,
    items: Sequence[tuple[str, Path | None, Path, tuple[int, int], np.ndarray]],
    *,
    workers: int | None = None,
    executor=None,
    progress: Callable[[int, int], None] | None = None,
) -> Counts:
    """Count prediction files against their ground truth in the process pool (or ``executor``).

    ``items``: ``(image_id, mask path or None, prediction path, (H, W), segment lut)`` per image;
    the segment lut maps the mask's segment ids to eval indices (-1 = not evaluated).
    ``progress(done, total)`` is called after each image.
    """
    k = space.num_classes
    # int16 when it holds every eval index: half the bytes each batch of tasks carries
    lut = space.pred_lut.astype(np.int16) if k < np.iinfo(np.int16).max else space.pred_lut
    fn = functools.partial(_count_file, pred_lut=lut, k=k, valid_text=space.describe_pred_ids())
    done = []
    for result in parallel_map(fn, items, workers=workers, executor=executor, ordered=True, batch_size=8):
        done.append(result)
        if progress is not None:
            progress(len(done), len(items))
    return Counts.from_cells(space.num_classes, done)

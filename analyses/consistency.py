"""Annotation consistency: how far two (or more) annotations of the same images agree, and what
that agreement caps for a model scored against one of them.

Two annotations are two layers of one dataset (the ADE20K consistency set's ``objects`` and
``reannotation``, VOC ``objects`` next to ``sbd``, Cityscapes ``objects`` next to ``coarse``) or
one layer each of two datasets matched by image id. The first annotation, A, is the reference;
the second, B, is compared against it. Every figure is specified in ``docs/consistency.md``; in
short, per pixel ``p`` with class ``a(p)`` in A and ``b(p)`` in B (class 0 = unlabeled, ``I(c)``
the class table's ``ignore`` flag):

Conventions
-----------
- **unlabeled** is class 0 (segment id 0, "no annotation"); a class named ``unlabeled`` in the
  class table (Cityscapes keeps its labelId 0 as one, flagged ignore) counts as class 0 too.
- **compared pixels**: labelled in at least one annotation (``a != 0 or b != 0``). Pixels of a B
  class that the class map leaves unmapped are left out of every figure (and counted apart).
- ``pixel_agreement``: fraction of compared pixels with ``a == b``.
- ``pixel_agreement_excluding_void``: the same over pixels labelled in both with classes not
  flagged ignore (Cityscapes reported 96% and 98% this way).
- ``pixel_accuracy``, ``iou``, ``miou`` (**B against A**, the evaluation convention): pixels A
  leaves unlabeled or marks ignore are dropped first; a pixel of class ``c`` in A that B leaves
  unlabeled, marks ignore or names otherwise is a miss. ``IoU_c = TP / (TP + FP + FN)``. mIoU is
  defined once, at dataset level: the confusion is summed over images first; a class absent from
  both annotations has IoU NaN and is left out of the mean (never 0). Classes flagged ignore are
  never scored.
- ``iou_symmetric``: over pixels neither annotation marks ignore, ``|A_c & B_c| / |A_c | B_c|``.
- ``kappa``: Cohen's kappa over compared pixels neither annotation marks ignore, "unlabeled"
  being one of the categories.
- **boundary band** (``boundary_px = K``, default 3): a *boundary pixel* is a pixel whose left,
  right, upper or lower neighbour lies in another segment (segment id of the segment map, so
  instance boundaries count; "no annotation" is a region too) in A or in B; the band is every
  pixel within chessboard distance K of a boundary pixel (a (2K+1) x (2K+1) square around it).
  The *interior* is every other pixel. Agreement is reported for both.
- **breakdown** of the disagreement (a compared pixel with ``a != b``), decided per pixel from
  the pair (segment ``i`` of A, segment ``j`` of B) the pixel lies in, as the ADE20K
  re-annotation study split it. Two labelled segments ``i`` and ``j`` are *counterparts* when
  each is the other's largest overlap among the other annotation's labelled segments (ties: the
  lower segment id).

  * one side unlabeled (``a == 0`` or ``b == 0``): **quantity** (a missing object) when the
    labelled side's segment is mostly (more than 50% of its pixels) unlabeled in the other
    annotation and has no counterpart there, else **segmentation quality**;
  * both labelled: **naming** when ``IoU(i, j) >= 0.5`` or ``i`` and ``j`` are counterparts (the
    same region, named differently), else **segmentation quality** (boundaries or extent
    differ).

  The counterpart clauses refine the plain rules (>50% unlabeled; IoU >= 0.5), which known edits
  proved wrong on thin objects: an object eroded by a few pixels that lost more than half of
  itself is not missing (its core is still there), an object renamed and grown or shrunk is
  still the same region (``docs/consistency.md`` has the numbers). The three add up to the
  disagreement: ``segmentation_quality + naming + quantity == 1 - pixel_agreement`` as
  fractions of the compared pixels.
- confidence intervals: percentile bootstrap over images (resampled with replacement, seeded),
  95% by default, of every ratio above; each resample re-sums the per-image confusion first.
- with three or more annotations: the pairwise matrix of these figures, and a majority-vote
  consensus (per pixel, the most frequent class among the annotations, "unlabeled" included;
  ties give unlabeled) with each annotation's agreement with it.

Everything per image is computed in a handful of linear passes over the two segment maps: the
change points of both maps along the rows give runs of constant (segment of A, segment of B);
one small table of run counts per (i, j) pair gives the confusion, the agreement and the
breakdown by table lookups; the boundary band is built bit-packed (64 pixels a word) from
neighbour comparisons and counted per run with a popcount prefix sum.

The ceiling: a model scored against A cannot be expected to agree with A better than B does.
:func:`write_ceiling` writes B's pixel accuracy and mIoU against A, overall and per frequency
bucket of A (:mod:`segdata.analyses.longtail`), as JSON that :func:`read_ceiling` reads back.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from segdata.errors import FormatError, InputError
from segdata.format import Dataset, mask_relpath, text_or_none
from segdata.maskio import read_segment_map
from segdata.runner import dask_executor, default_workers, parallel_map  # noqa: F401 (dask_executor: kept importable here)

from . import longtail

try:  # the C extension for the per-image runs (setup.py); numpy does the same without it
    from segdata import _runs as _runs_ext
except ImportError:  # pragma: no cover - the extension was not compiled
    _runs_ext = None

#: default half-width of the boundary band, in pixels
DEFAULT_BOUNDARY_PX = 3
#: a labelled segment is a *missing object* when more than this fraction of it is unlabeled in the other annotation
MISSING_FRACTION = 0.5
#: a both-labelled disagreement is *naming* when the two segments overlap with at least this IoU
NAMING_IOU = 0.5
CATEGORIES = ("segmentation_quality", "naming", "quantity")
#: codes of :func:`disagreement_map`
NOT_COMPARED, AGREE, QUALITY, NAMING, QUANTITY = 0, 1, 2, 3, 4
CEILING_FORMAT = "segdata-ceiling"
CEILING_VERSION = 1
#: the ADE20K re-annotation study (Zhou et al. 2017): agreement and the three disagreement shares
ADE20K_REFERENCE = {"pixel_agreement": 0.824, "segmentation_quality": 0.057, "naming": 0.060, "quantity": 0.059}
_DENSE_PAIRS = 1 << 18  # (segments of A + 1) * (segments of B + 1) up to which pairs are counted densely
_DENSE_SUMS = 1 << 22  # images * per-class sums up to which the per-image sums are a dense array (32 MiB)
_U64 = np.dtype("<u8")


# --------------------------------------------------------------------------- class map


def read_class_map(path: str | Path) -> dict[int, int | None]:
    """Read a class map: which class of A each class of B stands for.

    The file is CSV with the header ``b_class_id,a_class_id``; lines starting with ``#`` are
    comments. ``a_class_id`` is a class id of A, ``0`` for "unlabeled", or empty (or ``ignore``)
    to leave the B class out of every figure. B classes the file does not list are left out too,
    and reported as unmapped.

    Returns
    -------
    dict
        ``{b_class_id: a_class_id or None}``; None means "left out".

    Raises
    ------
    InputError
        On a malformed line or a B class listed twice.

    Examples
    --------
    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
    >>> _ = f.write("# COCO-Stuff onto ADE\\nb_class_id,a_class_id\\n7,3\\n9,\\n12,0\\n"); f.close()
    >>> read_class_map(f.name)
    {7: 3, 9: None, 12: 0}
    >>> os.unlink(f.name)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "class map not found") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines or [h.strip() for h in lines[0][1].split(",")] != ["b_class_id", "a_class_id"]:
        raise InputError(path, "a class map starts with the header b_class_id,a_class_id",
                         "one line per B class follows: b_class_id,a_class_id (empty a_class_id: leave out)")
    out: dict[int, int | None] = {}
    for lineno, rec in lines[1:]:
        fields = next(csv.reader(io.StringIO(rec)))
        if len(fields) != 2:
            raise InputError(path, f"line {lineno}: expected b_class_id,a_class_id, got {rec!r}")
        b_text, a_text = (f.strip() for f in fields)
        try:
            b = int(b_text)
            a = None if a_text.lower() in ("", "ignore") else int(a_text)
        except ValueError:
            raise InputError(path, f"line {lineno}: class ids must be integers, got {rec!r}") from None
        if b in out:
            raise InputError(path, f"line {lineno}: B class {b} is mapped twice")
        if b < 1 or (a is not None and a < 0):
            raise InputError(path, f"line {lineno}: class ids are >= 1 (a_class_id 0 = unlabeled), got {rec!r}")
        out[b] = a
    return out


# --------------------------------------------------------------------------- the class space


@dataclass(frozen=True)
class ClassSpace:
    """The classes the annotations are compared in, indexed compactly.

    Index 0 is unlabeled, 1..n the classes of A (and, without a class map, the classes only B
    has) in ascending ``class_id``, and, when a class map is used, index n + 1 the unmapped B
    classes (``class_id`` -1, flagged ignore).

    Attributes
    ----------
    class_ids : ndarray of int64, shape (K,)
        ``class_ids[index]``; 0 for unlabeled, -1 for unmapped.
    names : tuple of str
    ignore : ndarray of bool, shape (K,)
        Ignore flag (A's table for A's classes, B's for the classes only B has).
    colors : tuple of str
        ``#rrggbb``.
    unmapped : int or None
        Index of the unmapped B classes, None without a class map.
    unlabeled : ndarray of int64
        Class ids that stand for "no annotation" and map to index 0 (Cityscapes' own
        ``unlabeled``, labelId 0); sorted.
    """

    class_ids: np.ndarray
    names: tuple[str, ...]
    ignore: np.ndarray
    colors: tuple[str, ...]
    unmapped: int | None = None
    unlabeled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = len(self.class_ids)
        if not (len(self.names) == len(self.ignore) == len(self.colors) == n) or n < 1 or self.class_ids[0] != 0:
            raise ValueError(f"class space: expected K names, flags and colours for K class ids starting with 0, got "
                             f"{n} ids, {len(self.names)} names, {len(self.ignore)} flags, {len(self.colors)} colours")

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def scored(self) -> np.ndarray:
        """Boolean mask of the indices that are scored classes (not unlabeled, ignore or unmapped)."""
        keep = ~self.ignore.copy()
        keep[0] = False
        if self.unmapped is not None:
            keep[self.unmapped] = False
        return keep

    def index_of(self, class_ids, where: str = "") -> np.ndarray:
        """Compact indices of class ids (0 -> 0); raises if an id has no row in the space."""
        ids = np.asarray(class_ids, dtype=np.int64)
        known = self.class_ids[1 : len(self.class_ids) - (self.unmapped is not None)]
        pos = np.searchsorted(known, ids)
        found = np.zeros(ids.shape, dtype=bool)
        inside = pos < len(known)
        found[inside] = known[pos[inside]] == ids[inside]
        zero = (ids == 0) | np.isin(ids, self.unlabeled)
        ok = found | zero
        if not ok.all():
            bad = sorted(set(ids[~ok].tolist()))[:5]
            raise FormatError(f"{where}: class id(s) {bad} have no row in the class table")
        return np.where(zero, 0, pos + 1).astype(np.int32)


def _table_classes(ds: Dataset) -> pd.DataFrame:
    t = ds.classes
    return pd.DataFrame({
        "class_id": t["class_id"].astype(np.int64),
        "name": t["name"].astype(str),
        "ignore": t["ignore"].fillna(False).astype(bool),
        "color": t["color"].fillna("#808080").astype(str),
    })  # fmt: skip


def build_class_space(
    a: Dataset,
    b: Dataset | None = None,
    class_map: dict[int, int | None] | None = None,
    unlabeled: Sequence[int] | None = None,
) -> tuple[ClassSpace, np.ndarray, np.ndarray, dict]:
    """The class space of A (and B), and the lookup of B's class ids into it.

    Without a class map, B's class ids are taken as they are: a class id both tables hold must
    name the same class in both (else a ``ValueError`` asks for a class map); classes only B has
    join the space. With a class map (see :func:`read_class_map`) every B class goes where the map
    says; unlisted B classes become the unmapped index.

    ``unlabeled`` lists class ids (of A, and of B without a class map) that stand for "no
    annotation" and count as class 0; default: the classes named ``unlabeled`` (Cityscapes keeps
    its labelId 0 as such a class, flagged ignore). With a class map, B's classes named
    ``unlabeled`` that the map does not list count as class 0 too.

    Returns
    -------
    space : ClassSpace
    b_ids, b_index : ndarray of int64, ndarray of int32
        Sorted B class ids and the compact index each maps to (lookup with ``np.searchsorted``).
    info : dict
        With a class map: ``{"mapped": n, "left_out": [...], "unmapped": [{class_id, name}]}``;
        empty without.
    """
    ta = _table_classes(a)
    tb = ta if b is None or b is a else _table_classes(b)

    def named_unlabeled(t):
        return set(t.loc[t["name"].str.lower() == "unlabeled", "class_id"].tolist())

    if unlabeled is None:
        zero_a = named_unlabeled(ta)
        zero_b = named_unlabeled(tb)
    else:
        zero_a = zero_b = {int(c) for c in unlabeled}
    info: dict = {}
    if class_map is None:
        zero = zero_a | zero_b
        if tb is not ta:
            both = ta.merge(tb, on="class_id", suffixes=("_a", "_b"))
            differ = both[both["name_a"].str.lower() != both["name_b"].str.lower()]
            if len(differ):
                r = differ.iloc[0]
                raise ValueError(
                    f"class {int(r.class_id)} is {r.name_a!r} in A but {r.name_b!r} in B ({len(differ)} class id(s) "
                    "differ): the two vocabularies differ; give a class map (--class-map, CSV b_class_id,a_class_id)"
                )
            table = pd.concat([ta, tb[~tb["class_id"].isin(ta["class_id"])]], ignore_index=True)
        else:
            table = ta
        table = table[~table["class_id"].isin(zero)]
        table = table.sort_values("class_id", kind="stable").reset_index(drop=True)
        space = ClassSpace(
            np.concatenate([[0], table["class_id"].to_numpy(np.int64)]),
            ("unlabeled", *table["name"]),
            np.concatenate([[False], table["ignore"].to_numpy(bool)]),
            ("#000000", *table["color"]),
            unlabeled=np.array(sorted(zero), dtype=np.int64),
        )
        b_ids = np.sort(tb["class_id"].to_numpy(np.int64))
        return space, b_ids, space.index_of(b_ids, "B"), info
    table = ta[~ta["class_id"].isin(zero_a)].sort_values("class_id", kind="stable").reset_index(drop=True)
    n = len(table)
    space = ClassSpace(
        np.concatenate([[0], table["class_id"].to_numpy(np.int64), [-1]]),
        ("unlabeled", *table["name"], "(unmapped)"),
        np.concatenate([[False], table["ignore"].to_numpy(bool), [True]]),
        ("#000000", *table["color"], "#ffffff"),
        unmapped=n + 1,
        unlabeled=np.array(sorted(zero_a), dtype=np.int64),
    )
    b_known = set(tb["class_id"].tolist())
    unknown_b = sorted(set(class_map) - b_known)
    if unknown_b:
        raise ValueError(f"class map lists B class(es) {unknown_b[:5]} that B's class table does not have")
    a_known = set(ta["class_id"].tolist()) | {0}
    unknown_a = sorted({v for v in class_map.values() if v is not None} - a_known)
    if unknown_a:
        raise ValueError(f"class map maps onto class(es) {unknown_a[:5]} that A's class table does not have")
    b_ids = np.sort(tb["class_id"].to_numpy(np.int64))
    b_index = np.full(len(b_ids), space.unmapped, dtype=np.int32)
    names_b = dict(zip(tb["class_id"].tolist(), tb["name"].tolist()))
    left_out, unmapped = [], []
    for k, c in enumerate(b_ids.tolist()):
        if c in class_map:
            target = class_map[c]
            if target is None:
                left_out.append({"class_id": c, "name": names_b[c]})
            else:
                b_index[k] = space.index_of([target], "class map")[0]
        elif c in zero_b:
            b_index[k] = 0
        else:
            unmapped.append({"class_id": c, "name": names_b[c]})
    info = {"mapped": sum(1 for c in b_ids.tolist() if class_map.get(c) is not None), "left_out": left_out,
            "unmapped": unmapped}  # fmt: skip
    return space, b_ids, b_index, info


# --------------------------------------------------------------------------- bit-packed boundary band

if hasattr(np, "bitwise_count"):  # numpy >= 2.0

    def _popcount(x: np.ndarray) -> np.ndarray:
        return np.bitwise_count(x)

else:  # pragma: no cover - numpy 1.x
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=_U64)
        return _POP8[x.view(np.uint8)].reshape(x.shape + (8,)).sum(-1, dtype=np.uint8)


class _Workspace(threading.local):
    """Per-thread scratch buffers for the full-resolution passes, reused from image to image:
    a fresh 2-megapixel array costs its page faults every time (about as much as the pass)."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int) -> np.ndarray:
        buf = self.buffers.get(name)
        if buf is None or len(buf) < n:
            buf = np.empty(max(n, 1), dtype=bool)
            self.buffers[name] = buf
        return buf[:n]


_WORKSPACE = _Workspace()
#: _BELOW[c] has the bits of pixels 0 .. c - 1 of a word set
_BELOW = (np.uint64(1) << np.arange(64, dtype=np.uint64)) - np.uint64(1)


def _shift_bits(x: np.ndarray, d: int) -> np.ndarray:
    """Shift the bits of every row of ``x`` (uint64 words, pixel ``c`` = bit ``c % 64`` of word
    ``c // 64``) by ``d`` pixels: towards higher pixel index when positive; zeros shift in."""
    out = np.zeros_like(x)
    if d == 0:
        out[:] = x
        return out
    q, r = divmod(abs(d), 64)
    n = x.shape[1]
    if q >= n:
        return out
    r64 = np.uint64(r)
    back = np.uint64(64 - r)
    if d > 0:
        src = x[:, : n - q]
        out[:, q:] = (src << r64) if r else src
        if r and n - q > 1:
            out[:, q + 1 :] |= src[:, :-1] >> back
    else:
        src = x[:, q:]
        out[:, : n - q] = (src >> r64) if r else src
        if r and n - q > 1:
            out[:, : n - q - 1] |= src[:, 1:] << back
    return out


def _dilate_rows(x: np.ndarray, k: int, margin: bool) -> np.ndarray:
    """OR over pixels [c - k, c + k] of every row of a bit-packed (rows, words) mask. Without
    ``margin`` (k < 64) bits shifted past a row's last word are dropped, which is exact for every
    pixel inside the row; with it (any k) the rows carry at least 2k + 64 spare bits."""
    if k == 0:
        return x
    if not margin:
        y = x.copy()
        for d in range(1, k + 1):
            fwd, back = np.uint64(d), np.uint64(64 - d)
            y |= x << fwd
            y[:, 1:] |= x[:, :-1] >> back
            y |= x >> fwd
            y[:, :-1] |= x[:, 1:] << back
        return y
    total = 2 * k + 1
    y = x.copy()
    span = 1  # y[c] = OR of x[c - s] for s in [0, span)
    while span < total:
        step = min(span, total - span)
        y |= _shift_bits(y, step)
        span += step
    return _shift_bits(y, -k)


def _dilate_cols(y: np.ndarray, k: int) -> np.ndarray:
    """OR over rows [r - k, r + k] (rows outside the image are empty)."""
    if k == 0:
        return y
    rows = y.shape[0]
    out = y.copy()
    if k <= 8:
        for d in range(1, min(k, rows - 1) + 1):
            out[d:] |= y[:-d]
            out[:-d] |= y[d:]
        return out
    total = 2 * k + 1
    z = y.copy()
    span = 1  # z[r] = OR of y[r - s] for s in [0, span)
    while span < total:
        step = min(span, total - span)
        if step < rows:
            z[step:] |= z[:-step].copy()
        span += step
    out[:] = 0
    if k < rows:
        out[: rows - k] = z[k:]
    for r in range(max(0, rows - k), rows):  # the last k rows: OR over [r - k, rows)
        out[r] = np.bitwise_or.reduce(y[max(0, r - k) :], axis=0)
    return out


def _pack_rows(mask: np.ndarray, words: int, rows: int | None = None) -> np.ndarray:
    """(r, W) bool -> (rows, words) little-endian uint64, zero-padded (rows >= r)."""
    r, w = mask.shape
    rows = r if rows is None else rows
    if w == words * 64 and mask.flags.c_contiguous and rows == r:
        return np.packbits(mask.reshape(-1), bitorder="little").view(_U64).reshape(r, words)
    buf = np.zeros((rows, words * 8), dtype=np.uint8)
    if r and w:
        buf[:r, : (w + 7) // 8] = np.packbits(mask, axis=1, bitorder="little")
    return buf.view(_U64)


_ONES = np.uint64(0x0101010101010101)
_GATHER = np.uint64(0x0102040810204080)


def _vertical_bits(maps: Sequence[np.ndarray]) -> np.ndarray:
    """(H - 1, ceil(W / 64)) packed: pixel (r, c) differs from pixel (r + 1, c) in some map."""
    h, w = maps[0].shape
    words = (w + 63) // 64
    if w % 64 == 0 and all(m.dtype == np.uint8 and m.flags.c_contiguous for m in maps):
        # compare 8 pixels at a time; only the 8-pixel blocks that differ are expanded to bits
        q = w // 8
        flat = [m.reshape(-1).view(_U64) for m in maps]
        differ = _WORKSPACE.get("blocks", (h - 1) * q)
        tmp = _WORKSPACE.get("blocks_tmp", (h - 1) * q)
        np.not_equal(flat[0][q:], flat[0][:-q], out=differ)
        for f in flat[1:]:
            np.not_equal(f[q:], f[:-q], out=tmp)
            differ |= tmp
        at = np.flatnonzero(differ)
        below = at + q
        x = flat[0][below] ^ flat[0][at]
        for f in flat[1:]:
            x |= f[below] ^ f[at]
        x |= x >> np.uint64(4)
        x |= x >> np.uint64(2)
        x |= x >> np.uint64(1)
        x &= _ONES
        x *= _GATHER  # the lowest bit of byte k -> bit 56 + k
        x >>= np.uint64(56)
        out = np.zeros((h - 1) * q, dtype=np.uint8)  # byte t: the 8 pixels of block t
        out[at] = x
        return out.view(_U64).reshape(h - 1, words)
    n = (h - 1) * w
    vertical = _WORKSPACE.get("vertical", n).reshape(h - 1, w)
    tmp = _WORKSPACE.get("vertical_tmp", n).reshape(h - 1, w)
    np.not_equal(maps[0][1:], maps[0][:-1], out=vertical)
    for m in maps[1:]:
        np.not_equal(m[1:], m[:-1], out=tmp)
        np.logical_or(vertical, tmp, out=vertical)
    return _pack_rows(vertical, words)


def _band_bits(maps: Sequence[np.ndarray], k: int, horizontal: np.ndarray) -> np.ndarray:
    """Bit-packed boundary band of ``maps`` (see the module docstring).

    ``horizontal`` is the (H * W,) bool array whose element ``p`` says that pixel ``p`` differs
    from pixel ``p - 1`` in some map (element 0 and the first pixel of each row are not edges).
    Returns (H + 1, ceil(W / 64)) uint64, pixel (r, c) = bit c % 64 of word [r, c // 64], the
    last row empty and the bits beyond column W - 1 cleared.
    """
    h, w = maps[0].shape
    real = (w + 63) // 64
    margin = k >= 64
    # each row gets spare words so that shifts never carry real bits into the next row
    words = (w + 2 * k + 63) // 64 + 1 if margin else real + 1
    body = np.zeros((h, words), dtype=_U64)
    body[:, :real] = _pack_rows(horizontal.reshape(h, w), real)
    body[:, 0] &= ~np.uint64(1)  # column 0 has no left neighbour
    flat = body.reshape(-1)
    edges = flat.copy()
    flat |= edges >> np.uint64(1)  # both pixels of each horizontal edge
    flat[:-1] |= (edges[1:] & np.uint64(1)) << np.uint64(63)
    if h > 1:
        v = _vertical_bits(maps)
        body[: h - 1, :real] |= v
        body[1:, :real] |= v
    if margin:
        band = _dilate_rows(body, k, True)
    elif k:
        x = flat
        y = x.copy()
        for d in range(1, k + 1):  # spare words are empty: no carry crosses a row
            fwd, back = np.uint64(d), np.uint64(64 - d)
            y |= x << fwd
            y[1:] |= x[:-1] >> back
            y |= x >> fwd
            y[:-1] |= x[1:] << back
        band = y.reshape(h, words)
    else:
        band = body
    band = _dilate_cols(band, k)
    out = np.zeros((h + 1, real), dtype=_U64)
    out[:h] = band[:, :real]
    if w % 64:
        out[:h, -1] &= _BELOW[w % 64]
    return out


def boundary_band(maps: Sequence[np.ndarray], boundary_px: int = DEFAULT_BOUNDARY_PX) -> np.ndarray:
    """The boundary band of one or more segment maps of the same image.

    Parameters
    ----------
    maps : sequence of ndarray of int, shape (H, W)
        Segment-id maps (0 = no annotation, which counts as a region of its own).
    boundary_px : int
        K: the band holds every pixel within chessboard distance K of a boundary pixel, a pixel
        whose left, right, upper or lower neighbour has another id in some map. 0 gives the
        boundary pixels alone.

    Returns
    -------
    ndarray of bool, shape (H, W)

    Examples
    --------
    >>> a = np.zeros((5, 8), np.uint8); a[:, 4:] = 1
    >>> boundary_band([a], 1).astype(int)[0].tolist()
    [0, 0, 1, 1, 1, 1, 0, 0]
    """
    maps = [np.asarray(m) for m in maps]
    _check_maps(maps)
    if boundary_px < 0:
        raise ValueError(f"boundary_px must be >= 0, got {boundary_px}")
    h, w = maps[0].shape
    change = _changes(maps)
    bits = _band_bits(maps, int(boundary_px), change)[:h]
    return np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little", count=w).astype(bool)


def _check_maps(maps: Sequence[np.ndarray]) -> None:
    if not maps:
        raise ValueError("no segment map given")
    for m in maps:
        if m.ndim != 2 or m.dtype.kind not in "ui":
            raise ValueError(f"expected (H, W) integer segment maps, got {m.dtype} of shape {m.shape}")
        if m.shape != maps[0].shape:
            raise ValueError(f"segment maps differ in shape: {maps[0].shape} vs {m.shape}")


def _changes(maps: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """(H * W,) bool: pixel p differs from pixel p - 1 (in flat order) in some map; [0] = True."""
    n = maps[0].size
    change = np.empty(n, dtype=bool) if out is None else out
    if n == 0:
        return change
    change[0] = True
    flat = maps[0].reshape(-1)
    np.not_equal(flat[1:], flat[:-1], out=change[1:])
    if len(maps) > 1:
        tmp = _WORKSPACE.get("change_tmp", n - 1)
        for m in maps[1:]:
            flat = m.reshape(-1)
            np.not_equal(flat[1:], flat[:-1], out=tmp)
            np.logical_or(change[1:], tmp, out=change[1:])
    return change


# --------------------------------------------------------------------------- per-image counting


@dataclass(frozen=True)
class ImageCounts:
    """What one image contributes: class-pair counts and the breakdown of its disagreement.

    Attributes
    ----------
    image_id : str
    shape : (int, int)
        (H, W) in pixels.
    pairs : ndarray of int64, shape (R, 4)
        Rows ``(class index in A, class index in B, pixels, pixels in the boundary band)`` of the
        first two annotations, one row per class pair present (indices of the :class:`ClassSpace`).
    breakdown : ndarray of int64, shape (3,)
        Disagreeing pixels per category: segmentation quality, naming, quantity.
    pairwise : tuple of ndarray
        With three or more annotations: for every pair ``(l, m)``, ``l < m``, in order, a (R, 3)
        array ``(class in l, class in m, pixels)``; empty otherwise.
    consensus : tuple of ndarray
        With three or more annotations: per annotation, ``(class in it, consensus class,
        pixels)``; empty otherwise.
    """

    image_id: str
    shape: tuple[int, int]
    pairs: np.ndarray
    breakdown: np.ndarray
    pairwise: tuple = ()
    consensus: tuple = ()

    def __post_init__(self) -> None:
        if self.pairs.ndim != 2 or self.pairs.shape[1] != 4:
            raise ValueError(f"pairs: expected shape (R, 4), got {self.pairs.shape}")
        if self.breakdown.shape != (3,):
            raise ValueError(f"breakdown: expected shape (3,), got {self.breakdown.shape}")


def _nonzero(flags: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a (n,) bool array, 8 flags at a time (faster on sparse flags)."""
    n = len(flags)
    if n % 8 or not flags.flags.c_contiguous:
        return np.flatnonzero(flags)
    words = flags.view(_U64)
    busy = np.flatnonzero(words != 0)
    inside = np.flatnonzero(words[busy].view(np.bool_))
    return busy[inside >> 3] * 8 + (inside & 7)


def _runs(maps: Sequence[np.ndarray], boundary_px: int | None, *, native: bool = True):
    """Runs of constant segment ids along the rows (a run never crosses a row end).

    Returns (starts, lengths, values per map, band pixels per run or None): the run starts as
    flat pixel indices, int64 lengths, each map's value per run, and the pixels of each run
    inside the boundary band of the first two maps. Computed by the C extension
    ``segdata._runs`` when it is built and ``native``, else by numpy; both give the same arrays.
    """
    h, w = maps[0].shape
    n = h * w
    if native and _runs_ext is not None and len(maps) <= 16 and all(m.dtype.itemsize <= 2 and m.dtype.kind == "u" for m in maps):
        size = max(m.dtype.itemsize for m in maps)
        same = [np.ascontiguousarray(m, dtype=np.uint8 if size == 1 else np.uint16) for m in maps]
        k = -1 if boundary_px is None else int(boundary_px)
        raw_starts, raw_lengths, raw_values, raw_band = _runs_ext.joint_runs(same, h, w, size, min(2, len(maps)), k)
        starts = np.frombuffer(raw_starts, dtype=np.int64)
        lengths = np.frombuffer(raw_lengths, dtype=np.int64)
        values = [np.frombuffer(v, dtype=m.dtype).astype(maps[i].dtype, copy=False) for i, (v, m) in enumerate(zip(raw_values, same))]
        band_counts = None if raw_band is None else np.frombuffer(raw_band, dtype=np.int64)
        return starts, lengths, values, band_counts
    change = _changes(maps[:2], out=_WORKSPACE.get("change", n))
    bits = None
    if boundary_px is not None:
        bits = _band_bits(maps[:2], boundary_px, change)
    for m in maps[2:]:
        tmp = _WORKSPACE.get("change_tmp", n - 1)
        flat = m.reshape(-1)
        np.not_equal(flat[1:], flat[:-1], out=tmp)
        np.logical_or(change[1:], tmp, out=change[1:])
    change.reshape(h, w)[:, 0] = True  # every row starts a run
    starts = _nonzero(change)
    bounds = np.empty(len(starts) + 1, dtype=np.int64)
    bounds[:-1] = starts
    bounds[-1] = n
    lengths = np.diff(bounds)
    values = [m.reshape(-1)[starts] for m in maps]
    band_counts = None
    if bits is not None:
        words = bits.shape[1]
        flat_bits = bits.reshape(-1)
        prefix = np.zeros(len(flat_bits) + 1, dtype=np.int64)
        np.cumsum(_popcount(flat_bits), out=prefix[1:])
        if words * 64 == w:  # rows fill their words exactly: bit index = pixel index
            word = bounds >> 6
            bit = bounds & 63
        else:
            row, bit = np.divmod(bounds, w)
            word = row * words
            word += bit >> 6
            bit &= 63
        part = flat_bits[word]
        part &= _BELOW[bit]
        upto = prefix[word]
        upto += _popcount(part)
        band_counts = np.diff(upto)
    return starts, lengths, values, band_counts


def _aggregate(i: np.ndarray, j: np.ndarray, nj: int, size: int, weights: Sequence[np.ndarray]):
    """Sum ``weights`` per (i, j) pair; returns (i, j, [sums]) over the pairs present."""
    key = i.astype(np.int64) * nj + j
    if size <= _DENSE_PAIRS:
        sums = [np.bincount(key, weights=w, minlength=size) for w in weights]
        present = np.flatnonzero(sums[0])
        return present // nj, present % nj, [s[present].astype(np.int64) for s in sums]
    uniq, inverse = np.unique(key, return_inverse=True)
    sums = [np.bincount(inverse, weights=w, minlength=len(uniq)).astype(np.int64) for w in weights]
    return uniq // nj, uniq % nj, sums


def _check_ids(values: np.ndarray, lut: np.ndarray, where) -> None:
    if len(values) and int(values.max()) >= len(lut):
        raise InputError(where, f"segment id {int(values.max())} has no row in segments.parquet",
                         "run `segdata validate` on the dataset")


def _categories(i, j, n, ca_seg, cb_seg, unmapped):
    """Category code (AGREE, QUALITY, NAMING, QUANTITY; NOT_COMPARED) of each (i, j) pair."""
    area_a = np.bincount(i, weights=n, minlength=len(ca_seg))
    area_b = np.bincount(j, weights=n, minlength=len(cb_seg))
    ca = ca_seg[i]
    cb = cb_seg[j]
    unl_b = cb == 0
    unl_a = ca == 0
    # pixels of each A segment that B leaves unlabeled, of each B segment that A leaves unlabeled
    a_unlabeled_in_b = np.bincount(i[unl_b], weights=n[unl_b], minlength=len(ca_seg))
    b_unlabeled_in_a = np.bincount(j[unl_a], weights=n[unl_a], minlength=len(cb_seg))
    compared = ~(unl_a & unl_b)
    labelled_b = ~unl_b
    if unmapped is not None:
        compared &= cb != unmapped
        labelled_b &= cb != unmapped
    # counterparts: two labelled segments that are each other's largest overlap among the other
    # annotation's labelled segments (ties: the lower segment id)
    both = ~unl_a & labelled_b
    pair = np.flatnonzero(both)
    counterpart = np.zeros(len(i), dtype=bool)
    if len(pair):
        by_a = pair[np.lexsort((j[pair], -n[pair], i[pair]))]
        first_a = by_a[np.r_[True, i[by_a][1:] != i[by_a][:-1]]]
        by_b = pair[np.lexsort((i[pair], -n[pair], j[pair]))]
        first_b = by_b[np.r_[True, j[by_b][1:] != j[by_b][:-1]]]
        counterpart[np.intersect1d(first_a, first_b)] = True
    has_a = np.bincount(i[counterpart], minlength=len(ca_seg)) > 0
    has_b = np.bincount(j[counterpart], minlength=len(cb_seg)) > 0
    cat = np.full(len(i), NOT_COMPARED, dtype=np.uint8)
    agree = compared & (ca == cb)
    cat[agree] = AGREE
    dis = compared & ~agree
    missing = np.zeros(len(i), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        ja, ib = j[unl_a], i[unl_b]
        missing[unl_a] = (b_unlabeled_in_a[ja] > MISSING_FRACTION * area_b[ja]) & ~has_b[ja]
        missing[unl_b] = (a_unlabeled_in_b[ib] > MISSING_FRACTION * area_a[ib]) & ~has_a[ib]
        iou = n / (area_a[i] + area_b[j] - n)
    one_side = unl_a | unl_b
    cat[dis & one_side & missing] = QUANTITY
    cat[dis & ~one_side & ((iou >= NAMING_IOU) | counterpart)] = NAMING
    cat[dis & (cat == NOT_COMPARED)] = QUALITY
    return cat


def _categories_dense(t: np.ndarray, ca_seg: np.ndarray, cb_seg: np.ndarray, unmapped: int | None) -> np.ndarray:
    """:func:`_categories` on the dense (segments of A, segments of B) count matrix ``t``; returns
    the (na, nb) category matrix (the same rules, for small tables: fewer, cheaper steps)."""
    unl_a = ca_seg == 0
    unl_b = cb_seg == 0
    lab_b = ~unl_b if unmapped is None else ~unl_b & (cb_seg != unmapped)
    area_a = t.sum(axis=1)
    area_b = t.sum(axis=0)
    a_unlabeled_in_b = t[:, unl_b].sum(axis=1)
    b_unlabeled_in_a = t[unl_a].sum(axis=0)
    labelled = t * (~unl_a)[:, None] * lab_b[None, :]
    best_b = labelled.argmax(axis=1)  # first maximum: the lower segment id on ties
    best_a = labelled.argmax(axis=0)
    rows = np.flatnonzero(labelled[np.arange(len(ca_seg)), best_b] > 0)
    cols = best_b[rows]
    mutual = best_a[cols] == rows
    counterpart = np.zeros(t.shape, dtype=bool)
    counterpart[rows[mutual], cols[mutual]] = True
    compared = (t > 0) & ~(unl_a[:, None] & unl_b[None, :])
    if unmapped is not None:
        compared &= (cb_seg != unmapped)[None, :]
    agree = compared & (ca_seg[:, None] == cb_seg[None, :])
    dis = compared & ~agree
    missing_a = (a_unlabeled_in_b > MISSING_FRACTION * area_a) & ~counterpart.any(axis=1)
    missing_b = (b_unlabeled_in_a > MISSING_FRACTION * area_b) & ~counterpart.any(axis=0)
    quantity = dis & ((unl_a[:, None] & missing_b[None, :]) | (unl_b[None, :] & missing_a[:, None]))
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = t / (area_a[:, None] + area_b[None, :] - t)
    naming = dis & ~(unl_a[:, None] | unl_b[None, :]) & ((iou >= NAMING_IOU) | counterpart)
    cat = np.zeros(t.shape, dtype=np.uint8)
    cat[agree] = AGREE
    cat[dis] = QUALITY
    cat[quantity] = QUANTITY
    cat[naming] = NAMING
    return cat


def count_image(
    maps: Sequence[np.ndarray],
    luts: Sequence[np.ndarray],
    *,
    boundary_px: int | None = DEFAULT_BOUNDARY_PX,
    unmapped: int | None = None,
    image_id: str = "",
    where: Sequence = (),
) -> ImageCounts:
    """Count one image: class pairs, band pixels and the breakdown, in a few linear passes.

    Parameters
    ----------
    maps : sequence of ndarray of uint8/uint16, shape (H, W)
        Segment-id maps of the same image, A first (0 = no annotation).
    luts : sequence of ndarray of int
        Per map, ``lut[segment_id]`` = class index in the :class:`ClassSpace` (0 = unlabeled).
    boundary_px : int or None
        Half-width K of the boundary band; None skips the band (its counts are 0).
    unmapped : int or None
        The class index of unmapped B classes (left out of the breakdown).
    where : sequence
        Per map, what to name in an error (the mask path).

    Returns
    -------
    ImageCounts

    Examples
    --------
    >>> a = np.array([[1, 1, 2, 2]], np.uint8)
    >>> lut = np.array([0, 1, 2])
    >>> c = count_image([a, a], [lut, lut], boundary_px=0)  # band: the two pixels at the edge
    >>> c.pairs.tolist(), c.breakdown.tolist()
    ([[1, 1, 2, 1], [2, 2, 2, 1]], [0, 0, 0])
    """
    maps = [np.asarray(m) for m in maps]
    _check_maps(maps)
    if len(maps) < 2 or len(luts) != len(maps):
        raise ValueError(f"expected two or more maps and one lookup table per map, got {len(maps)} and {len(luts)}")
    if boundary_px is not None and boundary_px < 0:
        raise ValueError(f"boundary_px must be >= 0, got {boundary_px}")
    luts = [np.asarray(lut, dtype=np.int64) for lut in luts]
    where = list(where) or [f"annotation {n}" for n in range(len(maps))]
    h, w = maps[0].shape
    if h * w == 0:
        empty = np.zeros((0, 4), dtype=np.int64)
        return ImageCounts(image_id, (h, w), empty, np.zeros(3, np.int64))
    na, nb = len(luts[0]), len(luts[1])
    if (len(maps) == 2 and _runs_ext is not None and 0 < na * nb <= _DENSE_PAIRS and maps[0].dtype.kind == "u"
            and maps[0].dtype.itemsize <= 2 and maps[1].dtype.itemsize == maps[0].dtype.itemsize and maps[1].dtype.kind == "u"):  # fmt: skip
        return _count_pair_native(maps, luts, boundary_px, unmapped, image_id, where)
    maps = [np.ascontiguousarray(m, dtype=m.dtype.newbyteorder("=")) for m in maps]  # views of PNG rows
    starts, lengths, values, band = _runs(maps, boundary_px)
    for v, lut, wh in zip(values, luts, where):
        _check_ids(v, lut, wh)
    band = band if band is not None else np.zeros(len(lengths), dtype=np.int64)
    if na * nb <= _DENSE_PAIRS:
        key = values[0].astype(np.intp)
        key *= nb
        key += values[1]
        t = np.bincount(key, weights=lengths, minlength=na * nb)
        tb = np.bincount(key, weights=band, minlength=na * nb)
        cat = _categories_dense(t.reshape(na, nb), luts[0], luts[1], unmapped).reshape(-1)
        present = np.flatnonzero(t)
        i, j = np.divmod(present, nb)
        n, nband, cat = t[present].astype(np.int64), tb[present].astype(np.int64), cat[present]
    else:
        i, j, (n, nband) = _aggregate(values[0], values[1], nb, na * nb, [lengths, band])
        cat = _categories(i, j, n, luts[0], luts[1], unmapped)
    breakdown = np.bincount(cat, weights=n, minlength=5)[[QUALITY, NAMING, QUANTITY]].astype(np.int64)
    pairs = _class_pairs(luts[0][i], luts[1][j], [n, nband])
    pairwise, consensus = (), ()
    if len(maps) > 2:
        classes = [lut[v] for lut, v in zip(luts, values)]
        lw = [lengths.astype(np.float64)]
        pw = []
        for l in range(len(maps)):
            for m in range(l + 1, len(maps)):
                pw.append(_class_pairs(classes[l], classes[m], lw))
        pairwise = tuple(pw)
        vote = majority_vote(np.stack(classes))
        consensus = tuple(_class_pairs(c, vote, lw) for c in classes)
    return ImageCounts(image_id, (h, w), pairs, breakdown, pairwise, consensus)


def _count_pair_native(maps, luts, boundary_px, unmapped, image_id, where) -> ImageCounts:
    """:func:`count_image` of two maps by the C extension (``segdata._runs.count_pair``): the
    same rules in one pass, the segment pairs counted in a dense table while each row is in
    cache. The maps may be strided views (the rows of an inflated PNG, see
    :func:`segdata.maskio.read_segment_map` with ``view=True``) and 16-bit maps of either byte order."""
    k = -1 if boundary_px is None else int(boundary_px)
    lut_a = np.ascontiguousarray(luts[0], dtype=np.int64)
    lut_b = np.ascontiguousarray(luts[1], dtype=np.int64)
    try:
        raw, breakdown = _runs_ext.count_pair(maps[0], maps[1], lut_a, lut_b, k, -1 if unmapped is None else int(unmapped),
                                              MISSING_FRACTION, NAMING_IOU)  # fmt: skip
    except IndexError as exc:  # "<map> <segment id>": an id without a segments.parquet row
        which, sid = (int(x) for x in str(exc).split())
        raise InputError(where[which], f"segment id {sid} has no row in segments.parquet",
                         "run `segdata validate` on the dataset") from None  # fmt: skip
    pairs = np.frombuffer(raw, dtype=np.int64).reshape(-1, 4)
    return ImageCounts(image_id, maps[0].shape, pairs, np.array(breakdown, dtype=np.int64))


def _class_pairs(ca: np.ndarray, cb: np.ndarray, weights: Sequence[np.ndarray]) -> np.ndarray:
    """Aggregate weights per (class of A, class of B); (R, 2 + len(weights)) int64, rows sorted
    by class pair."""
    ca = np.asarray(ca, dtype=np.int64)
    cb = np.asarray(cb, dtype=np.int64)
    span = int(max(ca.max(initial=0), cb.max(initial=0))) + 1
    key = ca * span + cb
    if span * span <= _DENSE_PAIRS and len(key) > span * span // 8:  # many rows, few pairs: no sort
        present = np.flatnonzero(np.bincount(key, minlength=span * span))
        cols = [present // span, present % span]
        cols += [np.bincount(key, weights=np.asarray(w, dtype=np.float64), minlength=span * span)[present] for w in weights]
        return np.stack(cols, axis=1).astype(np.int64)
    uniq, inverse = np.unique(key, return_inverse=True)
    cols = [uniq // span, uniq % span]
    for wgt in weights:
        cols.append(np.bincount(inverse, weights=np.asarray(wgt, dtype=np.float64), minlength=len(uniq)))
    return np.stack(cols, axis=1).astype(np.int64) if len(uniq) else np.zeros((0, 2 + len(weights)), np.int64)


def majority_vote(classes: np.ndarray) -> np.ndarray:
    """Per column, the most frequent value of ``classes`` (shape (L, ...)); 0 where the top count
    is tied between different values ("unlabeled", 0, is a value like any other).

    >>> majority_vote(np.array([[1, 1, 2, 0], [1, 2, 3, 0], [4, 2, 4, 5]])).tolist()
    [1, 2, 0, 0]
    """
    classes = np.asarray(classes)
    n = len(classes)
    flat = classes.reshape(n, -1)
    votes = np.zeros(flat.shape, dtype=np.int32)
    for k in range(n):
        for m in range(n):
            votes[k] += flat[k] == flat[m]
    pick = np.argmax(votes, axis=0)
    cols = np.arange(flat.shape[1])
    winner = flat[pick, cols]
    best = votes[pick, cols]
    tied = np.zeros(flat.shape[1], dtype=bool)
    for k in range(n):
        tied |= (votes[k] == best) & (flat[k] != winner)
    return np.where(tied, 0, winner).astype(classes.dtype).reshape(classes.shape[1:])


def disagreement_map(
    seg_a: np.ndarray, seg_b: np.ndarray, lut_a: np.ndarray, lut_b: np.ndarray, unmapped: int | None = None
) -> np.ndarray:
    """Per pixel: :data:`NOT_COMPARED` (0), :data:`AGREE` (1), :data:`QUALITY` (2),
    :data:`NAMING` (3) or :data:`QUANTITY` (4), by the rules of the module docstring.

    Parameters are those of :func:`count_image` for two maps. Returns (H, W) uint8. The counts of
    this map equal :func:`count_image`'s breakdown (it is for plots; the counting never builds it).
    """
    seg_a = np.asarray(seg_a)
    seg_b = np.asarray(seg_b)
    _check_maps([seg_a, seg_b])
    lut_a = np.asarray(lut_a, dtype=np.int64)
    lut_b = np.asarray(lut_b, dtype=np.int64)
    _check_ids(seg_a.reshape(-1), lut_a, "A")
    _check_ids(seg_b.reshape(-1), lut_b, "B")
    nb = len(lut_b)
    key = seg_a.astype(np.int64) * nb + seg_b
    uniq, inverse = np.unique(key.reshape(-1), return_inverse=True)
    n = np.bincount(inverse).astype(np.float64)
    cat = _categories(uniq // nb, uniq % nb, n, lut_a, lut_b, unmapped)
    return cat[inverse].reshape(seg_a.shape)


# --------------------------------------------------------------------------- dataset level


@dataclass(frozen=True)
class Annotation:
    """One annotation: a layer of a dataset."""

    dataset: Dataset
    layer: str

    def describe(self) -> dict:
        return {"dataset": self.dataset.name, "path": str(self.dataset.path), "layer": self.layer}


def _as_dataset(d) -> Dataset:
    return d if isinstance(d, Dataset) else Dataset(d)


def _top_layers(ds: Dataset) -> list[str]:
    return [layer["name"] for layer in ds.manifest.get("layers", []) if not layer.get("parent")]


def resolve_annotations(a, b=None, layers: Sequence[str] | str | None = None) -> list[Annotation]:
    """The annotations to compare, from one dataset and its layers or two datasets.

    One dataset: ``layers`` names two or more of its layers (default: all its top-level layers,
    e.g. ``objects`` and ``reannotation``). Two datasets: ``layers`` is ``(layer of A, layer of
    B)`` or one layer for both (default ``objects``).
    """
    a = _as_dataset(a)
    if isinstance(layers, str):
        layers = [x.strip() for x in layers.split(",") if x.strip()]
    if b is None:
        names = list(layers) if layers else _top_layers(a)
        if len(names) < 2:
            raise ValueError(f"{a.path} has the top-level layer(s) {names or a.layers}; comparing needs two: "
                             "give --layers L1,L2 or a second dataset")  # fmt: skip
        out = [Annotation(a, n) for n in names]
    else:
        b = _as_dataset(b)
        names = list(layers) if layers else ["objects"]
        if len(names) == 1:
            names = names * 2
        if len(names) != 2:
            raise ValueError(f"with two datasets --layers gives one layer each (A,B), got {names}")
        out = [Annotation(a, names[0]), Annotation(b, names[1])]
    for ann in out:
        if ann.layer not in ann.dataset.layers:
            raise ValueError(f"no layer {ann.layer!r} in {ann.dataset.path}; layers: {', '.join(ann.dataset.layers)}")
    if len({(str(x.dataset.path), x.layer) for x in out}) != len(out):
        raise ValueError(f"an annotation is listed twice: {[x.layer for x in out]}")
    return out


def _images_with(ann: Annotation, split: str | None) -> pd.DataFrame:
    return ann.dataset.select_images(split, ann.layer)


def match_images(annotations: Sequence[Annotation], split: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Images every annotation has (in A's order), and those left out.

    Returns
    -------
    images : DataFrame
        A's image rows (``image_id``, ``split``, ``width``, ``height``, ...) of the compared images.
    unmatched : dict
        ``only_in_a``, ``only_in_b`` (image ids found in one annotation only), ``size_mismatch``
        (``{image_id, a, b}`` with the sizes as ``WxH``); with three or more annotations,
        ``incomplete`` (ids some annotation lacks) instead of the first two.
    """
    if split is not None and split not in set(annotations[0].dataset.images["split"]):
        raise ValueError(f"no split {split!r} in {annotations[0].dataset.path}")
    tables = [_images_with(ann, split) for ann in annotations]
    ids = [set(t["image_id"].tolist()) for t in tables]
    common = set.intersection(*ids)
    first = tables[0]
    unmatched: dict = {}
    if len(annotations) == 2:
        unmatched["only_in_a"] = sorted(ids[0] - ids[1])
        unmatched["only_in_b"] = sorted(ids[1] - ids[0])
    else:
        unmatched["incomplete"] = sorted(set.union(*ids) - common)
    sizes = [dict(zip(t["image_id"].tolist(), zip(t["width"].tolist(), t["height"].tolist()))) for t in tables]
    mismatch = []
    for image_id in sorted(common):
        s = [sz[image_id] for sz in sizes]
        if len(set(s)) > 1:
            mismatch.append({"image_id": image_id, **{f"{'abcdefghij'[k]}": f"{x[0]}x{x[1]}" for k, x in enumerate(s)}})
    unmatched["size_mismatch"] = mismatch
    bad = {m["image_id"] for m in mismatch}
    wanted = common - bad
    keep = np.fromiter((i in wanted for i in first["image_id"].tolist()), dtype=bool, count=len(first))
    return first[keep].reset_index(drop=True), unmatched


def _count_task(boundary_px: int | None, unmapped: int | None, item) -> ImageCounts:
    """Worker: decode the masks of one image and count them (module level: picklable)."""
    image_id, paths, luts = item
    maps = [read_segment_map(p, view=True) for p in paths]
    for p, m in zip(paths[1:], maps[1:]):
        if m.shape != maps[0].shape:
            raise InputError(p, f"mask is {m.shape[1]}x{m.shape[0]}, the first annotation's is "
                                f"{maps[0].shape[1]}x{maps[0].shape[0]}")  # fmt: skip
    return count_image(maps, luts, boundary_px=boundary_px, unmapped=unmapped, image_id=image_id, where=paths)


@dataclass
class ConsistencyResult:
    """Everything :func:`compare` measured; :meth:`report` gives the JSON-ready dict.

    Attributes
    ----------
    annotations : list of Annotation
    space : ClassSpace
    per_image : DataFrame
        One row per compared image: ``image_id``, ``pixels``, ``compared``, ``agree``,
        ``evaluable`` and ``agree_evaluable`` (labelled non-ignore in both), ``band_compared``,
        ``band_agree``, ``segmentation_quality``, ``naming``, ``quantity``, ``unmapped``.
    pairs : DataFrame
        Dataset-level class pairs: ``a`` and ``b`` (class indices), ``pixels``, ``band_pixels``.
    figures, per_class, boundary, breakdown, ci, ceiling, pairwise, consensus, unmatched,
    class_map, settings : dict or DataFrame
        The sections of the report (see ``docs/consistency.md``).
    """

    annotations: list
    space: ClassSpace
    per_image: pd.DataFrame
    pairs: pd.DataFrame
    figures: dict
    per_class: pd.DataFrame
    boundary: dict
    breakdown: dict
    ci: dict
    ceiling: dict
    unmatched: dict
    settings: dict
    class_map: dict = field(default_factory=dict)
    pairwise: dict | None = None
    consensus: list | None = None
    luts: dict = field(default_factory=dict, repr=False)

    def report(self, per_image: bool = True) -> dict:
        """The JSON-ready report (NaN written as null)."""
        return consistency_report(self, per_image=per_image)


def compare(
    a,
    b=None,
    *,
    layers: Sequence[str] | str | None = None,
    class_map: dict[int, int | None] | str | Path | None = None,
    split: str | None = None,
    boundary_px: int | None = DEFAULT_BOUNDARY_PX,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    bucket_rule: longtail.BucketRule = longtail.LVIS,
    unlabeled: Sequence[int] | None = None,
    workers: int | None = None,
    executor=None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> ConsistencyResult:
    """Compare two or more annotations of the same images.

    Parameters
    ----------
    a, b : Dataset or path
        One dataset (compare its ``layers``) or two (matched by image id; A is the reference).
    layers : sequence of str or "L1,L2,..."
        See :func:`resolve_annotations`.
    class_map : dict or path, optional
        B's vocabulary onto A's (see :func:`read_class_map`); only with two datasets.
    split : str, optional
        Only images of this split (in each dataset).
    boundary_px : int or None
        Half-width of the boundary band in pixels (None: no band figures).
    bootstrap : int
        Bootstrap resamples of the images for the confidence intervals (0: none).
    confidence : float
        Level of the percentile intervals.
    seed : int
        Seed of the resampling.
    bucket_rule : longtail.BucketRule
        Frequency buckets of A's classes for the ceiling (default LVIS rare/common/frequent).
    unlabeled : sequence of int, optional
        Class ids that mean "no annotation" (count as class 0); default: classes named
        ``unlabeled`` (see :func:`build_class_space`).
    workers : int, optional
        Processes (default all cores; 1 runs inline), or the number of tasks to keep in flight per
        worker slot when ``executor`` is given.
    executor : concurrent.futures.Executor, optional
        Run the per-image work there instead (a Dask ``Client.get_executor()``); results are the
        same.
    progress : callable, optional
        ``progress(done, total)`` after each image.

    Returns
    -------
    ConsistencyResult
    """
    anns = resolve_annotations(a, b, layers)
    two_datasets = len(anns) == 2 and anns[1].dataset is not anns[0].dataset
    if class_map is not None and not two_datasets:
        raise ValueError("a class map maps B's vocabulary onto A's: it needs two datasets")
    if isinstance(class_map, (str, Path)):
        map_file = str(class_map)
        class_map = read_class_map(class_map)
    else:
        map_file = None
    if boundary_px is not None and boundary_px < 0:
        raise ValueError(f"boundary_px must be >= 0, got {boundary_px}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    space, b_ids, b_index, map_info = build_class_space(
        anns[0].dataset, anns[1].dataset if two_datasets else None, class_map, unlabeled
    )
    if class_map is not None:
        map_info = {"file": map_file, **map_info}
    images, unmatched = match_images(anns, split)
    if len(images) == 0:
        raise ValueError("no image is annotated in every annotation compared; nothing to compare "
                         f"(only in A: {len(unmatched.get('only_in_a', []))}, only in B: {len(unmatched.get('only_in_b', []))})")  # fmt: skip
    ids = images["image_id"].tolist()

    def b_lookup(class_ids):
        pos = np.searchsorted(b_ids, class_ids)
        ok = (pos < len(b_ids)) & (b_ids[np.minimum(pos, len(b_ids) - 1)] == class_ids) if len(b_ids) else class_ids < 0
        if not ok.all():
            raise FormatError(f"{anns[1].dataset.path}: class id(s) {sorted(set(class_ids[~ok].tolist()))[:5]} have no row in the class table")
        return b_index[pos]

    lookups = []
    tables: dict[int, pa.Table] = {}  # one read of a dataset's segment table for all its compared layers
    shared = {id(ann.dataset) for ann in anns if sum(x.dataset is ann.dataset for x in anns) > 1}
    for k, ann in enumerate(anns):
        to_index = b_lookup if (k == 1 and two_datasets) else partial(space.index_of, where=str(ann.dataset.path))
        if id(ann.dataset) in shared and id(ann.dataset) not in tables:
            tables[id(ann.dataset)] = ann.dataset.segment_table(["image_id", "segment_id", "class_id", "layer"])
        lookups.append(ann.dataset.lookup_tables(ann.layer, ids, to_index, table=tables.get(id(ann.dataset))))
    splits = {a_k: dict(zip(a_k.dataset.images["image_id"].tolist(), a_k.dataset.images["split"].tolist())) for a_k in anns}
    roots = [str(ann.dataset.path) for ann in anns]
    items = [
        (image_id, tuple(f"{roots[k]}/{mask_relpath(ann.layer, splits[ann][image_id], image_id)}" for k, ann in enumerate(anns)),
         tuple(lk[image_id] for lk in lookups))
        for image_id in ids
    ]  # fmt: skip
    # A's frequency buckets need A's tables only: a thread reads them while the workers count
    # (the reduce would otherwise wait for them once the workers are done)
    background = ThreadPoolExecutor(1)
    buckets = background.submit(_buckets_of_a, anns[0], space, bucket_rule)
    background.shutdown(wait=False)
    fn = partial(_count_task, boundary_px, space.unmapped)
    order = {image_id: n for n, image_id in enumerate(ids)}
    results: list[ImageCounts | None] = [None] * len(items)
    for done, counts in enumerate(parallel_map(fn, items, workers=workers, executor=executor, batch_size=batch_size), 1):
        results[order[counts.image_id]] = counts
        if progress is not None:
            progress(done, len(items))
    luts = {image_id: item[2] for image_id, item in zip(ids, items)}
    return _reduce(anns, space, results, unmatched, map_info, luts, boundary_px=boundary_px, bootstrap=bootstrap,
                   confidence=confidence, seed=seed, bucket_rule=bucket_rule, split=split, buckets=buckets.result(),
                   threads=default_workers() if executor is not None or workers is None else max(1, int(workers)))  # fmt: skip


# --------------------------------------------------------------------------- figures from sums


_SCALARS = ("compared", "agree", "evaluable", "agree_evaluable", "gt", "tp_all", "kappa_n", "kappa_agree", "sym_unlabeled")
#: the per-class sums kept per image; TP, GT, PR, kA and kB follow from them (see :func:`_weighted`)
_PER_CLASS = ("sTP", "sA", "sB", "EA", "UB")


def _sums(image: np.ndarray, ca: np.ndarray, cb: np.ndarray, n: np.ndarray, n_images: int, space: ClassSpace,
          per_class: Sequence[str] = _PER_CLASS) -> dict:  # fmt: skip
    """Per-image sums every figure is a function of.

    Returns ``{"scalars": (n_images, len(_SCALARS)), "classes": the (n_images, len(per_class) K)
    per-class sums, "k": K, "names": per_class}``, columns in the order of :data:`_SCALARS` and
    ``per_class`` (K columns each, names from :data:`_PER_CLASS`). Up to :data:`_DENSE_SUMS`
    entries ``classes`` is a dense array of the non-zero columns only, whose indices are in
    ``"columns"``; above, a CSR matrix of all columns."""
    k = len(space)
    ign = space.ignore
    if space.unmapped is not None:
        keep = cb != space.unmapped
        image, ca, cb, n = image[keep], ca[keep], cb[keep], n[keep]
    n = n.astype(np.float64)
    la, lb = ca != 0, cb != 0
    ia, ib = ign[ca], ign[cb]
    same = ca == cb
    compared = la | lb
    evaluable = la & lb & ~ia & ~ib
    scored_gt = la & ~ia  # B against A: A's evaluable pixels
    sym = ~ia & ~ib
    kap = sym & compared
    masks = (compared, compared & same, evaluable, evaluable & same, scored_gt, scored_gt & same, kap, kap & same,
             sym & ~la & ~lb)  # fmt: skip
    scalars = np.stack([np.bincount(image[m], weights=n[m], minlength=n_images) for m in masks], axis=1)
    out = {"scalars": scalars, "k": k, "classes": None, "names": tuple(per_class)}
    if not per_class:
        return out
    # EA: A labels class c, B marks ignore; UB: B labels class c, A leaves unlabeled (neither ignore)
    every = {"sTP": (sym & same, ca), "sA": (sym, ca), "sB": (sym, cb), "EA": (la & ~ia & ib, ca), "UB": (~la & sym, cb)}
    defs = [every[name] for name in per_class]
    width = len(defs) * k
    rows = np.concatenate([image[m] for m, _ in defs])
    cols = np.concatenate([cls[m] + t * k for t, (m, cls) in enumerate(defs)])
    vals = np.concatenate([n[m] for m, _ in defs])
    if n_images * width <= _DENSE_SUMS:  # one bincount, and BLAS products (of the non-zero columns) in the bootstrap
        dense = np.bincount(rows * width + cols, weights=vals, minlength=n_images * width).reshape(n_images, width)
        out["columns"] = np.flatnonzero(dense.any(axis=0))
        out["classes"] = np.ascontiguousarray(dense[:, out["columns"]])
        return out
    from scipy import sparse

    out["classes"] = sparse.csr_matrix((vals, (rows, cols)), shape=(n_images, width))
    return out


def _ratio(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _nanmean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    ok = ~np.isnan(x)
    cnt = ok.sum(axis=axis)
    tot = np.where(ok, x, 0.0).sum(axis=axis)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _figures(s: dict, scored: np.ndarray, buckets: dict[str, np.ndarray] | None = None) -> dict:
    """Figures from (resampled) sums: scalars are (B,), per-class sums dense (B, K)."""
    out = {
        "pixel_agreement": _ratio(s["agree"], s["compared"]),
        "pixel_agreement_excluding_void": _ratio(s["agree_evaluable"], s["evaluable"]),
        "pixel_accuracy": _ratio(s["tp_all"], s["gt"]),
    }
    iou = _ratio(s["TP"], s["GT"] + s["PR"] - s["TP"])
    iou[:, ~scored] = np.nan
    out["miou"] = _nanmean(iou)
    out["iou"] = iou
    if "sTP" in s:
        siou = _ratio(s["sTP"], s["sA"] + s["sB"] - s["sTP"])
        siou[:, ~scored] = np.nan
        out["miou_symmetric"] = _nanmean(siou)
        out["iou_symmetric"] = siou
    if "kA" in s:
        po = _ratio(s["kappa_agree"], s["kappa_n"])
        pe = _ratio((s["kA"] * s["kB"]).sum(axis=1), np.asarray(s["kappa_n"], dtype=np.float64) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["kappa"] = np.where(pe < 1, (po - pe) / (1 - pe), np.nan)
    if buckets:
        for name, members in buckets.items():
            tp = s["TP"][:, members].sum(axis=1)
            gt = s["GT"][:, members].sum(axis=1)
            out[f"bucket:{name}:pixel_accuracy"] = _ratio(tp, gt)
            out[f"bucket:{name}:miou"] = _nanmean(iou[:, members])
    return out


def _weighted(s: dict, weights: np.ndarray) -> dict:
    """Sums under image weights (B, n_images): scalars -> (B,), per-class -> dense (B, K).

    The figures need eight per-class sums; five are resampled (:data:`_PER_CLASS`, two of them
    sparse) and the others derived, which saves most of the bootstrap's products:

    - ``TP`` (A and B agree on class c, c labelled, not ignore) is ``sTP`` without class 0;
    - ``GT`` (A's pixels of class c, c labelled, not ignore) is ``sA`` (neither side ignore)
      plus ``EA`` (B marks ignore), without class 0;
    - ``PR`` (B's pixels of class c where A is labelled, not ignore) is ``sB`` less ``UB`` (A
      unlabeled); exact for every class that is not ignore, the only ones scored;
    - ``kA`` / ``kB`` (pixels of class c in A / B among those kappa counts: neither side ignore,
      at least one labelled) are ``sA`` / ``sB`` less, in class 0, the pixels both leave
      unlabeled (``sym_unlabeled``): for a labelled class the two conditions coincide.
    """
    scalars = weights @ s["scalars"]
    out = {name: scalars[:, t] for t, name in enumerate(_SCALARS)}
    m = s["classes"]
    if m is not None:
        k = s["k"]
        if isinstance(m, np.ndarray):  # the non-zero columns only
            pc = np.zeros((len(weights), k * len(s["names"])))
            pc[:, s["columns"]] = weights @ m
        else:
            pc = np.asarray((m.T @ weights.T).T)
        for t, name in enumerate(s["names"]):
            out[name] = pc[:, t * k : (t + 1) * k]
        out["TP"] = out["sTP"].copy()
        out["TP"][:, 0] = 0
        out["GT"] = out["sA"] + out["EA"]
        out["GT"][:, 0] = 0
        out["PR"] = out["sB"] - out["UB"]
        out["kA"], out["kB"] = out["sA"].copy(), out["sB"].copy()
        out["kA"][:, 0] -= out["sym_unlabeled"]
        out["kB"][:, 0] -= out["sym_unlabeled"]
    return out


def pair_figures(pairs: np.ndarray, space: ClassSpace) -> dict:
    """Dataset-level figures of one class-pair table, rows ``(class of A, class of B, pixels,
    ...)`` (class indices of ``space``): ``pixel_agreement``, ``pixel_agreement_excluding_void``,
    ``pixel_accuracy``, ``miou``, ``miou_symmetric``, ``kappa``."""
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] < 3:
        raise ValueError(f"expected a (R, 3) or wider class-pair table, got shape {pairs.shape}")
    s = _sums(np.zeros(len(pairs), np.int64), pairs[:, 0], pairs[:, 1], pairs[:, 2], 1, space)
    f = _figures(_weighted(s, np.ones((1, 1))), space.scored)
    return {k: _float(v[0]) for k, v in f.items() if np.ndim(v) == 1}


def _float(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _ci(values: np.ndarray, confidence: float) -> list:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return [None, None]
    lo, hi = np.percentile(values, [50 * (1 - confidence), 50 * (1 + confidence)])
    return [float(lo), float(hi)]


def _buckets_of_a(ann: Annotation, space: ClassSpace, rule: longtail.BucketRule) -> tuple[np.ndarray, pd.DataFrame]:
    """Bucket name of every class index (classes A's long-tail table lacks: ``absent``)."""
    freq = longtail.class_frequencies(ann.dataset, layer=ann.layer)
    freq = freq.assign(bucket=longtail.assign_buckets(freq, rule))
    names = dict(zip(freq["class_id"].astype(np.int64), freq["bucket"]))
    bucket = np.array([names.get(int(c), longtail.ABSENT) for c in space.class_ids], dtype=object)
    return bucket, freq


def _resample(s: dict, scored: np.ndarray, bucket_members: dict, extra: dict, n_images: int, draw: np.ndarray) -> dict:
    """The figures of the bootstrap resamples ``draw`` ((B, n_images) image indices): (B,) each."""
    m = len(draw)
    flat = draw + np.arange(m)[:, None] * n_images
    weights = np.bincount(flat.ravel(), minlength=m * n_images).reshape(m, n_images).astype(np.float64)
    f = _figures(_weighted(s, weights), scored, bucket_members)
    for key, (num, den) in extra.items():
        f[key] = _ratio(weights @ num, weights @ den)
    return {key: v for key, v in f.items() if np.ndim(v) == 1}


def _reduce(anns, space, results, unmatched, map_info, luts, *, boundary_px, bootstrap, confidence, seed,
            bucket_rule, split, threads: int = 1, buckets=None) -> ConsistencyResult:  # fmt: skip
    n_images = len(results)
    ids = [r.image_id for r in results]
    img = np.concatenate([np.full(len(r.pairs), k, dtype=np.int64) for k, r in enumerate(results)])
    allp = np.concatenate([r.pairs for r in results]) if n_images else np.zeros((0, 4), np.int64)
    ca, cb, n, nband = allp[:, 0], allp[:, 1], allp[:, 2], allp[:, 3]
    s = _sums(img, ca, cb, n, n_images, space)
    sb = _sums(img, ca, cb, nband, n_images, space, per_class=())  # the same sums over band pixels
    per = {name: s["scalars"][:, t] for t, name in enumerate(_SCALARS)}
    band_per = {name: sb["scalars"][:, t] for t, name in enumerate(_SCALARS)}
    breakdown = np.stack([r.breakdown for r in results]).astype(np.float64)
    unm = np.bincount(img[cb == space.unmapped], weights=n[cb == space.unmapped], minlength=n_images) if space.unmapped is not None else np.zeros(n_images)
    per_image = pd.DataFrame({
        "image_id": ids,
        "pixels": [r.shape[0] * r.shape[1] for r in results],
        "compared": per["compared"].astype(np.int64), "agree": per["agree"].astype(np.int64),
        "evaluable": per["evaluable"].astype(np.int64), "agree_evaluable": per["agree_evaluable"].astype(np.int64),
        "band_compared": band_per["compared"].astype(np.int64), "band_agree": band_per["agree"].astype(np.int64),
        "segmentation_quality": breakdown[:, 0].astype(np.int64), "naming": breakdown[:, 1].astype(np.int64),
        "quantity": breakdown[:, 2].astype(np.int64), "unmapped": unm.astype(np.int64),
    })  # fmt: skip
    disagree = (per_image["compared"] - per_image["agree"]).to_numpy()
    if not np.array_equal(disagree, breakdown.sum(axis=1).astype(np.int64)):  # pragma: no cover - a bug if it fires
        raise AssertionError("internal error: the breakdown does not add up to the disagreement")
    bucket_of, freq = buckets if buckets is not None else _buckets_of_a(anns[0], space, bucket_rule)
    scored = space.scored
    bucket_members = {name: scored & (bucket_of == name) for name in (*bucket_rule.names, longtail.ABSENT)}
    bucket_members = {k: v for k, v in bucket_members.items() if v.any()}

    ones = np.ones((1, n_images))
    totals_w = _weighted(s, ones)
    point = _figures(totals_w, scored, bucket_members)
    extra = {
        "segmentation_quality": (breakdown[:, 0], per["compared"]), "naming": (breakdown[:, 1], per["compared"]),
        "quantity": (breakdown[:, 2], per["compared"]),
        "band_agreement": (band_per["agree"], band_per["compared"]),
        "interior_agreement": (per["agree"] - band_per["agree"], per["compared"] - band_per["compared"]),
    }  # fmt: skip
    for key, (num, den) in extra.items():
        point[key] = _ratio(ones @ num, ones @ den)
    ci: dict = {"level": confidence, "bootstrap": int(bootstrap), "seed": int(seed), "unit": "images"}
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        samples: dict[str, list] = {}
        chunk = max(1, min(bootstrap, 2_000_000 // max(1, n_images), 4_000_000 // (8 * len(space)), 250))
        sizes = [min(chunk, bootstrap - start) for start in range(0, bootstrap, chunk)]
        draws = [rng.integers(0, n_images, size=(m, n_images)) for m in sizes]  # drawn in order: results do not depend on threads
        resample = partial(_resample, s, scored, bucket_members, extra, n_images)
        # sparse products run on threads (scipy releases the GIL); dense ones are BLAS's, which has its own
        if threads > 1 and len(draws) > 1 and not isinstance(s["classes"], np.ndarray):
            with ThreadPoolExecutor(min(threads, len(draws))) as pool:
                parts_f = list(pool.map(resample, draws))
        else:
            parts_f = [resample(d) for d in draws]
        for f in parts_f:
            for key, v in f.items():
                samples.setdefault(key, []).append(v)
        for key, parts in samples.items():
            ci[key] = _ci(np.concatenate(parts), confidence)
    bucket_ci = {k: ci.pop(k) for k in [k for k in ci if k.startswith("bucket:")]}

    scalar_keys = ("pixel_agreement", "pixel_agreement_excluding_void", "pixel_accuracy", "miou", "miou_symmetric", "kappa")
    figures = {k: _float(point[k][0]) for k in scalar_keys}
    totals = {c: int(per_image[c].to_numpy().sum()) for c in ("pixels", "compared", "agree", "evaluable", "agree_evaluable", "unmapped")}
    figures["pixels"] = dict(totals)

    pixels_a = totals_w["GT"][0]  # A's evaluable pixels per class
    pixels_b = totals_w["PR"][0]
    keep = np.flatnonzero(scored)
    per_class = pd.DataFrame({
        "class_id": space.class_ids[keep], "name": [space.names[i] for i in keep],
        "pixels_a": pixels_a[keep].astype(np.int64), "pixels_b": pixels_b[keep].astype(np.int64),
        "iou": point["iou"][0, keep], "iou_symmetric": point["iou_symmetric"][0, keep],
        "bucket": bucket_of[keep],
    })  # fmt: skip
    compared_total = max(1, int(totals["compared"]))
    band_total = int(per_image["band_compared"].sum())
    boundary = {}
    if boundary_px is not None:
        boundary = {
            "k": int(boundary_px),
            "band": {"pixels": band_total, "share": band_total / compared_total,
                     "agreement": _float(point["band_agreement"][0])},
            "interior": {"pixels": int(totals["compared"]) - band_total,
                         "share": (int(totals["compared"]) - band_total) / compared_total,
                         "agreement": _float(point["interior_agreement"][0])},
        }  # fmt: skip
    counts = {c: int(per_image[c].to_numpy().sum()) for c in CATEGORIES}
    breakdown_out = {c: counts[c] / compared_total if totals["compared"] else 0.0 for c in CATEGORIES}
    breakdown_out["pixels"] = dict(counts)
    breakdown_out["disagreement"] = sum(breakdown_out[c] for c in CATEGORIES)

    ceiling = {
        "format": CEILING_FORMAT,
        "format_version": CEILING_VERSION,
        "reference": anns[0].describe(),
        "annotation": anns[1].describe(),
        "images": n_images,
        "split": split,
        "conventions": "the annotation scored as a prediction against the reference: pixels the reference leaves "
                       "unlabeled or marks ignore are left out; elsewhere a pixel the annotation leaves unlabeled, "
                       "marks ignore or names otherwise is wrong. IoU per class summed over all images, classes "
                       "absent from both are null and left out of the means.",
        "pixel_accuracy": figures["pixel_accuracy"],
        "miou": figures["miou"],
        "ci": {"level": confidence, "bootstrap": int(bootstrap), "seed": int(seed),
               "pixel_accuracy": ci.get("pixel_accuracy"), "miou": ci.get("miou")},
        "buckets": {
            "rule": bucket_rule.description,
            "by": bucket_rule.by,
            "order": [b for b in (*bucket_rule.names, longtail.ABSENT) if b in bucket_members],
            "values": {
                name: {
                    "classes": int(members.sum()),
                    "classes_scored": int(np.count_nonzero(~np.isnan(point["iou"][0, members]))),
                    "pixel_accuracy": _float(point[f"bucket:{name}:pixel_accuracy"][0]),
                    "miou": _float(point[f"bucket:{name}:miou"][0]),
                    "ci": {"pixel_accuracy": bucket_ci.get(f"bucket:{name}:pixel_accuracy"),
                           "miou": bucket_ci.get(f"bucket:{name}:miou")},
                }
                for name, members in bucket_members.items()
            },
        },
        "classes": [
            {"class_id": c, "name": name, "bucket": bucket, "pixels": px, "iou": _float(iou)}
            for c, name, bucket, px, iou in zip(per_class["class_id"].tolist(), per_class["name"].tolist(),
                                                per_class["bucket"].tolist(), per_class["pixels_a"].tolist(),
                                                per_class["iou"].tolist())
        ],
    }  # fmt: skip
    pairs = pd.DataFrame(_class_pairs(ca, cb, [n, nband]), columns=["a", "b", "pixels", "band_pixels"])

    pairwise = consensus = None
    if len(anns) > 2:
        labels = [_label(x) for x in anns]
        nl = len(anns)
        mats: dict[str, list] = {k: [[None] * nl for _ in range(nl)] for k in
                                 ("pixel_agreement", "pixel_agreement_excluding_void", "miou", "miou_symmetric")}  # fmt: skip
        p = 0
        for l in range(nl):
            for m in range(l + 1, nl):
                table = np.concatenate([r.pairwise[p] for r in results])
                fwd = pair_figures(table, space)
                bwd = pair_figures(table[:, [1, 0, 2]], space)
                for key in ("pixel_agreement", "pixel_agreement_excluding_void", "miou_symmetric"):
                    mats[key][l][m] = mats[key][m][l] = fwd[key]
                mats["miou"][l][m] = fwd["miou"]  # row: reference, column: scored against it
                mats["miou"][m][l] = bwd["miou"]
                p += 1
            for key in mats:
                mats[key][l][l] = 1.0
        pairwise = {"annotations": labels, **mats}
        consensus = []
        for l in range(nl):
            table = np.concatenate([r.consensus[l] for r in results])
            f = pair_figures(table[:, [1, 0, 2]], space)  # the annotation scored against the consensus
            consensus.append({"annotation": labels[l], "pixel_agreement": f["pixel_agreement"],
                              "pixel_agreement_excluding_void": f["pixel_agreement_excluding_void"],
                              "miou": f["miou"]})  # fmt: skip
    settings = {"boundary_px": boundary_px, "bootstrap": int(bootstrap), "confidence": confidence, "seed": int(seed),
                "split": split, "bucket_rule": bucket_rule.description,
                "unlabeled_classes": [int(c) for c in space.unlabeled]}  # fmt: skip
    return ConsistencyResult(
        annotations=list(anns), space=space, per_image=per_image, pairs=pairs, figures=figures, per_class=per_class,
        boundary=boundary, breakdown=breakdown_out, ci=ci, ceiling=ceiling, unmatched=unmatched, settings=settings,
        class_map=map_info, pairwise=pairwise, consensus=consensus, luts=luts,
    )  # fmt: skip


def _label(ann: Annotation) -> str:
    return ann.layer


def _clean(x):
    """NaN -> None, numpy scalars -> Python, recursively."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def consistency_report(result: ConsistencyResult, per_image: bool = True) -> dict:
    """Everything ``segdata analyze consistency --json`` prints, as one JSON-ready dict (schema in
    ``docs/consistency.md``)."""
    f = result.figures
    anns = result.annotations
    report = {
        "a": anns[0].describe(),
        "b": anns[1].describe(),
        "images": int(len(result.per_image)),
        "unmatched": result.unmatched,
        "pixels": f["pixels"],
        "pixel_agreement": f["pixel_agreement"],
        "pixel_agreement_excluding_void": f["pixel_agreement_excluding_void"],
        "pixel_accuracy": f["pixel_accuracy"],
        "miou": f["miou"],
        "miou_symmetric": f["miou_symmetric"],
        "kappa": f["kappa"],
        "per_class": [
            {"class_id": int(r.class_id), "name": r.name, "pixels_a": int(r.pixels_a), "pixels_b": int(r.pixels_b),
             "iou": r.iou, "iou_symmetric": r.iou_symmetric, "bucket": r.bucket}
            for r in result.per_class.itertuples(index=False)
        ],
        "boundary": result.boundary,
        "breakdown": result.breakdown,
        "ci": result.ci,
        "ceiling": result.ceiling,
        "settings": result.settings,
    }  # fmt: skip
    if len(anns) > 2:
        report["annotations"] = [x.describe() for x in anns]
        report["pairwise"] = result.pairwise
        report["consensus"] = result.consensus
    if result.class_map:
        report["class_map"] = result.class_map
    if per_image:
        pi = result.per_image
        report["per_image"] = [
            {"image_id": r.image_id, "compared": int(r.compared),
             "pixel_agreement": r.agree / r.compared if r.compared else None,
             "pixel_agreement_excluding_void": r.agree_evaluable / r.evaluable if r.evaluable else None,
             "band_agreement": r.band_agree / r.band_compared if r.band_compared else None,
             "interior_agreement": (r.agree - r.band_agree) / (r.compared - r.band_compared)
             if r.compared > r.band_compared else None,
             **{c: getattr(r, c) / r.compared if r.compared else 0.0 for c in CATEGORIES}}
            for r in pi.itertuples(index=False)
        ]  # fmt: skip
    return _clean(report)


# --------------------------------------------------------------------------- the ceiling file


@dataclass(frozen=True)
class Ceiling:
    """The human ceiling read back from a ceiling file (:func:`read_ceiling`).

    Attributes
    ----------
    pixel_accuracy, miou : float or None
        The annotation's pixel accuracy and mIoU against the reference (fractions).
    images : int
    reference, annotation : dict
        ``dataset``, ``path``, ``layer`` of each.
    buckets : dict
        ``{bucket name: {"classes", "classes_scored", "pixel_accuracy", "miou", "ci"}}`` in the
        rule's order (``rare``, ``common``, ``frequent``, ``absent`` with the LVIS rule).
    bucket_rule : str
    classes : DataFrame
        ``class_id``, ``name``, ``bucket``, ``pixels`` (reference pixels), ``iou`` (NaN when absent).
    ci : dict
        ``level``, ``bootstrap``, ``seed``, ``pixel_accuracy`` and ``miou`` as ``[low, high]``.
    path : str
    """

    pixel_accuracy: float | None
    miou: float | None
    images: int
    reference: dict
    annotation: dict
    buckets: dict
    bucket_rule: str
    classes: pd.DataFrame
    ci: dict
    path: str = ""


def write_ceiling(path: str | Path, result: ConsistencyResult | dict) -> Path:
    """Write the ceiling (see ``docs/consistency.md``, "The ceiling file") as JSON; returns the path."""
    path = Path(path)
    body = result.ceiling if isinstance(result, ConsistencyResult) else result.get("ceiling", result)
    path.write_text(json.dumps(_clean(body), indent=1) + "\n", encoding="utf-8")
    return path


def read_ceiling(path: str | Path) -> Ceiling:
    """Read a ceiling file written by :func:`write_ceiling` (``--ceiling-out``).

    Raises
    ------
    InputError
        When the file is missing, not JSON, not a ceiling file, or of another format version.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "ceiling file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CEILING_FORMAT:
        raise InputError(path, f"not a segdata ceiling file (format {data.get('format') if isinstance(data, dict) else None!r}, "
                               f"expected {CEILING_FORMAT!r})", "write one with `segdata analyze consistency ... --ceiling-out FILE`")  # fmt: skip
    if data.get("format_version") != CEILING_VERSION:
        raise InputError(path, f"ceiling format version {data.get('format_version')}, this segdata reads {CEILING_VERSION}")
    missing = [k for k in ("pixel_accuracy", "miou", "images", "reference", "annotation", "buckets", "classes") if k not in data]
    if missing:
        raise InputError(path, f"ceiling file lacks {missing}")
    buckets = data["buckets"]
    values = buckets.get("values", {})
    order = buckets.get("order", list(values))
    classes = pd.DataFrame(data["classes"], columns=["class_id", "name", "bucket", "pixels", "iou"])
    classes["iou"] = pd.to_numeric(classes["iou"], errors="coerce").astype(np.float64)
    return Ceiling(
        pixel_accuracy=data["pixel_accuracy"], miou=data["miou"], images=int(data["images"]),
        reference=data["reference"], annotation=data["annotation"],
        buckets={name: values[name] for name in order if name in values}, bucket_rule=buckets.get("rule", ""),
        classes=classes, ci=data.get("ci", {}), path=str(path),
    )  # fmt: skip


# --------------------------------------------------------------------------- plots

_CATEGORY_COLORS = {AGREE: (0.82, 0.82, 0.82), QUALITY: (0.95, 0.65, 0.1), NAMING: (0.85, 0.1, 0.55), QUANTITY: (0.15, 0.45, 0.9)}


def _hex(color: str) -> tuple[float, float, float]:
    c = color.lstrip("#")
    try:
        return tuple(int(c[k : k + 2], 16) / 255 for k in (0, 2, 4))  # type: ignore[return-value]
    except ValueError:
        return (0.5, 0.5, 0.5)


def plot_consistency(result: ConsistencyResult, directory: str | Path, top: int = 3, title: str = "") -> list[Path]:
    """Plots: for the ``top`` images with the most disagreement (fraction of compared pixels),
    the image (when its file exists), both annotations in class colours and the disagreement
    coloured by category; a bar chart of the breakdown; per-class IoU (B against A) against the
    class's pixels in A. PNG (and SVG for the charts). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig, name, svg=True):
        for ext in ("png", "svg") if svg else ("png",):
            path = directory / f"{name}.{ext}"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            written.append(path)
        plt.close(fig)

    space = result.space
    palette = np.array([_hex(c) for c in space.colors])
    a, b = result.annotations[:2]
    pi = result.per_image
    frac = (pi["compared"] - pi["agree"]) / pi["compared"].clip(lower=1)
    worst = pi.assign(frac=frac).sort_values(["frac", "image_id"], ascending=[False, True]).head(top)
    for r in worst.itertuples(index=False):
        if r.frac <= 0:
            continue
        seg_a = a.dataset.segment_map(r.image_id, a.layer)
        seg_b = b.dataset.segment_map(r.image_id, b.layer)
        lut_a, lut_b = result.luts[r.image_id][:2]
        cat = disagreement_map(seg_a, seg_b, lut_a, lut_b, space.unmapped)
        photo = None
        image_path = a.dataset.image_path(r.image_id)
        if image_path is not None and image_path.is_file():
            from PIL import Image

            try:
                with Image.open(image_path) as im:
                    photo = np.asarray(im.convert("RGB"))
            except OSError:
                photo = None
            if photo is not None and photo.shape[:2] != seg_a.shape:
                photo = None
        panels = ([("image", photo)] if photo is not None else []) + [
            (f"A: {a.layer}", palette[lut_a[seg_a]]), (f"B: {b.layer}", palette[lut_b[seg_b]])]
        overlay = np.zeros(cat.shape + (3,))
        base = (photo / 255.0 * 0.5 + 0.25) if photo is not None else np.full(cat.shape + (3,), 0.35)
        overlay[:] = base
        for code, color in _CATEGORY_COLORS.items():
            if code != AGREE:
                overlay[cat == code] = color
        panels.append(("disagreement", overlay))
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2 * cat.shape[0] / max(cat.shape[1], 1) + 0.8))
        for ax, (name, arr) in zip(np.atleast_1d(axes), panels):
            ax.imshow(arr, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        from matplotlib.patches import Patch

        handles = [Patch(color=_CATEGORY_COLORS[c], label=l) for c, l in
                   ((QUALITY, "segmentation quality"), (NAMING, "naming"), (QUANTITY, "quantity"))]  # fmt: skip
        fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8)
        fig.suptitle(f"{r.image_id}: {r.frac:.1%} of compared pixels disagree", fontsize=10)
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in r.image_id)
        save(fig, f"disagreement_{safe}", svg=False)

    bd = result.breakdown
    fig, ax = plt.subplots(figsize=(5.5, 4))
    names = ["segmentation\nquality", "naming", "quantity"]
    values = [bd[c] * 100 for c in CATEGORIES]
    ax.bar(names, values, color=[_CATEGORY_COLORS[QUALITY], _CATEGORY_COLORS[NAMING], _CATEGORY_COLORS[QUANTITY]])
    for i, v in enumerate(values):
        ax.annotate(f"{v:.2f}%", (i, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("% of compared pixels")
    agreement = result.figures["pixel_agreement"]
    ax.set_title(f"disagreement breakdown {title} (agreement {agreement:.1%})".strip() if agreement is not None else "disagreement breakdown")
    save(fig, "breakdown")

    pc = result.per_class[~result.per_class["iou"].isna() & (result.per_class["pixels_a"] > 0)]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if len(pc):
        colors = {"rare": "tab:red", "common": "tab:orange", "frequent": "tab:green"}
        for bucket, group in pc.groupby("bucket"):
            ax.scatter(group["pixels_a"], group["iou"], s=10, color=colors.get(bucket, "tab:gray"), label=bucket)
        ax.set_xscale("log")
        ax.legend(fontsize=8, title="bucket (A)")
    ax.set_xlabel("pixels of the class in A")
    ax.set_ylabel("IoU of B against A")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"per-class agreement against frequency {title}".strip())
    save(fig, "class_iou_vs_frequency")
    return written

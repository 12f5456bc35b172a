"""Per-image counting: class pairs, boundary-band pixels and the breakdown of one image.

Two backends count the first two annotations of an image and give the same :class:`ImageCounts`:

- ``"native"``: the C extension ``segdata._runs`` (``count_pair``), one sweep over the rows of
  both maps, the segment pairs counted in a dense table while each row is in cache. It takes
  uint8/uint16 maps (rows may be strided views, 16-bit values in either byte order) and up to
  :data:`_DENSE_PAIRS` segment pairs. The default wherever it applies.
- ``"numpy"``: the reference, written to be read: one table of the (segment of A, segment of B)
  pairs present (:func:`pair_table`), the breakdown rules once on that table
  (:func:`categorize`), the band as a dilation of the boundary pixels (:func:`boundary_band`).
  Any integer maps, any number of segments.

With three or more annotations, the pairwise class tables and the majority-vote consensus are
counted per pixel with numpy on top of either backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segdata.errors import InputError

try:  # the C extension (setup.py); the numpy backend does the same without it
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
#: the ADE20K re-annotation study (Zhou et al. 2017): agreement and the three disagreement shares
ADE20K_REFERENCE = {"pixel_agreement": 0.824, "segmentation_quality": 0.057, "naming": 0.060, "quantity": 0.059}
BACKENDS = ("auto", "native", "numpy")
_DENSE_PAIRS = 1 << 18  # (segments of A + 1) * (segments of B + 1) up to which the C kernel counts (dense table)


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


def _check_maps(maps: Sequence[np.ndarray]) -> None:
    if not maps:
        raise ValueError("no segment map given")
    for m in maps:
        if m.ndim != 2 or m.dtype.kind not in "ui":
            raise ValueError(f"expected (H, W) integer segment maps, got {m.dtype} of shape {m.shape}")
        if m.shape != maps[0].shape:
            raise ValueError(f"segment maps differ in shape: {maps[0].shape} vs {m.shape}")


def _check_ids(seg: np.ndarray, lut: np.ndarray, where) -> None:
    low, top = int(seg.min(initial=0)), int(seg.max(initial=0))
    if top >= len(lut) or low < 0:
        raise InputError(
            where,
            f"segment id {top if top >= len(lut) else low} has no row in segments.parquet",
            "run `segdata validate` on the dataset",
        )


# --------------------------------------------------------------------------- the numpy reference


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
    from scipy import ndimage

    maps = [np.asarray(m) for m in maps]
    _check_maps(maps)
    if boundary_px < 0:
        raise ValueError(f"boundary_px must be >= 0, got {boundary_px}")
    edge = np.zeros(maps[0].shape, dtype=bool)
    for m in maps:
        across = m[:, 1:] != m[:, :-1]  # pixel and its right neighbour differ: both are boundary pixels
        edge[:, 1:] |= across
        edge[:, :-1] |= across
        down = m[1:] != m[:-1]
        edge[1:] |= down
        edge[:-1] |= down
    if boundary_px == 0 or edge.size == 0:
        return edge
    # the (2K+1) x (2K+1) square: a separable maximum (rows, then columns)
    return ndimage.maximum_filter(edge, size=2 * int(boundary_px) + 1, mode="constant", cval=False)


def pair_table(seg_a: np.ndarray, seg_b: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (segment of A, segment of B) pairs of two maps.

    Returns ``(i, j, n, pixel_pair)``: the segment ids of A and of B of each pair present
    (sorted by ``(i, j)``), its pixels (int64), and per pixel (flat) the row of its pair.
    ``nb`` is one more than the largest segment id of B.
    """
    key = seg_a.astype(np.int64).reshape(-1) * nb + seg_b.reshape(-1)
    keys, pixel_pair, n = np.unique(key, return_inverse=True, return_counts=True)
    i, j = np.divmod(keys, nb)
    return i, j, n.astype(np.int64), pixel_pair.reshape(-1)


def _largest_overlap(owner: np.ndarray, other: np.ndarray, n: np.ndarray, size: int) -> np.ndarray:
    """Per owner segment (0..size-1), the ``other`` segment it overlaps most among the given
    pairs (ties: the lower id); -1 when it has none."""
    best = np.full(size, -1, dtype=np.int64)
    order = np.lexsort((other, -n, owner))  # by owner, then largest overlap, then lower id
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]] if len(order) else order
    best[owner[first]] = other[first]
    return best


def categorize(i, j, n, class_a, class_b, unmapped: int | None = None) -> np.ndarray:
    """The category of every (segment ``i`` of A, segment ``j`` of B) pair of one image.

    Parameters
    ----------
    i, j : ndarray of int
        Segment ids of the pairs present (each pair once), e.g. from :func:`pair_table`.
    n : ndarray of int
        Pixels of each pair.
    class_a, class_b : ndarray of int
        Per segment id, its class index (0 = unlabeled); ``unmapped`` is B's class index left
        out of every figure (None: none).

    Returns
    -------
    ndarray of uint8
        Per pair: NOT_COMPARED, AGREE, QUALITY (segmentation quality), NAMING or QUANTITY, by the
        rules of the package docstring (and ``docs/consistency.md``):

        - one side unlabeled: QUANTITY when the labelled side's segment is more than
          MISSING_FRACTION unlabeled in the other annotation and has no counterpart there, else
          QUALITY;
        - both labelled, classes differ: NAMING when the IoU of the two segments is at least
          NAMING_IOU or they are counterparts (each the other's largest overlap among the other
          annotation's labelled segments, ties: the lower id), else QUALITY.
    """
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    na, nb = len(class_a), len(class_b)
    ca, cb = np.asarray(class_a)[i], np.asarray(class_b)[j]
    a_unlabeled, b_unlabeled = ca == 0, cb == 0
    b_left_out = cb == unmapped if unmapped is not None else np.zeros(len(i), dtype=bool)
    compared = ~(a_unlabeled & b_unlabeled) & ~b_left_out
    both_labelled = ~a_unlabeled & ~b_unlabeled & ~b_left_out

    area_a = np.bincount(i, weights=n, minlength=na)
    area_b = np.bincount(j, weights=n, minlength=nb)
    # counterparts: each the other's largest overlap among the other side's labelled segments
    best_b = _largest_overlap(i[both_labelled], j[both_labelled], n[both_labelled], na)
    best_a = _largest_overlap(j[both_labelled], i[both_labelled], n[both_labelled], nb)
    counterpart = both_labelled & (best_b[i] == j) & (best_a[j] == i)
    a_has_counterpart = np.bincount(i[counterpart], minlength=na) > 0
    b_has_counterpart = np.bincount(j[counterpart], minlength=nb) > 0
    # missing objects: mostly unlabeled on the other side, and no counterpart there
    a_missing_in_b = np.bincount(i[b_unlabeled], weights=n[b_unlabeled], minlength=na) > MISSING_FRACTION * area_a
    b_missing_in_a = np.bincount(j[a_unlabeled], weights=n[a_unlabeled], minlength=nb) > MISSING_FRACTION * area_b
    missing = (b_unlabeled & a_missing_in_b[i] & ~a_has_counterpart[i]) | (
        a_unlabeled & b_missing_in_a[j] & ~b_has_counterpart[j]
    )
    iou = n / (area_a[i] + area_b[j] - n)

    cat = np.full(len(i), NOT_COMPARED, dtype=np.uint8)
    agree = compared & (ca == cb)
    disagree = compared & ~agree
    cat[agree] = AGREE
    cat[disagree] = QUALITY
    cat[disagree & ~both_labelled & missing] = QUANTITY
    cat[disagree & both_labelled & ((iou >= NAMING_IOU) | counterpart)] = NAMING
    return cat


def _count_pair_numpy(seg_a, seg_b, lut_a, lut_b, boundary_px, unmapped, where) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, breakdown) of two maps by the numpy reference (see :func:`count_image`)."""
    _check_ids(seg_a, lut_a, where[0])
    _check_ids(seg_b, lut_b, where[1])
    i, j, n, pixel_pair = pair_table(seg_a, seg_b, len(lut_b))
    if boundary_px is None:
        n_band = np.zeros(len(n), dtype=np.int64)
    else:
        band = boundary_band([seg_a, seg_b], boundary_px).reshape(-1)
        n_band = np.bincount(pixel_pair[band], minlength=len(n))
    cat = categorize(i, j, n, lut_a, lut_b, unmapped)
    breakdown = np.bincount(cat, weights=n, minlength=5)[[QUALITY, NAMING, QUANTITY]].astype(np.int64)
    return _class_pairs(lut_a[i], lut_b[j], [n, n_band]), breakdown


# --------------------------------------------------------------------------- the C kernel


def _native_refusal(maps: Sequence[np.ndarray], luts: Sequence[np.ndarray]) -> str | None:
    """Why the C kernel cannot count the first two maps (None when it can)."""
    if _runs_ext is None:
        return "the segdata._runs extension was not compiled"
    if any(m.dtype.kind != "u" or m.dtype.itemsize > 2 for m in maps[:2]):
        return f"it takes uint8/uint16 maps, got {maps[0].dtype} and {maps[1].dtype}"
    if not 0 < len(luts[0]) * len(luts[1]) <= _DENSE_PAIRS:
        return f"it counts up to {_DENSE_PAIRS} segment pairs, got {len(luts[0])} x {len(luts[1])}"
    return None


def _count_pair_native(seg_a, seg_b, lut_a, lut_b, boundary_px, unmapped, where) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, breakdown) of two maps by the C extension (``segdata._runs.count_pair``): the same
    rules in one pass. The maps may be strided views (the rows of an inflated PNG, see
    :func:`segdata.maskio.read_segment_map` with ``view=True``) and 16-bit maps of either byte order."""
    if seg_a.dtype.itemsize != seg_b.dtype.itemsize:  # the kernel reads both maps with one element size
        seg_a, seg_b = (np.asarray(m, dtype=np.uint16) for m in (seg_a, seg_b))
    k = -1 if boundary_px is None else int(boundary_px)
    try:
        raw, breakdown = _runs_ext.count_pair(
            seg_a,
            seg_b,
            np.ascontiguousarray(lut_a, dtype=np.int64),
            np.ascontiguousarray(lut_b, dtype=np.int64),
            k,
            -1 if unmapped is None else int(unmapped),
            MISSING_FRACTION,
            NAMING_IOU,
        )
    except IndexError as exc:  # "<map> <segment id>": an id without a segments.parquet row
        which, sid = (int(x) for x in str(exc).split())
        raise InputError(
            where[which], f"segment id {sid} has no row in segments.parquet", "run `segdata validate` on the dataset"
        ) from None
    return np.frombuffer(raw, dtype=np.int64).reshape(-1, 4), np.array(breakdown, dtype=np.int64)


# --------------------------------------------------------------------------- one image


def count_image(
    maps: Sequence[np.ndarray],
    luts: Sequence[np.ndarray],
    *,
    boundary_px: int | None = DEFAULT_BOUNDARY_PX,
    unmapped: int | None = None,
    image_id: str = "",
    where: Sequence = (),
    backend: str = "auto",
) -> ImageCounts:
    """Count one image: class pairs, band pixels and the breakdown.

    Parameters
    ----------
    maps : sequence of ndarray of int, shape (H, W)
        Segment-id maps of the same image, A first (0 = no annotation).
    luts : sequence of ndarray of int
        Per map, ``lut[segment_id]`` = class index in the :class:`ClassSpace` (0 = unlabeled).
    boundary_px : int or None
        Half-width K of the boundary band; None skips the band (its counts are 0).
    unmapped : int or None
        The class index of unmapped B classes (left out of the breakdown).
    where : sequence
        Per map, what to name in an error (the mask path).
    backend : {"auto", "native", "numpy"}
        Who counts the first two maps: the C extension, the numpy reference, or ("auto") the C
        extension wherever it applies (built; uint8/uint16 maps; up to ``_DENSE_PAIRS`` segment
        pairs). "native" raises ``ValueError`` saying why when it does not apply.

    Returns
    -------
    ImageCounts

    Raises
    ------
    InputError
        When a segment id has no lookup entry (naming the map's ``where``).

    Examples
    --------
    >>> a = np.array([[1, 1, 2, 2]], np.uint8)
    >>> lut = np.array([0, 1, 2])
    >>> c = count_image([a, a], [lut, lut], boundary_px=0)  # band: the two pixels at the edge
    >>> c.pairs.tolist(), c.breakdown.tolist()
    ([[1, 1, 2, 1], [2, 2, 2, 1]], [0, 0, 0])
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
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
        return ImageCounts(image_id, (h, w), np.zeros((0, 4), dtype=np.int64), np.zeros(3, np.int64))
    refusal = _native_refusal(maps, luts) if backend != "numpy" else "numpy was asked for"
    if backend == "native" and refusal is not None:
        raise ValueError(f"the native backend cannot count these maps: {refusal}")
    count_pair = _count_pair_native if refusal is None else _count_pair_numpy
    pairs, breakdown = count_pair(maps[0], maps[1], luts[0], luts[1], boundary_px, unmapped, where[:2])
    pairwise, consensus = (), ()
    if len(maps) > 2:
        for m, lut, wh in zip(maps[2:], luts[2:], where[2:]):
            _check_ids(m, lut, wh)
        classes = [lut[m].reshape(-1) for lut, m in zip(luts, maps)]
        ones = [np.ones(h * w)]
        pairwise = tuple(
            _class_pairs(classes[l], classes[m], ones) for l in range(len(maps)) for m in range(l + 1, len(maps))
        )
        vote = majority_vote(np.stack(classes))
        consensus = tuple(_class_pairs(c, vote, ones) for c in classes)
    return ImageCounts(image_id, (h, w), pairs, breakdown, pairwise, consensus)


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
        cols += [
            np.bincount(key, weights=np.asarray(w, dtype=np.float64), minlength=span * span)[present] for w in weights
        ]
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
    :data:`NAMING` (3) or :data:`QUANTITY` (4), by the rules of :func:`categorize`.

    Parameters are those of :func:`count_image` for two maps. Returns (H, W) uint8. The counts of
    this map equal :func:`count_image`'s breakdown (it is for plots; the counting never builds it).
    """
    seg_a = np.asarray(seg_a)
    seg_b = np.asarray(seg_b)
    _check_maps([seg_a, seg_b])
    lut_a = np.asarray(lut_a, dtype=np.int64)
    lut_b = np.asarray(lut_b, dtype=np.int64)
    _check_ids(seg_a, lut_a, "A")
    _check_ids(seg_b, lut_b, "B")
    i, j, n, pixel_pair = pair_table(seg_a, seg_b, len(lut_b))
    return categorize(i, j, n, lut_a, lut_b, unmapped)[pixel_pair].reshape(seg_a.shape)


# --------------------------------------------------------------------------- objects of class regions


def split_regions(seg: np.ndarray, lut: np.ndarray, whole: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Make every object of a segment map a segment of its own, for the breakdown.

    A segment flagged ``whole`` (an instance: ``is_instance`` true in the segment table) is one
    object, even in pieces. Any other segment is a class region (SceneParsing, VOC class maps,
    Cityscapes stuff), and each of its connected components (8-connectivity, as
    :mod:`segdata.analyses.small_objects` counts objects) becomes a segment of its own with the
    region's class. Segment 0 (no annotation) stays as it is.

    Parameters
    ----------
    seg : ndarray of int, shape (H, W)
        Segment-id map.
    lut : ndarray of int, shape (S,)
        ``lut[segment_id]`` = class index.
    whole : ndarray of bool, shape (S,), or None
        Per segment id, whether it is one object as it is (None: every segment is).

    Returns
    -------
    seg, lut
        The map (uint16 when its ids fit, else int32) and its lookup table: whole segments keep
        their id; component ``c`` (1-based, in raster order of its first pixel) of the split
        segments gets the id ``S - 1 + c``. Without a segment to split, the inputs unchanged.
        Pixels never change class, and the boundary band (on segment ids) stays the same: two
        4-neighbours of one segment lie in one component.

    Examples
    --------
    >>> seg = np.array([[1, 0, 1, 2], [1, 0, 0, 2]], np.uint8)
    >>> new, lut = split_regions(seg, np.array([0, 5, 6]), np.array([True, False, True]))
    >>> new.tolist(), lut.tolist()
    ([[3, 0, 4, 2], [3, 0, 0, 2]], [0, 5, 6, 5, 5])
    """
    seg = np.asarray(seg)
    lut = np.asarray(lut)
    if whole is None:
        return seg, lut
    known = min(len(whole), len(lut))  # ids past the lookup table stay as they are (count_image names them)
    split = np.zeros(max(len(lut), int(seg.max(initial=0)) + 1), dtype=bool)
    split[:known] = ~np.asarray(whole[:known], dtype=bool)
    split[0] = False
    if not split.any():
        return seg, lut
    regions = np.where(split[seg], seg, 0)
    if not regions.any():
        return seg, lut
    from skimage.measure import label

    components = label(regions, background=0, connectivity=2)  # neighbours with the same id: one component
    count = int(components.max())
    segment_of = np.zeros(count + 1, dtype=np.int64)
    segment_of[components.reshape(-1)] = regions.reshape(-1)
    new_lut = np.concatenate([lut, lut[segment_of[1:]]])
    dtype = np.uint16 if len(new_lut) <= 1 << 16 else np.int32
    out = np.where(components > 0, components.astype(np.int64) + (len(lut) - 1), seg).astype(dtype)
    return out, new_lut

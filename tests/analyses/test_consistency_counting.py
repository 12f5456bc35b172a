"""Annotation consistency, one image: both backends of count_image against brute force and
against each other.

- the boundary band against a chessboard distance transform of the boundary pixels;
- class pairs and band pixels against a per-pixel loop;
- the C kernel (``segdata._runs``: ``count_pair`` and ``joint_runs``) against the numpy reference
  on many random and generated pairs; the per-pixel category map against the counts;
- class regions split into connected components (the objects of the breakdown).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segdata.analyses import consistency as cons
from segdata.errors import InputError

try:
    from segdata import _runs as runs_ext
except ImportError:  # pragma: no cover - the extension was not compiled
    runs_ext = None


def need_native():
    """Skip (never pass vacuously) where the C extension is missing: comparing the numpy
    backend with itself would prove nothing."""
    if runs_ext is None:
        pytest.skip("the segdata._runs extension was not compiled: there is no native backend to compare with numpy")


def brute_band(maps, k):
    """Boundary pixels (a 4-neighbour with another id in some map), then every pixel within
    chessboard distance k of one (a distance transform, not a dilation)."""
    h, w = maps[0].shape
    edge = np.zeros((h, w), dtype=bool)
    for m in maps:
        for y in range(h):
            for x in range(w):
                for dy, dx in ((0, 1), (1, 0)):
                    if y + dy < h and x + dx < w and m[y, x] != m[y + dy, x + dx]:
                        edge[y, x] = edge[y + dy, x + dx] = True
    if not edge.any():
        return edge
    return ndimage.distance_transform_cdt(~edge, metric="chessboard") <= k


def random_maps(rng, h, w, dtype=np.uint8, n=6):
    a = ((rng.random((h, w)) < 0.04).cumsum(axis=1) + (np.arange(h)[:, None] // 7) * 3) % n
    b = a.copy()
    b[rng.random((h, w)) < 0.02] = n
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("k", [0, 1, 3, 7, 64, 70])
@pytest.mark.parametrize(
    "shape,dtype", [((37, 128), np.uint8), ((20, 61), np.uint8), ((9, 64), np.uint16), ((1, 5), np.uint8)]
)
def test_boundary_band_equals_dilated_boundary_pixels(k, shape, dtype):
    rng = np.random.default_rng(k * 1000 + shape[1])
    a, b = random_maps(rng, *shape, dtype=dtype)
    assert np.array_equal(cons.boundary_band([a, b], k), brute_band([a, b], k))


@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_count_image_pairs_and_band_pixels_equal_numpy_counts(backend):
    if backend == "native":
        need_native()
    rng = np.random.default_rng(3)
    for shape in [(50, 128), (33, 70)]:
        a, b = random_maps(rng, *shape)
        lut_a = np.array([0, 1, 1, 2, 3, 4, 5])
        lut_b = np.array([0, 1, 2, 2, 3, 4, 0])
        counts = cons.count_image([a, b], [lut_a, lut_b], boundary_px=2, backend=backend)
        band = brute_band([a, b], 2)
        ca, cb = lut_a[a], lut_b[b]
        expected = {}
        for x, y, inside in zip(ca.ravel(), cb.ravel(), band.ravel()):
            e = expected.setdefault((int(x), int(y)), [0, 0])
            e[0] += 1
            e[1] += int(inside)
        assert {(int(r[0]), int(r[1])): [int(r[2]), int(r[3])] for r in counts.pairs} == expected


def _rectangles(rng, h, w, dtype, n):
    """Overlapping rectangles of random ids: long runs, edges at every offset within a word."""
    m = np.zeros((h, w), dtype)
    high = 300 if dtype == np.uint16 else 256
    for _ in range(n):
        y, x = rng.integers(0, h), rng.integers(0, w)
        m[y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = rng.integers(0, high)
    return m


def test_native_joint_runs_equal_brute_force_runs_and_band():
    """segdata._runs.joint_runs (the runs of up to 16 maps and each run's band pixels) against
    brute force: widths around the 16-pixel blocks and 64-bit words, K past a word, a third map
    that splits runs without touching the band."""
    need_native()
    rng = np.random.default_rng(11)
    for trial in range(200):
        h, w = int(rng.integers(1, 30)), int(rng.choice([1, 2, 15, 16, 17, 31, 63, 64, 65, 100, 130]))
        dtype = np.uint8 if trial % 3 else np.uint16
        maps = [_rectangles(rng, h, w, dtype, int(rng.integers(0, 8))) for _ in range(int(rng.choice([2, 2, 3])))]
        if trial % 4 == 0:
            maps[1] = maps[0].copy()
        k = [None, 0, 1, 3, 5, 63, 64, 70][trial % 8]
        raw_starts, raw_lengths, raw_values, raw_band = runs_ext.joint_runs(
            maps, h, w, np.dtype(dtype).itemsize, 2, -1 if k is None else k
        )
        starts = np.frombuffer(raw_starts, dtype=np.int64)
        lengths = np.frombuffer(raw_lengths, dtype=np.int64)
        flat = [m.ravel() for m in maps]
        new_run = np.zeros(h * w, dtype=bool)
        new_run[::w] = True
        for f in flat:
            new_run[1:] |= f[1:] != f[:-1]
        assert starts.tolist() == np.flatnonzero(new_run).tolist()
        assert lengths.tolist() == np.diff(np.r_[starts, h * w]).tolist()
        for v, f in zip(raw_values, flat):
            assert np.frombuffer(v, dtype=dtype).tolist() == f[starts].tolist()
        if k is None:
            assert raw_band is None
            continue
        band = brute_band(maps[:2], k).ravel()
        assert np.frombuffer(raw_band, dtype=np.int64).tolist() == [
            int(band[s : s + n].sum()) for s, n in zip(starts, lengths)
        ]


def _pair_with_overlaps(rng, h, w, dtype):
    """B a re-annotation of A: regions renamed, shifted, erased to 0, so that every breakdown rule
    (counterparts, IoU >= 0.5, missing objects, unlabeled on either side) fires."""
    a = _rectangles(rng, h, w, dtype, int(rng.integers(1, 9)))
    b = a.copy()
    if h > 2 and w > 2:
        b[rng.integers(0, h) :, : rng.integers(0, w)] = rng.integers(0, 300 if dtype == np.uint16 else 256)
        b[: rng.integers(0, h), rng.integers(0, w) :] = 0
        b = np.roll(b, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 2)))
    return a, b


def test_native_and_numpy_backends_give_identical_counts():
    """segdata._runs.count_pair (runs, dense table, breakdown rules, class pairs in C) against the
    numpy reference on random pairs: widths around the 64-pixel blocks, K past a word, an unmapped
    class, lookup tables that merge segments into classes, and the maps as strided (and, 16-bit,
    big-endian) views like the rows of an inflated PNG."""
    need_native()
    rng = np.random.default_rng(23)
    rules = np.zeros(3, np.int64)
    for trial in range(200):
        h, w = int(rng.integers(1, 40)), int(rng.choice([1, 2, 15, 16, 17, 63, 64, 65, 100, 130, 257]))
        dtype = np.uint8 if trial % 3 else np.uint16
        a, b = _pair_with_overlaps(rng, h, w, dtype)
        classes = int(rng.integers(2, 12))
        luts = [rng.integers(0, classes, int(m.max()) + 1 + int(rng.integers(0, 3))) for m in (a, b)]
        for lut in luts:
            lut[0] = 0
            lut[rng.random(len(lut)) < 0.1] = 0  # segments of class unlabeled
        k = [None, 0, 1, 3, 5, 63, 64, 70][trial % 8]
        unmapped = None if trial % 5 else classes - 1
        native = cons.count_image([a, b], luts, boundary_px=k, unmapped=unmapped, backend="native")
        # the same maps as views into wider rows, 16-bit in PNG byte order
        wide = [np.zeros((h, w + 1), dtype=">u2" if dtype == np.uint16 else np.uint8) for _ in (a, b)]
        for x, m in zip(wide, (a, b)):
            x[:, :w] = m
        views = [x[:, :w] for x in wide]
        assert h == 1 or not views[0].flags.c_contiguous
        viewed = cons.count_image(views, luts, boundary_px=k, unmapped=unmapped, backend="native")
        reference = cons.count_image([a, b], luts, boundary_px=k, unmapped=unmapped, backend="numpy")
        assert native.pairs.tolist() == reference.pairs.tolist(), trial
        assert native.breakdown.tolist() == reference.breakdown.tolist(), trial
        assert (
            viewed.pairs.tolist() == reference.pairs.tolist()
            and viewed.breakdown.tolist() == reference.breakdown.tolist()
        )
        rules += reference.breakdown > 0
    assert (rules > 10).all()  # every category was exercised many times


@pytest.mark.parametrize("unmapped", [None, 5])
def test_backends_and_the_per_pixel_map_agree_on_renamed_and_merged_regions(unmapped):
    need_native()
    rng = np.random.default_rng(7)
    for trial in range(40):
        a, b = random_maps(rng, 24, 40, n=9)
        b[(a == trial % 9)] = (trial * 5) % 10  # rename or merge a region
        b[rng.random(b.shape) < 0.05] = 0
        lut_a = rng.integers(0, 6, 10)
        lut_b = rng.integers(0, 6, 10)
        lut_a[0] = lut_b[0] = 0
        native = cons.count_image([a, b], [lut_a, lut_b], boundary_px=1, unmapped=unmapped, backend="native")
        numpy_ = cons.count_image([a, b], [lut_a, lut_b], boundary_px=1, unmapped=unmapped, backend="numpy")
        assert np.array_equal(native.pairs, numpy_.pairs)
        assert native.breakdown.tolist() == numpy_.breakdown.tolist()
        cat = cons.disagreement_map(a, b, lut_a, lut_b, unmapped)
        assert [int((cat == c).sum()) for c in (cons.QUALITY, cons.NAMING, cons.QUANTITY)] == native.breakdown.tolist()


def test_three_maps_give_identical_counts_on_both_backends():
    need_native()
    rng = np.random.default_rng(5)
    maps = [_rectangles(rng, 40, 97, np.uint8, 9) for _ in range(3)]
    luts = [np.arange(256) % 7 for _ in maps]
    native = cons.count_image(maps, luts, boundary_px=3, backend="native")
    numpy_ = cons.count_image(maps, luts, boundary_px=3, backend="numpy")
    assert np.array_equal(native.pairs, numpy_.pairs)
    assert native.breakdown.tolist() == numpy_.breakdown.tolist()
    assert all(np.array_equal(x, y) for x, y in zip(native.pairwise, numpy_.pairwise))
    # pairwise (0, 2) against a per-pixel count
    ca, cc = luts[0][maps[0]], luts[2][maps[2]]
    key, n = np.unique(ca.astype(np.int64) * 7 + cc, return_counts=True)
    assert native.pairwise[1].tolist() == np.stack([key // 7, key % 7, n], axis=1).tolist()


def test_numpy_backend_takes_int_maps_and_more_than_65535_segments():
    """Segment ids past uint16 (int32 maps): the numpy reference counts them; the native backend
    says why it cannot; "auto" falls back to numpy."""
    a = (np.arange(60 * 80).reshape(60, 80) + 70000).astype(np.int32)  # one segment a pixel, ids 70,000 to 74,799
    b = a.copy()
    b[:10] = 0  # 800 one-pixel objects erased: quantity
    lut = np.arange(75000) % 50 + 1
    lut[0] = 0
    counts = cons.count_image([a, b], [lut, lut], boundary_px=1)  # auto
    assert counts.breakdown.tolist() == [0, 0, 800]
    assert int(counts.pairs[:, 2].sum()) == a.size
    with pytest.raises(ValueError, match="native backend cannot"):
        cons.count_image([a, b], [lut, lut], backend="native")


@pytest.mark.parametrize("backend", ["numpy", "native"])
def test_a_segment_id_without_a_lookup_entry_names_the_mask(backend):
    if backend == "native":
        need_native()
    a = np.zeros((4, 70), np.uint8)
    b = a.copy()
    b[1, 3] = 9  # the lookup table of B stops at 4
    with pytest.raises(InputError, match=r"b\.png.*segment id 9 has no row"):
        cons.count_image([a, b], [np.zeros(2, int), np.zeros(5, int)], where=["a.png", "b.png"], backend=backend)
    with pytest.raises(InputError, match="segment id 2 has no row"):
        a = np.array([[1, 2]], np.uint8)
        cons.count_image([a, a], [np.array([0, 1]), np.array([0, 1, 1])], where=["a.png", "b.png"], backend=backend)


@pytest.mark.parametrize(
    "columns,expected",
    [
        ([[1, 1, 4], [1, 2, 2], [2, 3, 4], [0, 0, 5]], [1, 2, 0, 0]),
        ([[3, 3], [3, 0], [0, 3]], [3, 0, 0]),
        ([[2, 2, 1, 1]], [0]),
    ],
)
def test_majority_vote_ties_give_unlabeled(columns, expected):
    assert cons.majority_vote(np.array(columns).T).tolist() == expected

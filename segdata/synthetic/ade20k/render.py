"""Annotated objects and their rasterisation: :class:`SyntheticObject` (one polygon), :class:`RenderedImage` (objects
plus per-level ownership maps), :func:`render_objects` for hand-made objects, and the region shapes the random scenes
are drawn with (stuff bands, star-shaped things).

Polygons are filled with Pillow's ``ImageDraw.polygon`` (boundary pixels included); arrays are ``[row, column]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from .encoding import _MAX_PER_LEVEL, ADE_MAX_CODE
from .names import _BOTTOM, _TOP


@dataclass(frozen=True)
class SyntheticObject:
    """One annotated object or part.

    Attributes
    ----------
    code : int
        Class code (``name_ndx``), 1..6655.
    name, raw_name : str
        WordNet-style and raw class names.
    polygon : tuple of (tuple of int, tuple of int)
        ``(xs, ys)``: the amodal outline in integer pixel coordinates inside the image (at least 3 vertices).
    part_level : int
        0 for whole objects, 1 for parts, 2 for parts of parts, ...
    parent : int or None
        For parts, the index (in the same object sequence) of the parent object, whose level is ``part_level - 1``.
    id : int or None
        JSON ``id``; None means the position in the sequence.
    hypernym : tuple of str
    attributes : tuple of str
    occluded : str
        JSON ``occluded`` flag: ``"auto"`` ('yes' if part of the polygon is hidden, else 'no'), ``"yes"``, ``"no"`` or
        ``"unknown"`` (written as ``[]``). The 2016 ``_atr.txt`` column uses the true occlusion for auto/unknown.
    saved_date : str
        ``"dd-Mon-yyyy HH:MM:SS"``.
    """

    code: int
    name: str
    raw_name: str
    polygon: tuple[tuple[int, ...], tuple[int, ...]]
    part_level: int = 0
    parent: int | None = None
    id: int | None = None
    hypernym: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    occluded: str = "auto"
    saved_date: str = "18-Jan-2021 13:30:07"


@dataclass(frozen=True, eq=False)
class RenderedImage:
    """A rasterised synthetic image: objects in JSON (depth) order plus per-level ownership maps.

    Attributes
    ----------
    height, width : int
        Image size in pixels.
    objects : tuple of SyntheticObject
        JSON order; ``id`` set on every object; ``parent`` indexes this tuple.
    slots : numpy.ndarray
        ``(n,)`` uint8: the value that represents object i in ``owners[objects[i].part_level]``.
    owners : tuple of numpy.ndarray
        One ``(H, W)`` uint8 map per part level; 0 = no object, otherwise a slot value.
    amodal : tuple of (int, int, numpy.ndarray)
        Per object ``(y0, x0, mask)``: the filled polygon (bool) with its top-left corner.
    visible : numpy.ndarray
        ``(n,)`` int64 visible pixel count of each object (all > 0).
    amodal_area : numpy.ndarray
        ``(n,)`` int64 pixel count of each filled polygon.
    instance_k : numpy.ndarray
        ``(n,)`` int64 instance rank k (1..N within the object's level); ``B = round_half_up(k * 255 / N)``.
    """

    height: int
    width: int
    objects: tuple[SyntheticObject, ...]
    slots: np.ndarray
    owners: tuple[np.ndarray, ...]
    amodal: tuple[tuple[int, int, np.ndarray], ...]
    visible: np.ndarray
    amodal_area: np.ndarray
    instance_k: np.ndarray

    def level_counts(self) -> list[int]:
        """Number of objects at each part level."""
        levels = [o.part_level for o in self.objects]
        return [levels.count(lv) for lv in range(len(self.owners))]

    def b_values(self) -> np.ndarray:
        """``(n,)`` uint8 blue-channel value of each object."""
        counts = self.level_counts()
        out = np.zeros(len(self.objects), np.uint8)
        for i, o in enumerate(self.objects):
            n = counts[o.part_level]
            out[i] = (2 * 255 * int(self.instance_k[i]) + n) // (2 * n)
        return out


def _rasterize(xs: np.ndarray, ys: np.ndarray, height: int, width: int) -> tuple[int, int, np.ndarray] | None:
    """Fill a polygon (integer vertices inside the image); returns ``(y0, x0, bbox mask)`` or None if no pixel."""
    x0, x1 = int(xs.min()), int(xs.max())
    y0, y1 = int(ys.min()), int(ys.max())
    if x0 < 0 or y0 < 0 or x1 >= width or y1 >= height:
        raise ValueError(f"polygon vertices must lie inside the {height}x{width} image")
    # Pillow's scanline fill is not exactly translation invariant, so draw with the image's own coordinates (on a
    # canvas reaching to the box's far corner) and crop: the mask is then exactly what filling the JSON polygon on a
    # full-size canvas gives.
    canvas = Image.new("L", (x1 + 1, y1 + 1), 0)
    pts = np.empty(2 * xs.size, np.int64)
    pts[0::2] = xs
    pts[1::2] = ys
    ImageDraw.Draw(canvas).polygon(pts.tolist(), fill=1)
    mask = np.asarray(canvas.crop((x0, y0, x1 + 1, y1 + 1))).view(np.bool_)
    if not mask.any():
        return None
    return y0, x0, mask


def _sample_in_slot(
    rng: np.random.Generator, owner: np.ndarray, box: tuple[int, int, np.ndarray], slot: int
) -> tuple[float, float] | None:
    y0, x0, m = box
    ys = rng.integers(y0, y0 + m.shape[0], 64)
    xs = rng.integers(x0, x0 + m.shape[1], 64)
    hit = np.flatnonzero(owner[ys, xs] == slot)
    if hit.size == 0:
        return None
    return float(xs[hit[0]]), float(ys[hit[0]])


def _finish(
    height: int,
    width: int,
    objects: Sequence[SyntheticObject],
    slots: Sequence[int],
    owners: Sequence[np.ndarray],
    amodal: Sequence[tuple[int, int, np.ndarray]],
    visible: Sequence[int],
    instance_k: Sequence[int],
) -> RenderedImage:
    return RenderedImage(
        height=height,
        width=width,
        objects=tuple(objects),
        slots=np.asarray(slots, np.uint8),
        owners=tuple(owners),
        amodal=tuple(amodal),
        visible=np.asarray(visible, np.int64),
        amodal_area=np.array([int(np.count_nonzero(m)) for _, _, m in amodal], np.int64),
        instance_k=np.asarray(instance_k, np.int64),
    )


def _shuffled_ranks(levels: Sequence[int], rng: np.random.Generator | None) -> list[int]:
    """Instance rank k per object: 1..N within each level, a random permutation (or JSON order if rng is None)."""
    ks = [0] * len(levels)
    for lv in sorted(set(levels)):
        idx = [i for i, v in enumerate(levels) if v == lv]
        order = rng.permutation(len(idx)) if rng is not None else np.arange(len(idx))
        for i, k in zip(idx, order):
            ks[i] = int(k) + 1
    return ks


def render_objects(
    height: int, width: int, objects: Sequence[SyntheticObject], *, seed: int | None = 0
) -> RenderedImage:
    """Rasterise a hand-made list of objects (e.g. for a test fixture).

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    objects : sequence of SyntheticObject
        JSON order = depth order: at each part level, later objects are painted over earlier ones. Parts are clipped to
        the visible region of their parent.
    seed : int or None
        Seed of the random instance ranks (B values); None gives ranks in JSON order (k = 1, 2, ... per level).

    Returns
    -------
    RenderedImage

    Raises
    ------
    ValueError
        On a bad parent reference, duplicate ids, more than 255 objects at one level, a polygon outside the image or
        with fewer than 3 vertices, or an object left without any visible pixel.
    """
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    objs = list(objects)
    n_levels = 1 + max((o.part_level for o in objs), default=0)
    owners = [np.zeros((height, width), np.uint8) for _ in range(n_levels)]
    per_level = [0] * n_levels
    slots, amodal = [], []
    for i, o in enumerate(objs):
        if o.part_level < 0:
            raise ValueError(f"object {i}: part_level must be >= 0")
        if o.part_level == 0 and o.parent is not None:
            raise ValueError(f"object {i}: a level-0 object cannot have a parent")
        if o.part_level > 0:
            if o.parent is None or not 0 <= o.parent < len(objs) or objs[o.parent].part_level != o.part_level - 1:
                raise ValueError(f"object {i}: parent must index an object of level {o.part_level - 1}")
        if not 1 <= o.code <= ADE_MAX_CODE:
            raise ValueError(f"object {i}: class code {o.code} out of range 1..{ADE_MAX_CODE}")
        xs, ys = (np.asarray(v, np.int64) for v in o.polygon)
        if xs.size < 3 or xs.size != ys.size:
            raise ValueError(f"object {i}: polygon needs >= 3 vertices with as many x as y")
        box = _rasterize(xs, ys, height, width)
        if box is None:
            raise ValueError(f"object {i}: polygon covers no pixel")
        per_level[o.part_level] += 1
        if per_level[o.part_level] > _MAX_PER_LEVEL:
            raise ValueError(f"more than {_MAX_PER_LEVEL} objects at part level {o.part_level}")
        slots.append(per_level[o.part_level])
        amodal.append(box)
    # paint level by level, in sequence order
    for lv in range(n_levels):
        for i, o in enumerate(objs):
            if o.part_level != lv:
                continue
            y0, x0, m = amodal[i]
            view = owners[lv][y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]]
            if lv == 0:
                view[m] = slots[i]
            else:
                par = owners[lv - 1][y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] == slots[o.parent]
                view[m & par] = slots[i]
    visible = []
    for i, o in enumerate(objs):
        y0, x0, m = amodal[i]
        v = int(np.count_nonzero(owners[o.part_level][y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] == slots[i]))
        if v == 0:
            raise ValueError(f"object {i} ({o.raw_name!r}) has no visible pixel")
        visible.append(v)
    ids = [o.id if o.id is not None else i for i, o in enumerate(objs)]
    if len(set(ids)) != len(ids):
        raise ValueError("object ids must be unique")
    objs = [replace(o, id=ids[i]) for i, o in enumerate(objs)]
    rng = np.random.default_rng(seed) if seed is not None else None
    ks = _shuffled_ranks([o.part_level for o in objs], rng)
    return _finish(height, width, objs, slots, owners, amodal, visible, ks)


# -- region shapes: stuff bands and star-shaped polygons, integer vertices inside the image ---------------------------


def _wave(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    freq = rng.uniform(0.5, 3.0, (3, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (3, 1))
    amp = rng.normal(0.0, amplitude, (3, 1)) / np.arange(1, 4)[:, None]
    return (amp * np.sin(2 * np.pi * freq * t + phase)).sum(0)


def _to_polygon(px: np.ndarray, py: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray] | None:
    xs = np.rint(np.clip(px, 0, width - 1)).astype(np.int64)
    ys = np.rint(np.clip(py, 0, height - 1)).astype(np.int64)
    keep = (xs != np.roll(xs, 1)) | (ys != np.roll(ys, 1))
    xs, ys = xs[keep], ys[keep]
    if xs.size < 3:
        return None
    return xs, ys


def _stuff_polygon(
    rng: np.random.Generator, height: int, width: int, role: int, xa: float, xb: float, skyline: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    n = int(np.clip((xb - xa) / 48.0, 2, 40)) + 2
    xs = np.linspace(xa, xb, n)
    hm = height - 1
    if role == _TOP:
        yb = (rng.uniform(0.15, 0.5) + _wave(rng, n, 0.05)) * hm
        px = np.concatenate(([xa, xb], xs[::-1]))
        py = np.concatenate(([0.0, 0.0], yb[::-1]))
    elif role == _BOTTOM:
        yt = (rng.uniform(0.5, 0.85) + _wave(rng, n, 0.04)) * hm
        px = np.concatenate((xs, [xb, xa]))
        py = np.concatenate((yt, [hm, hm]))
    else:
        bottom = (rng.uniform(0.6, 0.95) + _wave(rng, n, 0.03)) * hm
        if skyline:
            m = int(rng.integers(2, 7))
            edges = np.sort(np.concatenate(([xa, xb], rng.uniform(xa, xb, m - 1))))
            tops = rng.uniform(0.0, 0.4, m) * hm
            tx = np.repeat(edges, 2)[1:-1]
            ty = np.repeat(tops, 2)
        else:
            tx = xs
            ty = np.clip(rng.uniform(-0.1, 0.35) + _wave(rng, n, 0.04), 0.0, None) * hm
        px = np.concatenate((tx, xs[::-1]))
        py = np.concatenate((ty, bottom[::-1]))
    return _to_polygon(px, py, height, width)


def _star_polygon(
    rng: np.random.Generator, cx: float, cy: float, radius: float, height: int, width: int, roughness: float = 0.18
) -> tuple[np.ndarray, np.ndarray] | None:
    n = int(np.clip(8 + radius / 3.0, 8, 64))
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False) + rng.uniform(0.0, 2 * np.pi / n)
    k = np.arange(1, 5)[:, None]
    amp = rng.normal(0.0, roughness, (4, 1)) / k
    phase = rng.uniform(0.0, 2 * np.pi, (4, 1))
    r = radius * np.clip(1.0 + (amp * np.cos(k * theta + phase)).sum(0), 0.3, None)
    stretch = math.sqrt(math.exp(rng.normal(0.0, 0.35)))
    rot = rng.uniform(0.0, np.pi)
    dx, dy = r * np.cos(theta) * stretch, r * np.sin(theta) / stretch
    c, s = math.cos(rot), math.sin(rot)
    return _to_polygon(cx + dx * c - dy * s, cy + dx * s + dy * c, height, width)

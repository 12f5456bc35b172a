"""Deterministic synthetic street scenes in the exact on-disk layout of Cityscapes gtFine.

:func:`generate_cityscapes` writes, per image, what the ``gtFine_trainvaltest`` package holds::

    gtFine/{train,val}/<city>/<city>_<seq>_000019_gtFine_labelIds.png      mode L, labelId 0..33
    gtFine/{train,val}/<city>/<city>_<seq>_000019_gtFine_instanceIds.png   mode I;16 (16-bit grey)
    gtFine/{train,val}/<city>/<city>_<seq>_000019_gtFine_color.png         mode RGBA, alpha 255
    gtFine/{train,val}/<city>/<city>_<seq>_000019_gtFine_polygons.json     (with ``polygons=True``)

and optionally ``leftImg8bit/<split>/`` (empty folders, or RGB images).

How a scene is made (image ``i`` from ``numpy.random.default_rng([seed, i])``, so the output does
not depend on the number of workers):

- objects are polygons, listed in drawing order as in the real ``_polygons.json``: sky, road,
  sidewalks, terrain/parking/ground strips, buildings (a skyline, with walls and fences), vegetation
  blobs, poles with traffic signs and lights, static/dynamic clutter, group regions (``cargroup``,
  ``persongroup``, ``bicyclegroup``: thing pixels without an instance id), then the thing
  instances from far to near (cars, persons, riders on bicycles or motorcycles, parked bicycles,
  trucks, buses, motorcycles, now and then a train, caravan or trailer: about 10 per image), and
  last the ego vehicle's hood, the rectification border (some cities) and the out-of-roi frame.
  Cars carry ``license plate`` polygons, which, like cityscapesScripts, are never drawn (labelId -1).
- the PNGs are rendered from the polygons as cityscapesScripts' ``json2labelImg.py`` and
  ``json2instanceImg.py`` do: Pillow ``ImageDraw.polygon`` fills in list order, background
  ``unlabeled`` (0); an instance of a class with instances gets ``labelId * 1000 + k``, ``k``
  counting that class's polygons from 0 in list order; a group polygon gets the plain labelId. The
  color PNG is the official colour of each labelId. (The real PNGs were drawn with an older Pillow
  whose polygon rasteriser differs from today's by a few thousand boundary pixels per image, so
  polygons and PNGs agree here exactly, on real files nearly.)
- ``png="cityscapes"`` (default) encodes with Pillow's default PNG encoder (zlib level 6, adaptive
  row filters), which writes the real label PNGs byte for byte from their pixels, so files decode
  as slowly as the real ones (about 8 ms for a labelIds and 17 ms for an instanceIds file of
  2048x1024 here). ``png="fast"`` writes unfiltered rows at zlib level 1: the same pixels and PNG
  types, files twice the size, about 4x faster to write and 5x faster to decode; do not time
  decoders on those. Both go through the generators' shared writer, :mod:`segdata.synthetic.pngs`.

Arrays are ``(row, col)``; sizes ``(height, width)`` in pixels; polygon points ``[x, y]`` integer
pixel coordinates, inside the image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..runner import parallel_map
from .pngs import write_png

__all__ = [
    "CITIES",
    "SceneObject",
    "color_image",
    "generate_cityscapes",
    "make_scene",
    "polygons_json",
    "render_instance_ids",
    "write_scene",
]

#: Cities of the real splits (train: 18, val: 3); synthetic images are spread over them.
CITIES = {
    "train": (
        "aachen",
        "bochum",
        "bremen",
        "cologne",
        "darmstadt",
        "dusseldorf",
        "erfurt",
        "hamburg",
        "hanover",
        "jena",
        "krefeld",
        "monchengladbach",
        "strasbourg",
        "stuttgart",
        "tubingen",
        "ulm",
        "weimar",
        "zurich",
    ),
    "val": ("frankfurt", "lindau", "munster"),
}
_FRAME = 19  # the annotated frame of every Cityscapes snippet
_RECTIFIED = {"frankfurt", "munster", "bremen", "hamburg", "strasbourg", "zurich"}  # cities with a rectification border

# labelIds (cityscapesScripts labels.py); the converter's table is the reference, these are the
# few facts the generator needs, kept here so that generating never imports a converter.
_ID = {
    "unlabeled": 0,
    "ego vehicle": 1,
    "rectification border": 2,
    "out of roi": 3,
    "static": 4,
    "dynamic": 5,
    "ground": 6,
    "road": 7,
    "sidewalk": 8,
    "parking": 9,
    "rail track": 10,
    "building": 11,
    "wall": 12,
    "fence": 13,
    "guard rail": 14,
    "bridge": 15,
    "tunnel": 16,
    "pole": 17,
    "polegroup": 18,
    "traffic light": 19,
    "traffic sign": 20,
    "vegetation": 21,
    "terrain": 22,
    "sky": 23,
    "person": 24,
    "rider": 25,
    "car": 26,
    "truck": 27,
    "bus": 28,
    "caravan": 29,
    "trailer": 30,
    "train": 31,
    "motorcycle": 32,
    "bicycle": 33,
    "license plate": -1,
}
_HAS_INSTANCES = {"person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle"}
_COLORS = np.array(
    [
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
        (111, 74, 0),
        (81, 0, 81),
        (128, 64, 128),
        (244, 35, 232),
        (250, 170, 160),
        (230, 150, 140),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (180, 165, 180),
        (150, 100, 100),
        (150, 120, 90),
        (153, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 0, 90),
        (0, 0, 110),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    ],
    dtype=np.uint8,
)
_RGBA = np.concatenate([_COLORS, np.full((34, 1), 255, np.uint8)], axis=1)
_RGBA32 = np.ascontiguousarray(_RGBA).view(np.uint32).ravel()  # one 4-byte word per labelId: a fast lookup
# instanceIds value -> labelId, for every 16-bit value (values >= 34000 never occur)
_LABEL_OF_VALUE = (
    np.where(np.arange(65536) >= 1000, np.arange(65536) // 1000, np.arange(65536)).clip(0, 255).astype(np.uint8)
)

# mean number of instances per image, by class (about 10 in all; riders come with their vehicle)
_THING_RATES = {
    "car": 6.5,
    "person": 4.0,
    "rider": 0.7,
    "bicycle": 0.8,
    "truck": 0.4,
    "bus": 0.25,
    "motorcycle": 0.25,
    "train": 0.05,
    "caravan": 0.05,
    "trailer": 0.05,
}
_GROUP_PROBABILITY = {"cargroup": 0.45, "persongroup": 0.2, "bicyclegroup": 0.15}


@dataclass(frozen=True)
class SceneObject:
    """One polygon of a ``_polygons.json``: its label as written there (``car``, ``cargroup``,
    ``license plate``) and its points ``((x, y), ...)`` in pixels."""

    label: str
    polygon: tuple[tuple[int, int], ...]


# --------------------------------------------------------------------------- scene


def _clip(pts: list[tuple[float, float]], axis: int, limit: float, keep_below: bool) -> list[tuple[float, float]]:
    """One Sutherland-Hodgman step: the part of a polygon on one side of ``coord[axis] = limit``."""

    def inside(p):
        return p[axis] <= limit if keep_below else p[axis] >= limit

    out = []
    for i, cur in enumerate(pts):
        prev = pts[i - 1]
        if inside(cur) != inside(prev):
            t = (limit - prev[axis]) / (cur[axis] - prev[axis])
            out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
        if inside(cur):
            out.append(cur)
    return out


class _Scene:
    def __init__(self, rng: np.random.Generator, h: int, w: int):
        self.rng, self.h, self.w = rng, h, w
        self.objects: list[SceneObject] = []

    def add(self, label: str, points) -> None:
        """Add a polygon, clipped to the image (Sutherland-Hodgman against its four edges)."""
        pts = [(float(x), float(y)) for x, y in np.asarray(points, dtype=float).reshape(-1, 2)]
        for axis, limit, keep_below in (
            (0, 0.0, False),
            (0, self.w - 1.0, True),
            (1, 0.0, False),
            (1, self.h - 1.0, True),
        ):
            pts = _clip(pts, axis, limit, keep_below)
            if not pts:
                return
        out: list[tuple[int, int]] = []
        for x, y in pts:
            p = (int(round(x)), int(round(y)))
            if not out or out[-1] != p:
                out.append(p)
        if len(out) >= 3:
            self.objects.append(SceneObject(label, tuple(out)))

    def add_raw(self, label: str, points) -> None:
        """A polygon whose points are used as given (the out-of-roi frame reaches w and h)."""
        self.objects.append(SceneObject(label, tuple((int(x), int(y)) for x, y in points)))

    def blob(self, cx: float, cy: float, rx: float, ry: float, n: int = 14, rough: float = 0.35) -> np.ndarray:
        """An irregular star-shaped polygon around (cx, cy) with radii (rx, ry)."""
        angles = np.sort(self.rng.uniform(0, 2 * np.pi, n))
        radius = 1 + rough * self.rng.uniform(-1, 1, n)
        return np.stack([cx + rx * radius * np.cos(angles), cy + ry * radius * np.sin(angles)], axis=1)


def _ego_vehicle(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The hood and the star at the bottom of the frame: one shape per city, as in the real data."""
    top = h * rng.uniform(0.86, 0.9)
    left, right = w * rng.uniform(0.0, 0.02), w * rng.uniform(0.98, 1.0)
    xs = np.linspace(left, right, 9)
    ys = top + (h - top) * 0.75 * ((xs - w / 2) / (w / 2)) ** 2
    star_x, star_r = w * rng.uniform(0.55, 0.62), max(2.0, h * 0.04)
    star = [
        (star_x + star_r * np.cos(a), ys.min() - star_r * 0.6 + star_r * np.sin(a))
        for a in np.linspace(np.pi, 2 * np.pi, 7)
    ]
    hood = [(x, y) for x, y in zip(xs, ys)]
    mid = len(hood) // 2
    return np.array([(left, h - 1), *hood[: mid + 1], *star, *hood[mid + 1 :], (right, h - 1)])


def make_scene(
    rng: np.random.Generator,
    image_size: tuple[int, int] = (1024, 2048),
    *,
    city: str = "aachen",
    city_rng: np.random.Generator | None = None,
) -> list[SceneObject]:
    """The polygons of one synthetic street scene, in drawing order (later ones on top).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws everything about this image.
    image_size : (height, width)
        In pixels; at least 16x32.
    city : str
        Cities in a fixed set get a rectification border.
    city_rng : numpy.random.Generator, optional
        Draws the city's fixed ego-vehicle shape (default: a generator seeded by the city name).
    """
    h, w = (int(v) for v in image_size)
    if h < 16 or w < 32:
        raise ValueError(f"image_size must be at least (16, 32), got {image_size}")
    if city_rng is None:
        city_rng = np.random.default_rng(list(city.encode()))
    s = _Scene(rng, h, w)
    U = rng.uniform
    horizon = h * U(0.36, 0.48)
    vx = w * U(0.38, 0.62)
    road_top = w * U(0.015, 0.04)

    def road_edge(y: float, side: int, extra: float = 0.0) -> float:
        """x of the road's left (-1) or right (+1) edge at row y, widened by ``extra`` * w at the bottom."""
        t = (y - horizon) / (h - horizon)
        return vx + side * (road_top + t * (w * (0.9 + extra) - road_top))

    # sky, then a skyline of buildings reaching down to the bottom (road and sidewalks cover it),
    # lower towards the vanishing point
    s.add("sky", [(0, 0), (w - 1, 0), (w - 1, horizon + 2), (0, horizon + 2)])
    x = 0.0
    while x < w:
        bw = w * U(0.05, 0.2)
        near = abs(x + bw / 2 - vx) / w
        top = max(0.0, horizon - h * U(0.05, 0.2) - h * near * U(0.3, 0.9))
        label = "building" if rng.random() < 0.9 else "wall"
        s.add(
            label, [(x, h - 1), (x, top), (x + bw * U(0.3, 0.7), top - h * U(0, 0.03)), (x + bw, top), (x + bw, h - 1)]
        )
        x += bw * U(0.7, 1.0)
    for _ in range(int(rng.integers(1, 6))):
        cx = w * U(0, 1)
        s.add("vegetation", s.blob(cx, horizon - h * U(0.0, 0.15), w * U(0.03, 0.12), h * U(0.05, 0.18)))
    # road, sidewalks, and now and then a strip of terrain, parking or ground beyond a sidewalk
    s.add(
        "road",
        [
            (road_edge(h, -1), h - 1),
            (road_edge(h, 1), h - 1),
            (road_edge(horizon, 1), horizon),
            (road_edge(horizon, -1), horizon),
        ],
    )
    for side in (-1, 1):
        walk = U(0.3, 0.8)
        s.add(
            "sidewalk",
            [
                (road_edge(horizon, side), horizon),
                (road_edge(horizon, side, walk), horizon - 1),
                (road_edge(h, side, walk), h - 1),
                (road_edge(h, side), h - 1),
            ],
        )
        if rng.random() < 0.5:
            label = str(rng.choice(["terrain", "parking", "ground", "vegetation"], p=[0.45, 0.2, 0.1, 0.25]))
            far = walk + U(0.3, 1.0)
            s.add(
                label,
                [
                    (road_edge(horizon, side, walk), horizon - 1),
                    (road_edge(horizon, side, far), horizon - 2),
                    (road_edge(h, side, far), h - 1),
                    (road_edge(h, side, walk), h - 1),
                ],
            )
    if rng.random() < 0.4:
        side = int(rng.choice([-1, 1]))
        y0 = horizon + (h - horizon) * U(0.02, 0.1)
        far = U(0.8, 1.5)
        s.add(
            "fence",
            [
                (road_edge(y0, side, far), y0 - h * 0.02),
                (road_edge(h, side, far), h - 1 - h * 0.15),
                (road_edge(h, side, far), h - 1),
                (road_edge(y0, side, far), y0),
            ],
        )
    # poles, signs, lights; street clutter
    for _ in range(int(rng.integers(2, 11))):
        side = int(rng.choice([-1, 1]))
        foot = horizon + (h - horizon) * U(0.05, 0.6)
        px = road_edge(foot, side, U(0.05, 0.3))
        t = (foot - horizon) / (h - horizon)
        pw, ph = max(2.0, w * 0.006 * (0.3 + t)), h * U(0.2, 0.45) * (0.4 + t)
        s.add("pole", [(px, foot), (px, foot - ph), (px + pw, foot - ph), (px + pw, foot)])
        if rng.random() < 0.6:
            sw = max(3.0, pw * U(3, 6))
            top = foot - ph
            if rng.random() < 0.5:
                s.add("traffic sign", [(px - sw / 2, top), (px + pw / 2, top - sw), (px + pw + sw / 2, top)])
            else:
                s.add(
                    "traffic sign",
                    [
                        (px - sw / 2, top),
                        (px - sw / 2, top + sw),
                        (px + pw + sw / 2, top + sw),
                        (px + pw + sw / 2, top),
                    ],
                )
        elif rng.random() < 0.5:
            lw = max(2.0, pw * 2)
            s.add(
                "traffic light",
                [(px - lw, foot - ph), (px - lw, foot - ph + 2.5 * lw), (px, foot - ph + 2.5 * lw), (px, foot - ph)],
            )
    if rng.random() < 0.15:
        foot = horizon + (h - horizon) * U(0.05, 0.3)
        px = road_edge(foot, int(rng.choice([-1, 1])), 0.2)
        s.add("polegroup", [(px, foot), (px, foot - h * 0.15), (px + w * 0.02, foot - h * 0.15), (px + w * 0.02, foot)])
    for _ in range(int(rng.integers(0, 8))):
        side = int(rng.choice([-1, 1]))
        foot = horizon + (h - horizon) * U(0.02, 0.5)
        t = (foot - horizon) / (h - horizon)
        size = max(2.0, w * 0.02 * (0.2 + t))
        cx = road_edge(foot, side, U(0.05, 0.4))
        s.add(
            "static" if rng.random() < 0.8 else "dynamic", s.blob(cx, foot - size / 2, size, size / 2, n=8, rough=0.2)
        )
    # group regions: thing pixels without an instance id, far away
    for group, p in _GROUP_PROBABILITY.items():
        if rng.random() < p:
            foot = horizon + (h - horizon) * U(0.03, 0.12)
            side = int(rng.choice([-1, 1]))
            cx = road_edge(foot, side, U(-0.3, 0.1))
            gw = w * U(0.05, 0.15)
            gh = h * (0.03 if group == "cargroup" else 0.05)
            s.add(
                group,
                [
                    (cx - gw / 2, foot),
                    (cx - gw / 2, foot - gh * 0.6),
                    (cx - gw / 4, foot - gh),
                    (cx + gw / 4, foot - gh),
                    (cx + gw / 2, foot - gh * 0.6),
                    (cx + gw / 2, foot),
                ],
            )
    # thing instances, far to near
    things = []
    for label, rate in _THING_RATES.items():
        for _ in range(int(rng.poisson(rate))):
            things.append((label, float(U(0.04, 1.0) ** 0.8)))
    things.sort(key=lambda item: item[1])
    for label, t in things:
        _add_thing(s, label, t, horizon, road_edge)
    # the car's own parts of the frame, fixed per city
    s.add("ego vehicle", _ego_vehicle(city_rng, h, w))
    if city in _RECTIFIED:
        crng = np.random.default_rng(list(city.encode()) + [1])
        s.add("rectification border", [(w * crng.uniform(0.15, 0.3), 0), (w - 1, h * 0.03), (w - 1, 0)])
        s.add("rectification border", [(w - 1, h * 0.5), (w - 1, h - 1), (w - 1 - w * 0.005, h - 1)])
        s.add("rectification border", [(0, 0), (0, h * 0.45), (w * 0.008, 0)])
        s.add("rectification border", [(w * 0.53, h * 0.96), (0, h * 0.955), (0, h - 1), (w * 0.95, h - 1)])
    m = max(1, round(5 * w / 2048))
    s.add_raw(
        "out of roi",
        [
            (0, 0),
            (w, 0),
            (w, h),
            (0, h),
            (0, 0),
            (m, m),
            (m, h - 1 - m),
            (w - 1 - m, h - 1 - m),
            (w - 1 - m, m),
            (m, m),
        ],
    )
    return s.objects


def _add_thing(s: _Scene, label: str, t: float, horizon: float, road_edge) -> None:
    """One instance (plus its vehicle for a rider, its plate for a car) at depth t (0 far, 1 near)."""
    rng, h, w = s.rng, s.h, s.w
    foot = horizon + (h - horizon) * (0.04 + 0.8 * t)
    on_road = label in ("car", "truck", "bus", "train", "caravan", "trailer", "motorcycle", "rider")
    if on_road:
        lo, hi = road_edge(foot, -1), road_edge(foot, 1)
        cx = lo + (hi - lo) * rng.uniform(0.05, 0.95)
    else:
        side = int(rng.choice([-1, 1]))
        cx = road_edge(foot, side, rng.uniform(0.02, 0.3))
    scale = 0.08 + 0.92 * t
    if label in ("car", "truck", "bus", "train", "caravan", "trailer"):
        size = {"car": 0.25, "truck": 0.32, "bus": 0.38, "train": 0.6, "caravan": 0.3, "trailer": 0.28}[label]
        bw = max(6.0, w * size * scale * rng.uniform(0.8, 1.2))
        bh = bw * {"car": 0.5, "truck": 0.8, "bus": 0.85, "train": 0.55, "caravan": 0.7, "trailer": 0.6}[label]
        x0, x1 = cx - bw / 2, cx + bw / 2
        if label == "car":  # body and cabin
            outline = [
                (x0, foot),
                (x0, foot - 0.55 * bh),
                (x0 + 0.15 * bw, foot - 0.6 * bh),
                (x0 + 0.25 * bw, foot - bh),
                (x1 - 0.25 * bw, foot - bh),
                (x1 - 0.15 * bw, foot - 0.6 * bh),
                (x1, foot - 0.55 * bh),
                (x1, foot),
            ]
        elif label == "truck":  # cab on the left, box on the right
            outline = [
                (x0, foot),
                (x0, foot - 0.6 * bh),
                (x0 + 0.1 * bw, foot - 0.75 * bh),
                (x0 + 0.3 * bw, foot - 0.75 * bh),
                (x0 + 0.3 * bw, foot - bh),
                (x1, foot - bh),
                (x1, foot),
            ]
        else:  # bus, train, caravan, trailer: a box with bevelled top corners
            bevel = 0.05 * bw
            outline = [
                (x0, foot),
                (x0, foot - bh + bevel),
                (x0 + bevel, foot - bh),
                (x1 - bevel, foot - bh),
                (x1, foot - bh + bevel),
                (x1, foot),
            ]
        s.add(label, outline)
        if label == "car" and rng.random() < 0.5 and bw > 40:
            pw, ph = bw * 0.18, bw * 0.05
            s.add(
                "license plate",
                [
                    (cx - pw / 2, foot - 0.25 * bh),
                    (cx + pw / 2, foot - 0.25 * bh),
                    (cx + pw / 2, foot - 0.25 * bh + ph),
                    (cx - pw / 2, foot - 0.25 * bh + ph),
                ],
            )
        return
    if label in ("bicycle", "motorcycle", "rider"):
        vehicle = label if label != "rider" else ("bicycle" if rng.random() < 0.7 else "motorcycle")
        vw = max(5.0, w * (0.06 if vehicle == "bicycle" else 0.08) * scale)
        vh = vw * 0.6
        s.add(
            vehicle,
            [
                (cx - vw / 2, foot - vh * 0.5),
                (cx - vw / 3, foot),
                (cx - vw / 6, foot - vh * 0.3),
                (cx + vw / 6, foot - vh * 0.3),
                (cx + vw / 3, foot),
                (cx + vw / 2, foot - vh * 0.5),
                (cx + vw / 4, foot - vh),
                (cx - vw / 4, foot - vh),
            ],
        )
        if label != "rider":
            return
        foot = foot - vh * 0.5
    pw = max(3.0, w * 0.03 * scale * rng.uniform(0.8, 1.2))
    ph = pw * (3.2 if label == "person" else 2.2)
    head = pw * 0.22
    s.add(
        label if label == "rider" else "person",
        [
            (cx - 0.5 * pw, foot),
            (cx - 0.4 * pw, foot - 0.55 * ph),
            (cx - 0.5 * pw, foot - 0.8 * ph),
            (cx - head, foot - 0.85 * ph),
            (cx - head, foot - ph),
            (cx + head, foot - ph),
            (cx + head, foot - 0.85 * ph),
            (cx + 0.5 * pw, foot - 0.8 * ph),
            (cx + 0.4 * pw, foot - 0.55 * ph),
            (cx + 0.5 * pw, foot),
        ],
    )


# --------------------------------------------------------------------------- rendering and writing


def render_instance_ids(objects: list[SceneObject], image_size: tuple[int, int]) -> np.ndarray:
    """Draw polygons into an instanceIds map as cityscapesScripts' ``json2instanceImg.py`` does.

    Returns
    -------
    ndarray of uint16, shape (H, W)
        ``labelId * 1000 + k`` for instances of classes with instances (``k`` from 0 per class in
        list order), the labelId for everything else, 0 (unlabeled) where nothing is drawn.
        Labels with labelId -1 (license plate) are not drawn; ``<name>group`` draws as ``<name>``.
    """
    h, w = image_size
    canvas = Image.new("I", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    seen: dict[str, int] = {}
    for obj in objects:
        label, group = obj.label, False
        if label not in _ID and label.endswith("group"):
            label, group = label[: -len("group")], True
        value = _ID[label]
        if value < 0:
            continue
        if label in _HAS_INSTANCES and not group:
            value = value * 1000 + seen.get(label, 0)
            seen[label] = seen.get(label, 0) + 1
        draw.polygon(list(obj.polygon), fill=value)
    return np.asarray(canvas).astype(np.uint16)


def _save(path: Path, arr: np.ndarray, png: str) -> None:
    """uint8 -> L, uint16 -> I;16 (16-bit grey), (H, W, 4) uint8 -> RGBA; ``png`` as in :func:`generate_cityscapes`."""
    write_png(path, arr, encoding="fast" if png == "fast" else "pillow")


def color_image(labels: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA image of a labelIds map: the official colour, alpha 255."""
    return np.take(_RGBA32, labels).view(np.uint8).reshape(labels.shape + (4,))


def polygons_json(objects: list[SceneObject], image_size: tuple[int, int]) -> str:
    """A ``_polygons.json`` text, formatted as the real files (indent 4, ``", "`` separators, no
    final newline)."""
    h, w = image_size
    data = {
        "imgHeight": h,
        "imgWidth": w,
        "objects": [{"label": o.label, "polygon": [[x, y] for x, y in o.polygon]} for o in objects],
    }
    return json.dumps(data, indent=4, separators=(", ", ": "))


def write_scene(
    folder: Path,
    image_id: str,
    objects: list[SceneObject],
    image_size: tuple[int, int],
    *,
    png: str = "cityscapes",
    polygons: bool = True,
) -> np.ndarray:
    """Render ``objects`` and write ``<image_id>_gtFine_{labelIds,instanceIds,color}.png`` (and
    ``_polygons.json``) into ``folder``. Returns the instanceIds map."""
    inst = render_instance_ids(objects, image_size)
    labels = np.take(_LABEL_OF_VALUE, inst)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"{image_id}_gtFine_"
    _save(Path(f"{base}labelIds.png"), labels, png)
    _save(Path(f"{base}instanceIds.png"), inst, png)
    _save(Path(f"{base}color.png"), color_image(labels), png)
    if polygons:
        Path(f"{base}polygons.json").write_text(polygons_json(objects, image_size), encoding="utf-8")
    return inst


def _image_name(i: int) -> tuple[str, str, str]:
    """(split, city, image id) of image i: every sixth image (i = 1, 7, ...) is in val."""
    split = "val" if i % 6 == 1 else "train"
    cities = CITIES[split]
    city = cities[(i // 6) % len(cities)] if split == "val" else cities[i % len(cities)]
    return split, city, f"{city}_{i:06d}_{_FRAME:06d}"


def _left_image(labels_rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.integers(-12, 13, size=labels_rgb.shape[:2] + (1,), dtype=np.int16)
    return np.clip(labels_rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _generate_one(
    root: Path, image_size: tuple[int, int], seed: int, polygons: bool, png: str, left_images: str, i: int
) -> None:
    split, city, image_id = _image_name(i)
    rng = np.random.default_rng([seed, i])
    city_rng = np.random.default_rng([seed, 1_000_000 + sum(city.encode())])
    objects = make_scene(rng, image_size, city=city, city_rng=city_rng)
    inst = write_scene(root / "gtFine" / split / city, image_id, objects, image_size, png=png, polygons=polygons)
    if left_images == "png":
        folder = root / "leftImg8bit" / split / city
        folder.mkdir(parents=True, exist_ok=True)
        rgb = _left_image(color_image(np.take(_LABEL_OF_VALUE, inst))[..., :3], rng)
        write_png(folder / f"{image_id}_leftImg8bit.png", rgb, encoding="pillow", compress_level=1)


def generate_cityscapes(
    root: str | os.PathLike,
    n_images: int = 50,
    *,
    image_size: tuple[int, int] = (1024, 2048),
    seed: int = 0,
    workers: int = 1,
    polygons: bool = True,
    png: str = "cityscapes",
    left_images: str = "none",
) -> Path:
    """Write a synthetic Cityscapes gtFine dataset under ``root``; returns ``root`` (the folder
    holding ``gtFine/``), ready for ``segdata convert cityscapes``.

    Parameters
    ----------
    root : path
        Created if needed; existing files of the same names are overwritten.
    n_images : int
        Images; image ``i`` is in ``val`` when ``i % 6 == 1`` (1, 7, 13, ...), else in ``train``.
        Ids are ``<city>_<i:06d>_000019``.
    image_size : (height, width)
        In pixels (Cityscapes: 1024 x 2048); at least 16 x 32.
    seed : int
        Same seed and arguments: byte-identical files, whatever ``workers``.
    workers : int
        Processes.
    polygons : bool
        Also write ``_gtFine_polygons.json``.
    png : {"cityscapes", "fast"}
        PNG encoding: as the real files (Pillow's default), or unfiltered at zlib level 1 (see the
        module docstring).
    left_images : {"none", "dirs", "png"}
        ``leftImg8bit``: absent; empty ``leftImg8bit/<split>`` folders (what Datumaro's importer
        needs to find a subset); or an RGB image per annotation (label colours with noise).

    Returns
    -------
    pathlib.Path
    """
    if png not in ("cityscapes", "fast"):
        raise ValueError(f"png must be 'cityscapes' or 'fast', got {png!r}")
    if left_images not in ("none", "dirs", "png"):
        raise ValueError(f"left_images must be 'none', 'dirs' or 'png', got {left_images!r}")
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    h, w = (int(v) for v in image_size)
    if h < 16 or w < 32:
        raise ValueError(f"image_size must be at least (16, 32), got {image_size}")
    root = Path(root)
    (root / "gtFine").mkdir(parents=True, exist_ok=True)
    job = partial(_generate_one, root, (h, w), int(seed), polygons, png, left_images)
    for _ in parallel_map(job, range(n_images), workers=max(1, min(int(workers), n_images))):
        pass
    if left_images == "dirs":
        for split in sorted({_image_name(i)[0] for i in range(n_images)}):
            (root / "leftImg8bit" / split).mkdir(parents=True, exist_ok=True)
    return root

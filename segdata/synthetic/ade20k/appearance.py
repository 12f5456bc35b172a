"""Learnable image content for the synthetic ADE20K datasets: every class its own colour and texture.

The default ("plain") photo of the generators colours each object by a hash of its class code plus a tiled noise: fine
for converters and analyses, but two classes may look alike. The "learnable" appearance gives a small network trained
from scratch something to learn, and keeps it hard enough to be interesting:

* a mean colour per class from a well-separated palette (greedy farthest-point sampling of the RGB cube 48..208),
  given to the classes in a seeded random order, so that rare classes are as distinct as frequent ones;
* a texture per class, added along a class-specific colour direction: stripes (class-specific period 4..16 pixels and
  orientation), a checkerboard (period 4..12 pixels) or smooth noise (class-specific grain 1..12 pixels), with a
  class-specific amplitude of 14..34 grey levels;
* per object, a colour offset (standard deviation 8 grey levels per channel) and a random texture phase; per image, a
  vertical illumination gradient (up to 6 %); per pixel, Gaussian noise (standard deviation 8 grey levels); then the
  JPEG compression of the writers.

Only level 0 (whole objects) is drawn: parts take their parent's appearance. Unlabeled pixels (class 0) are a neutral
grey noise (mean 118, standard deviation 14 grey levels). Everything is a function of the vocabulary seed (class look) and of one ``numpy.random.Generator`` per
image (object offsets, phases, noise), so the output is deterministic.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .names import _build_vocabulary, _mix
from .render import RenderedImage

#: texture kinds of :class:`ClassAppearance`
TEXTURES = ("stripes", "checker", "noise")
#: channel values of the palette lie in this range (room for texture and noise before clipping at 0..255)
_LO, _HI = 48.0, 208.0
#: standard deviation of the per-pixel noise, grey levels
PIXEL_NOISE = 8.0
#: standard deviation of the per-object colour offset, grey levels per channel
OBJECT_JITTER = 8.0


@dataclass(frozen=True)
class ClassAppearance:
    """How one class looks in a learnable image.

    Attributes
    ----------
    code : int
        ADE class code.
    colour : tuple of float
        Mean ``(R, G, B)`` in 0..255.
    texture : str
        One of :data:`TEXTURES`.
    scale : float
        Stripe or checker period, or noise grain, in pixels.
    angle : float
        Stripe orientation in radians (0 = vertical stripes); unused by the other textures.
    amplitude : float
        Texture amplitude in grey levels, along ``direction``.
    direction : tuple of float
        Unit RGB vector the texture moves the colour along.
    """

    code: int
    colour: tuple[float, float, float]
    texture: str
    scale: float
    angle: float
    amplitude: float
    direction: tuple[float, float, float]


def _palette(n: int) -> np.ndarray:
    """``(n, 3)`` float RGB colours in ``[_LO, _HI]``: greedy farthest-point sampling of a regular grid, starting at a
    dark corner, so that every prefix is as well spread as the greedy rule allows."""
    side = max(9, math.ceil((4 * n) ** (1 / 3)))
    axis = np.linspace(_LO, _HI, side)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    chosen = [0]
    dist = np.linalg.norm(grid - grid[0], axis=1)
    for _ in range(1, n):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(grid - grid[j], axis=1))
    return grid[chosen]


@functools.lru_cache(maxsize=8)
def class_appearances(n_classes: int, seed: int = 0) -> tuple[ClassAppearance, ...]:
    """The look of each class of the vocabulary :func:`~segdata.synthetic.ade20k.class_details` ``(n_classes, seed)``.

    Returns
    -------
    tuple of ClassAppearance
        In frequency-rank order (rank 1 first), like the vocabulary. Colours are distinct while the palette's
        grid allows (``max(9, ceil((4 * n_classes) ** (1/3))) ** 3`` points); the minimum distance between two
        class colours falls as ``n_classes ** (-1/3)`` (44 grey levels for 40 classes).
    """
    vocab = _build_vocabulary(n_classes, seed)
    # spread the palette over the ranks at random: rare classes are as distinct as frequent ones
    colours = _palette(len(vocab.classes))[
        np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xC010]).permutation(n_classes)
    ]
    out = []
    for rank, info in enumerate(vocab.classes):
        h = _mix(seed, info.code, 0xC010)
        texture = TEXTURES[h % 3]
        u = [((h >> s) & 0xFFFF) / 65535.0 for s in (8, 24, 40)]
        if texture == "stripes":
            scale = 4.0 + 12.0 * u[0]
        elif texture == "checker":
            scale = 4.0 + 8.0 * u[0]
        else:
            scale = 1.0 + 11.0 * u[0]
        d = np.array([math.cos(2 * math.pi * u[1]), math.sin(2 * math.pi * u[1]), 2.0 * u[2] - 1.0])
        d = d / np.linalg.norm(d)
        out.append(
            ClassAppearance(
                code=info.code,
                colour=tuple(float(v) for v in colours[rank]),  # type: ignore[arg-type]
                texture=texture,
                scale=round(scale, 3),
                angle=math.pi * u[1],
                amplitude=14.0 + 20.0 * u[2],
                direction=tuple(float(v) for v in d),  # type: ignore[arg-type]
            )
        )
    return tuple(out)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, grain: float) -> np.ndarray:
    """``(H, W)`` float32 noise in about [-1, 1] with blobs of ``grain`` pixels (bilinear upsampling)."""
    if grain <= 1.5:
        return rng.uniform(-1.0, 1.0, (height, width)).astype(np.float32)
    gh, gw = max(2, int(math.ceil(height / grain)) + 1), max(2, int(math.ceil(width / grain)) + 1)
    small = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
    big = Image.fromarray(small, "F").resize((int(round(gw * grain)), int(round(gh * grain))), Image.BILINEAR)
    return np.asarray(big)[:height, :width] * np.float32(1.6)


def _texture(look: ClassAppearance, rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Texture values in about [-1, 1] on a ``(h, w)`` window given by its row and column coordinates."""
    if look.texture == "stripes":
        phase = rng.uniform(0.0, 2 * math.pi)
        t = xs * math.cos(look.angle) + ys * math.sin(look.angle)
        return np.sin(t * np.float32(2 * math.pi / look.scale) + np.float32(phase))
    if look.texture == "checker":
        oy, ox = rng.uniform(0.0, look.scale, 2)
        cy = np.floor((ys + np.float32(oy)) / np.float32(look.scale / 2)).astype(np.int32)
        cx = np.floor((xs + np.float32(ox)) / np.float32(look.scale / 2)).astype(np.int32)
        return ((cy + cx) % 2).astype(np.float32) * 2 - 1
    noise = _smooth_noise(rng, ys.shape[0], xs.shape[1], look.scale)
    return noise


def render_learnable_photo(image: RenderedImage, n_classes: int, seed: int, rng: np.random.Generator) -> np.ndarray:
    """The learnable photo of a rendered image.

    Parameters
    ----------
    image : RenderedImage
        Its level-0 objects must have codes of the vocabulary ``(n_classes, seed)``; an object of another code is drawn
        as unlabeled.
    n_classes, seed : int
        The vocabulary (see :func:`class_appearances`).
    rng : numpy.random.Generator
        Source of the per-object offsets and phases and of the pixel noise.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    """
    h, w = image.height, image.width
    looks = {a.code: a for a in class_appearances(n_classes, seed)}
    gain = 1.0 + rng.uniform(-0.06, 0.06) * np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None, None]
    owner = image.owners[0]
    photo = np.empty((h, w, 3), np.float32)
    void = owner == 0
    photo[void] = (118.0 + 14.0 * rng.standard_normal(int(np.count_nonzero(void)), dtype=np.float32))[:, None]
    for i, o in enumerate(image.objects):
        if o.part_level != 0 or o.code not in looks:
            continue
        look = looks[o.code]
        y0, x0, m = image.amodal[i]
        sl = (slice(y0, y0 + m.shape[0]), slice(x0, x0 + m.shape[1]))
        sel = owner[sl] == image.slots[i]
        ys = np.arange(y0, y0 + m.shape[0], dtype=np.float32)[:, None]
        xs = np.arange(x0, x0 + m.shape[1], dtype=np.float32)[None, :]
        tex = _texture(look, rng, ys, xs)
        colour = np.asarray(look.colour, np.float32) + rng.normal(0.0, OBJECT_JITTER, 3).astype(np.float32)
        value = colour + (np.float32(look.amplitude) * tex)[..., None] * np.asarray(look.direction, np.float32)
        photo[sl][sel] = value[sel]
    photo *= gain
    photo += rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(PIXEL_NOISE)
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8)

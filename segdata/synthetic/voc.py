"""Synthetic PASCAL VOC 2012 segmentation data in the devkit's exact layout.

``VOCdevkit/VOC2012/``: ``SegmentationClass/<id>.png`` and ``SegmentationObject/<id>.png`` are
8-bit palette PNGs with the devkit colormap (class index 0..20, object number 1..n, 255 void),
``JPEGImages/<id>.jpg``, ``ImageSets/Segmentation/{train,val,trainval}.txt``. As in the real
annotations, a void band (255) of a few pixels is drawn along every object's border, in both maps.
Objects are filled ellipses of varied size over background, painted back to front. The PNGs are
written with Pillow's default encoder through the generators' shared writer (:mod:`segdata.synthetic.pngs`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from segdata.converters.voc import voc_colormap as colormap

from ..runner import parallel_map
from .pngs import write_png

VOID = 255
N_CLASSES = 20  # object classes 1..20; 0 is background


def render_voc(seed: int, size: tuple[int, int] = (375, 500), band: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(class map, object map) of one synthetic image, (H, W) uint8 each, with void bands."""
    rng = np.random.default_rng(seed)
    h, w = size
    classes = np.zeros((h, w), np.uint8)
    objects = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    n = int(rng.integers(1, 6))
    for k in range(1, n + 1):
        cls = int(min(N_CLASSES, 1 + rng.zipf(1.6) % N_CLASSES))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.04, 0.4) * h, rng.uniform(0.04, 0.4) * w
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        classes[inside] = cls
        objects[inside] = k
    # void band along every object border (inside and outside), in both maps
    edges = np.zeros((h, w), bool)
    for k in range(1, n + 1):
        m = objects == k
        if m.any():
            edges |= ndimage.binary_dilation(m, iterations=band) & ~ndimage.binary_erosion(m, iterations=band)
    classes[edges] = VOID
    objects[edges] = VOID
    return classes, objects


def _write_one(args) -> str:
    base, image_id, seed, size = args
    palette = colormap().ravel().tolist()
    classes, objects = render_voc(seed, size)
    write_png(base / "SegmentationClass" / f"{image_id}.png", classes, encoding="pillow", palette=palette)
    write_png(base / "SegmentationObject" / f"{image_id}.png", objects, encoding="pillow", palette=palette)
    rgb = colormap()[classes]
    Image.fromarray(rgb).save(base / "JPEGImages" / f"{image_id}.jpg", quality=75)
    return image_id


def generate_voc(
    root: str | Path,
    n_images: int = 50,
    *,
    size: tuple[int, int] = (375, 500),
    val_fraction: float = 0.3,
    seed: int = 0,
    workers: int = 1,
) -> Path:
    """Write ``n_images`` into ``root/VOCdevkit/VOC2012``; returns that directory. Deterministic."""
    base = Path(root) / "VOCdevkit" / "VOC2012"
    for sub in ("SegmentationClass", "SegmentationObject", "JPEGImages", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"2007_{i:06d}" for i in range(n_images)]
    jobs = [(base, image_id, seed * 1_000_003 + i, size) for i, image_id in enumerate(ids)]
    for _ in parallel_map(_write_one, jobs, workers=max(1, min(int(workers), n_images)), batch_size=8):
        pass
    n_val = int(round(n_images * val_fraction))
    lists = base / "ImageSets" / "Segmentation"
    (lists / "train.txt").write_text("".join(f"{i}\n" for i in ids[n_val:]))
    (lists / "val.txt").write_text("".join(f"{i}\n" for i in ids[:n_val]))
    (lists / "trainval.txt").write_text("".join(f"{i}\n" for i in ids))
    return base

"""Helpers shared by the full-dataset readers: the ``_seg``/``_parts_N`` level maps, their (class code,
B value) regions, and size checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segdata.convert import image_row
from segdata.errors import InputError
from segdata.maskio import decode_ade_rgb, image_size, read_png
from segdata.regions import bounding_boxes, compact_labels

from .layout import _SEG_SUFFIX, MAX_PART_LEVELS, Layout, Task

# --------------------------------------------------------------------------- helpers


def _short_name(wordnet_name: str) -> str:
    """First synonym of a WordNet-style name: 'car, auto, automobile' -> 'car'."""
    return wordnet_name.split(",")[0].split(";")[0].strip()


def _b_to_instance(b_values: np.ndarray, n: int) -> dict[int, int]:
    """Map B values of one level to instance numbers k (1..n).

    ADE20K writes instance k of n as B = round_half_up(k * 255 / n). When every observed B
    fits that rule it is inverted exactly; otherwise instances are numbered by B rank.
    """
    rule = {(2 * k * 255 + n) // (2 * n): k for k in range(1, n + 1)} if n > 0 else {}
    if n <= 255 and all(int(b) in rule for b in b_values):
        return {int(b): rule[int(b)] for b in b_values}
    return {int(b): i + 1 for i, b in enumerate(sorted(int(b) for b in b_values))}


def _decode_level(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode one ``_seg``/``_parts_N`` PNG into segments.

    Returns segmap (H, W), codes (n,), b_values (n,), areas (n,), boxes (n, 4).
    """
    rgb = read_png(path, expect="rgb8")
    codes, inst = decode_ade_rgb(rgb, path)
    keys = codes << 8
    keys |= inst
    segmap, present, areas = compact_labels(keys, min_key=256)
    return segmap, present >> 8, present & 255, areas, bounding_boxes(segmap, len(present))


def _iter_levels(base: Path, counts: dict[int, int], listed_in: Path, image: Path | None, stated=None):
    """Yield ``(level, png, decoded)`` for ``<base>_seg.png`` (level 0) and each ``_parts_N.png``.

    Checks that every level the annotation file ``listed_in`` has objects at exists as a PNG, that
    the object map has the image's size (and the ``stated`` (H, W) when given), and that part maps
    have the object map's size. ``decoded`` is what :func:`_decode_level` returns.
    """
    max_level = max(counts, default=0)
    shape = None
    for level in range(0, max_level + 1 + MAX_PART_LEVELS):
        png = base.with_name(base.name + (_SEG_SUFFIX if level == 0 else f"_parts_{level}.png"))
        if not png.is_file():
            if level == 0:
                raise InputError(png, "segmentation PNG not found")
            if level in counts:
                raise InputError(
                    png, f"not found, but {listed_in.name} lists {counts[level]} object(s) of level {level}"
                )
            if level > max_level:
                break
            continue
        decoded = _decode_level(png)
        hw = decoded[0].shape
        if level == 0:
            _check_size(png, hw, image, stated, listed_in if stated is not None else None)
            shape = hw
        elif hw != shape:
            raise InputError(png, f"part map is {hw[1]}x{hw[0]}, object map is {shape[1]}x{shape[0]}")
        yield level, png, decoded


def _check_size(
    mask_path: Path,
    mask_hw: tuple[int, int],
    image: Path | None,
    stated: tuple[int, int] | None,
    stated_in: Path | None,
):
    if stated is not None and tuple(stated) != tuple(mask_hw):
        raise InputError(
            mask_path,
            f"mask is {mask_hw[1]}x{mask_hw[0]} but {stated_in.name if stated_in else 'the annotation'} "
            f"states {stated[1]}x{stated[0]}",
        )
    if image is not None and image.is_file():
        hw = image_size(image)
        if hw != tuple(mask_hw):
            raise InputError(mask_path, f"mask is {mask_hw[1]}x{mask_hw[0]} but image {image.name} is {hw[1]}x{hw[0]}")


def _layer_name(prefix: str, level: int) -> str:
    base = prefix or "objects"
    if level == 0:
        return base
    return f"parts-{level}" if not prefix else f"{prefix}-parts-{level}"


def _read_text(path: Path, what: str) -> str:
    """A source text file as str: UTF-8, or Latin-1 for the few ADE20K files that are not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, f"{what} not found") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _image_row(layout: Layout, task: Task, *, segmap_shape, image: Path | None, annotation: Path, scene) -> dict:
    file = None
    if image is not None and image.is_file():
        file = image.relative_to(layout.image_root).as_posix()
    return image_row(
        task.image_id, task.split, segmap_shape, file, annotation.relative_to(layout.image_root).as_posix(), scene
    )


def _missing_image(image: Path | None) -> list[tuple[str, str]]:
    if image is None or image.is_file():
        return []
    return [(str(image), "image file missing; annotation converted without it")]

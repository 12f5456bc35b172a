"""The ADE20K label encoding: class code ``R // 10 * 256 + G`` and instance value ``B`` of ``_seg.png`` and
``_parts_<N>.png``, and the 2016 ``_atr.txt`` attribute files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

#: Largest class code the ADE RGB encoding can hold (R = 250, G = 255).
ADE_MAX_CODE = 25 * 256 + 255
#: At most this many objects per part level, so that the B values of one level stay distinct.
_MAX_PER_LEVEL = 255

PathLike = Union[str, "os.PathLike[str]"]


def encode_ade_rgb(codes: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Encode class codes and instance values as an ADE20K full-dataset RGB label image.

    Parameters
    ----------
    codes : numpy.ndarray
        ``(H, W)`` integer array of ADE class codes, 0 (unlabeled) to :data:`ADE_MAX_CODE` (6655).
    instances : numpy.ndarray
        ``(H, W)`` integer array of instance values 0..255 written to the blue channel (see
        :func:`ade_instance_b_values`); unlabeled pixels normally have 0.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 array with ``R = code // 256 * 10``, ``G = code % 256`` and ``B = instances``.

    Raises
    ------
    ValueError
        If the shapes differ or are not 2-D, or if a code or an instance value is out of range (the message names the
        first offending value).
    """
    codes = np.asarray(codes)
    instances = np.asarray(instances)
    if codes.ndim != 2 or codes.shape != instances.shape:
        raise ValueError(
            f"codes and instances must be 2-D arrays of one shape, got {codes.shape} and {instances.shape}"
        )
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be an integer array, got dtype {codes.dtype}")
    if not np.issubdtype(instances.dtype, np.integer):
        raise ValueError(f"instances must be an integer array, got dtype {instances.dtype}")
    if codes.size:
        bad = codes[(codes < 0) | (codes > ADE_MAX_CODE)]
        if bad.size:
            raise ValueError(f"class code {int(bad[0])} is out of range 0..{ADE_MAX_CODE}")
        bad = instances[(instances < 0) | (instances > 255)]
        if bad.size:
            raise ValueError(f"instance value {int(bad[0])} is out of range 0..255")
    out = np.empty(codes.shape + (3,), np.uint8)
    out[..., 0] = (codes // 256) * 10
    out[..., 1] = codes % 256
    out[..., 2] = instances
    return out


def ade_instance_b_values(n: int) -> np.ndarray:
    """Blue-channel values of the N instances of one part level in ADE20K label PNGs.

    Parameters
    ----------
    n : int
        Number of objects at the level (N >= 0). The values are distinct for ``N <= 255``.

    Returns
    -------
    numpy.ndarray
        uint8 array of length N; element ``k - 1`` is ``round_half_up(k * 255 / N)`` for ``k = 1..N`` (computed
        exactly in integers).
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"number of instances must be >= 0, got {n}")
    if n == 0:
        return np.zeros(0, np.uint8)
    k = np.arange(1, n + 1, dtype=np.int64)
    return ((2 * 255 * k + n) // (2 * n)).astype(np.uint8)


def write_atr(path: PathLike, rows: Iterable[Sequence[object]]) -> Path:
    """Write an ADE20K 2016 ``<stem>_atr.txt`` attribute file.

    Parameters
    ----------
    path : path-like
        Output file.
    rows : iterable of sequences
        One row per object or part: ``(instance, part_level, occluded, name, raw_name, attributes)``. ``instance`` is
        the object's instance rank k (1..N within its part level, written zero-padded to 3 digits), ``part_level`` an
        int, ``occluded`` a bool or 0/1, ``name`` the WordNet-style class name, ``raw_name`` the annotator's name and
        ``attributes`` a sequence of strings (or one string), written as ``"a,b"``. Level-0 rows should come first.

    Returns
    -------
    pathlib.Path
        The written path. Lines are `` # ``-separated, ``\\n``-terminated, e.g. ``001 # 0 # 0 # wall # wall # ""``.

    Raises
    ------
    ValueError
        If a row does not have 6 fields or a text field contains ``" # "``, ``'"'`` or a line break.
    """
    lines = []
    for row in rows:
        row = tuple(row)
        if len(row) != 6:
            raise ValueError(f"an atr row needs 6 fields, got {len(row)}: {row!r}")
        instance, level, occluded, name, raw_name, attributes = row
        attrs = [attributes] if isinstance(attributes, str) else list(attributes)
        attrs = [a for a in attrs if a]
        for text in (str(name), str(raw_name), *map(str, attrs)):
            if " # " in text or "\n" in text or "\r" in text or '"' in text:
                raise ValueError(f"atr text field {text!r} contains a separator, a quote or a line break")
        lines.append(
            f"{int(instance):03d} # {int(level)} # {int(bool(occluded))} # {name} # {raw_name} # "
            f'"{",".join(map(str, attrs))}"\n'
        )
    path = Path(path)
    path.write_bytes("".join(lines).encode("utf-8"))
    return path


def _lut_planes(owner: np.ndarray, lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map a uint8 index image through a (256, 3) uint8 table; returns the R, G and B planes (PIL point, fast)."""
    src = Image.fromarray(np.ascontiguousarray(owner))
    return tuple(np.asarray(src.point(lut[:, c].astype(np.uint8).tolist())) for c in range(3))  # type: ignore


def _lut_gray(owner: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map a uint8 index image through a (256,) uint8 table."""
    return np.asarray(Image.fromarray(owner).point(lut.astype(np.uint8).tolist()))

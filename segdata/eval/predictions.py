"""Prediction files: finding ``<image_id>.png`` under a folder, and reading one as a grey label map.

A prediction is a single-channel PNG, 8-bit or 16-bit grey, of the image's size, holding one id
per pixel in the evaluation's id space (:mod:`segdata.eval.space`). Files are found recursively;
``<image_id>.png`` is the name, and Cityscapes' submission names (``<image_id>_<anything>.png``,
e.g. ``frankfurt_000000_000294_leftImg8bit.png``) are accepted too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..maskio import decode_png, png_header

#: PNG colour types by name, for error messages
_COLOR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey with alpha", 6: "RGBA"}


def find_predictions(folder: str | Path, image_ids) -> tuple[dict[str, Path], list[str]]:
    """Match prediction files under ``folder`` (recursively) to ``image_ids``.

    Returns
    -------
    (found, missing)
        ``found`` maps an image id to its file; ``missing`` lists the image ids without one, in
        the order given.

    Raises
    ------
    InputError
        ``folder`` is not a folder, or two files claim the same image (naming both).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "the prediction folder does not exist" if not folder.exists() else "not a folder")
    wanted = set(image_ids)
    found: dict[str, Path] = {}
    exact: set[str] = set()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if not name.lower().endswith(".png"):
                continue
            stem = name[:-4]
            path = Path(root) / name
            if stem in wanted:
                key, is_exact = stem, True
            else:  # Cityscapes' submission names: <image_id>_<suffix>.png
                key, is_exact = None, False
                cut = stem.rfind("_")
                while cut > 0:
                    if stem[:cut] in wanted:
                        key = stem[:cut]
                        break
                    cut = stem.rfind("_", 0, cut)
                if key is None:
                    continue
            if key in found:
                if is_exact and key not in exact:  # <image_id>.png wins over a suffixed name
                    found[key] = path
                    exact.add(key)
                    continue
                if not is_exact and key in exact:
                    continue
                raise InputError(path, f"a second prediction for image {key} (the first is {found[key]})")
            found[key] = path
            if is_exact:
                exact.add(key)
    missing = [i for i in image_ids if i not in found]
    return found, missing


def read_prediction(path: str | Path, shape: tuple[int, int] | None = None, *, view: bool = False) -> np.ndarray:
    """Read one prediction: a single-channel grey PNG, 8- or 16-bit, of ``shape`` (H, W).

    With ``view``, the array may be a strided (and, for 16-bit, big-endian) view of the decoded
    rows, as :func:`segdata.maskio.decode_png` gives it.

    Raises
    ------
    InputError
        Naming the file: not found, not a PNG, a palette / RGB / alpha file (a colour-coded
        prediction: predictions must be ids), or a size other than ``shape``.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(path, "prediction file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read the prediction ({exc.strerror})") from None
    width, height, depth, ctype = png_header(data, path)
    if ctype != 0 or depth not in (8, 16):
        kind = _COLOR_TYPES.get(ctype, f"colour type {ctype}")
        raise InputError(
            path,
            f"a {depth}-bit {kind} PNG: a prediction must be a single-channel grey PNG (8- or 16-bit) of ids",
            "write the predicted ids, not a colour rendering" if ctype in (2, 3, 6) else None,
        )
    if shape is not None and (height, width) != tuple(shape):
        raise InputError(path, f"prediction is {width}x{height}, the image is {shape[1]}x{shape[0]}")
    return decode_png(data, path, view=view)

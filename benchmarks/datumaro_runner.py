"""Datumaro side of the segdata-vs-Datumaro conversion benchmark.

Datumaro (openvinotoolkit/datumaro, PyPI ``datumaro``) is a benchmark-only dependency
(``pip install segdata[bench]``). This module imports fine without it: every ``import datumaro``
happens inside a function.

What is timed: ``Dataset.import_from`` plus ``Dataset.export`` to Datumaro's own format. The export
materialises every lazy annotation (each mask is decoded and RLE-encoded into the JSON), so the time
covers decoding all label images. Importing the ``datumaro`` package itself is not timed.

Root paths Datumaro expects (checked with datumaro 1.13.12):

* ``ade20k2020``: the folder whose children are the subsets, i.e. ``ADE20K_2021_17_01/images/ADE``
  (children ``training/``, ``validation/``). Item ids are then ``urban/street/ADE_train_00016869``.
  Passing ``ADE20K_2021_17_01`` or ``ADE20K_2021_17_01/images`` fails with ``DatasetNotFoundError``
  (its ``find_sources`` looks for an image at most 4 levels down). ``datumaro_root`` descends from
  the release folder to ``images/ADE`` by itself.
* ``cityscapes``: the folder holding ``gtFine/`` and ``leftImg8bit/``. Every ``gtFine/<subset>`` needs a
  ``leftImg8bit/<subset>`` folder (it may be empty), or the import fails with
  ``NotADirectoryError: Can't find dataset directory: .../leftImg8bit/<subset>``;
  ``ensure_cityscapes_image_dirs`` creates the missing empty ones (only do that on a scratch copy).

Usage::

    python benchmarks/datumaro_runner.py PATH [FORMAT] [--out DIR] [--save-media]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

__all__ = [
    "datumaro_available",
    "datumaro_convert",
    "datumaro_root",
    "ensure_cityscapes_image_dirs",
    "missing_cityscapes_image_dirs",
]


def datumaro_available() -> str | None:
    """The installed Datumaro version, or None when it cannot be imported."""
    try:
        import datumaro
    except Exception:  # ImportError, or a broken install (e.g. a numpy ABI mismatch)
        return None
    version = getattr(datumaro, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as _version

            version = _version("datumaro")
        except Exception:
            version = "unknown"
    return str(version)


def datumaro_root(src: str | Path, fmt: str = "ade20k2020") -> Path:
    """The path to hand to ``Dataset.import_from`` for ``src``.

    For ``ade20k2020`` Datumaro treats the first directory level under the root as subsets, so the
    root must be ``<release>/images/ADE``. A release folder (``ADE20K_2021_17_01``) or its ``images``
    folder is resolved to that. Other formats are returned unchanged.
    """
    src = Path(src)
    if fmt == "ade20k2020":
        for cand in (src / "images" / "ADE", src / "ADE"):
            if cand.is_dir():
                return cand
    return src


def missing_cityscapes_image_dirs(root: str | Path) -> list[Path]:
    """``leftImg8bit/<subset>`` folders that Datumaro's cityscapes importer needs but that are absent."""
    root = Path(root)
    gt = root / "gtFine"
    if not gt.is_dir():
        return []
    return [
        root / "leftImg8bit" / d.name
        for d in sorted(gt.iterdir())
        if d.is_dir() and not (root / "leftImg8bit" / d.name).is_dir()
    ]


def ensure_cityscapes_image_dirs(root: str | Path) -> list[Path]:
    """Create the missing empty ``leftImg8bit/<subset>`` folders (use on a scratch copy). Returns them."""
    missing = missing_cityscapes_image_dirs(root)
    for d in missing:
        d.mkdir(parents=True, exist_ok=True)
    return missing


def datumaro_convert(
    src: str | Path,
    out: str | Path,
    fmt: str = "ade20k2020",
    export_format: str = "datumaro",
    save_media: bool = False,
) -> dict:
    """Import ``src`` with Datumaro as ``fmt`` and export it to ``out`` as ``export_format``.

    Returns ``{"items": n, "seconds": wall_time, "annotations": n, "root": path_used,
    "annotations_by_type": {...}, "datumaro": version}``. ``seconds`` is the wall time of import
    plus export (the export materialises all lazy masks). ``out`` must be absent or empty.
    """
    try:
        import datumaro as dm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError("datumaro is not installed (pip install datumaro)") from e

    root = datumaro_root(src, fmt)
    if fmt == "cityscapes":
        missing = missing_cityscapes_image_dirs(root)
        if missing:
            raise FileNotFoundError(
                "Datumaro's cityscapes importer needs a leftImg8bit/<subset> folder for every "
                f"gtFine/<subset>; missing: {[str(m) for m in missing]}. Create them (empty) on a "
                "scratch copy, e.g. with ensure_cityscapes_image_dirs()."
            )

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"export folder is not empty: {out}")
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    dataset = dm.Dataset.import_from(str(root), fmt)
    dataset.export(str(out), export_format, save_media=save_media)
    seconds = time.perf_counter() - t0

    # Counting after the clock stops: the items are cached by then, nothing is decoded again.
    n_items = 0
    by_type: dict[str, int] = {}
    for item in dataset:
        n_items += 1
        for ann in item.annotations:
            name = getattr(ann.type, "name", str(ann.type))
            by_type[name] = by_type.get(name, 0) + 1

    return {
        "items": n_items,
        "seconds": seconds,
        "annotations": sum(by_type.values()),
        "annotations_by_type": dict(sorted(by_type.items())),
        "root": str(root),
        "datumaro": datumaro_available(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Time Datumaro import + export of a dataset.")
    p.add_argument("path", help="dataset root (for ade20k2020 the release folder or its images/ADE)")
    p.add_argument("format", nargs="?", default="ade20k2020", help="Datumaro import format (default ade20k2020)")
    p.add_argument("--out", help="export folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--export-format", default="datumaro")
    p.add_argument("--save-media", action="store_true")
    args = p.parse_args(argv)

    if datumaro_available() is None:
        print(json.dumps({"error": "datumaro is not installed"}))
        return 2

    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="datumaro_bench_")
        out = os.path.join(tmp, "out")
    try:
        res = datumaro_convert(args.path, out, args.format, args.export_format, args.save_media)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    res["seconds_per_item"] = res["seconds"] / res["items"] if res["items"] else None
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

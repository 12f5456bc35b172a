"""``segdata demo``: the main job on a built-in synthetic sample, no download needed.

Generates a small ADE20K dataset in the 2021_17_01 on-disk layout (power-law class frequencies,
realistic region shapes, images from a few hundred pixels to a few megapixels), converts it into
the unified format, validates it and summarises it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from .convert import convert
from .summary import summarize
from .validate import validate


def run_demo(
    out: str | Path,
    *,
    n_images: int = 60,
    workers: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Run the demo into ``out`` (replaced if it exists) and return what it found.

    Returns
    -------
    dict
        ``source`` (generated ADE20K root), ``dataset`` (unified output), ``convert_seconds``,
        ``validation`` (list of findings, empty when valid), ``summary`` (see
        :func:`segdata.summary.summarize`).
    """
    from .converters import ade20k
    from .synthetic import generate_ade20k_2021

    out = Path(out)
    source_dir = out / "source"
    dataset_dir = out / "ade20k-unified"
    shutil.rmtree(source_dir, ignore_errors=True)
    release = generate_ade20k_2021(source_dir, n_images, image_size="varied", seed=seed, workers=workers or 1)
    start = time.perf_counter()
    convert(ade20k, release, dataset_dir, workers=workers, overwrite=True, name="demo", progress=progress)
    seconds = time.perf_counter() - start
    findings = validate(dataset_dir, workers=workers)
    return {
        "source": str(release),
        "dataset": str(dataset_dir),
        "convert_seconds": round(seconds, 3),
        "validation": [f.as_dict() for f in findings],
        "summary": summarize(dataset_dir),
    }

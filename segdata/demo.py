"""``segdata demo``: the main job on a built-in synthetic sample, no download needed.

Generates a small ADE20K dataset in the 2021_17_01 on-disk layout (power-law class frequencies,
realistic region shapes, images from a few hundred pixels to a few megapixels), converts it into
the unified format, validates it, summarises it and measures its long tail and object sizes.
Then the annotation ceiling: a small ADE20K consistency set whose second annotation is a
simulated re-annotation calibrated on the ADE20K study (82.4% agreement; 5.7 / 6.0 / 5.9%
disagreement), converted and compared, with the ceiling written to ``ceiling.json``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .convert import convert
from .summary import summarize
from .validate import validate


def run_demo(
    out: str | Path,
    *,
    n_images: int = 60,
    n_consistency: int = 4,
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
        :func:`segdata.summary.summarize`), ``longtail`` and ``small_objects`` (the headline
        figures of those analyses), ``consistency`` (the simulated re-annotation of
        ``n_consistency`` images of 1024x768: measured agreement and breakdown next to the
        generator's exact edits and the published ADE20K figures, and the ceiling file).
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
    from .analyses.longtail import longtail_report
    from .analyses.small_objects import small_objects_report
    from .format import Dataset

    ds = Dataset(dataset_dir)
    tail = longtail_report(ds, bootstrap=50)
    sizes = small_objects_report(ds, workers=workers)
    return {
        "source": str(release),
        "dataset": str(dataset_dir),
        "convert_seconds": round(seconds, 3),
        "validation": [f.as_dict() for f in findings],
        "summary": summarize(dataset_dir),
        "longtail": {
            "classes_for_coverage": tail["classes_for_coverage"],
            "powerlaw": {k: tail["powerlaw"][k] for k in ("alpha", "xmin", "rank_exponent", "ks", "p_value")},
            "gini": tail["gini"],
            "buckets": tail["buckets"],
        },
        "small_objects": {k: sizes[k] for k in ("unit", "objects", "size_buckets", "below_stride")},
        "consistency": _consistency(out, n_consistency, workers, seed) if n_consistency else None,
    }


def _consistency(out: Path, n_images: int, workers: int | None, seed: int) -> dict:
    """The simulated re-annotation: generate, convert, compare; the figures and the ceiling file."""
    from .analyses import consistency
    from .converters import ade20k
    from .synthetic import generate_ade20k_consistency

    source_dir = out / "consistency-source"
    dataset_dir = out / "consistency-unified"
    shutil.rmtree(source_dir, ignore_errors=True)
    generated = generate_ade20k_consistency(
        source_dir, n_images, image_size=(768, 1024), parts=False, seed=seed, workers=workers or 1
    )
    convert(ade20k, generated.path, dataset_dir, workers=workers, overwrite=True, name="demo-consistency")
    result = consistency.compare(dataset_dir, layers="objects,reannotation", workers=workers, bootstrap=200, seed=seed)
    ceiling = consistency.write_ceiling(out / "ceiling.json", result)
    return {
        "dataset": str(dataset_dir),
        "images": n_images,
        "pixel_agreement": result.figures["pixel_agreement"],
        "miou": result.figures["miou"],
        "breakdown": {c: result.breakdown[c] for c in consistency.CATEGORIES},
        "generator": {"pixel_agreement": generated.agreement, **generated.fractions()},
        "published": dict(consistency.ADE20K_REFERENCE),
        "ceiling": str(ceiling),
    }

"""``segdata demo``: the main job on a built-in synthetic sample, no download needed.

Generates a small ADE20K dataset in the 2021_17_01 on-disk layout (power-law class frequencies,
realistic region shapes, images from a few hundred pixels to a few megapixels), converts it into
the unified format, validates it, summarises it and measures its long tail and object sizes.
Then the annotation ceiling: a small ADE20K consistency set whose second annotation is a
simulated re-annotation calibrated on the ADE20K study (82.4% agreement; 5.7 / 6.0 / 5.9%
disagreement), converted and compared, with the ceiling written to ``ceiling.json``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .convert import convert, remove_path
from .errors import OutputExistsError
from .summary import summarize
from .validate import validate

#: the file that marks a folder as written by ``segdata demo`` (what a rerun may replace)
MARKER = ".segdata-demo"
#: what the demo writes under ``--out``, and nothing else (besides the marker)
ENTRIES = ("source", "ade20k-unified", "consistency-source", "consistency-unified", "ceiling.json")


def run_demo(
    out: str | Path,
    *,
    n_images: int = 60,
    n_consistency: int = 4,
    workers: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Run the demo into the folder ``out`` and return what it found.

    The demo writes :data:`ENTRIES` and the marker file :data:`MARKER` under ``out`` (created if
    need be) and nothing else. A rerun into a folder the demo wrote (the marker is there) replaces
    them; an entry in a folder without the marker belongs to someone else and is replaced only with
    ``overwrite`` (other files in ``out`` are never touched). When the run fails, what it wrote is
    removed.

    Raises
    ------
    OutputExistsError
        ``out`` exists and is not a folder, or one of the entries is there, was not written by the
        demo and ``overwrite`` is false.

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
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder; give --out a folder (new or the demo's own)")
    created = not out.exists()
    marked = (out / MARKER).is_file()
    present = [out / name for name in ENTRIES if (out / name).exists() or (out / name).is_symlink()]
    if present and not marked and not overwrite:
        raise OutputExistsError(
            f"{present[0]} exists and was not written by segdata demo; pass --overwrite to replace it "
            "(or choose another --out)"
        )
    out.mkdir(parents=True, exist_ok=True)
    try:
        if not marked:
            (out / MARKER).write_text(json.dumps({"written_by": "segdata demo", "segdata_version": __version__}) + "\n")
        for path in present + _partials(out):
            remove_path(path)
        return _run(out, n_images, n_consistency, workers, seed, progress)
    except BaseException:
        # leave nothing half-written: what this run wrote goes (and the folder, when it made it)
        with contextlib.suppress(OSError):
            if created:
                shutil.rmtree(out)
            else:
                for path in [out / name for name in ENTRIES] + _partials(out):
                    remove_path(path)
                if not marked:
                    (out / MARKER).unlink(missing_ok=True)
        raise


def _partials(out: Path) -> list[Path]:
    """The temporary siblings that segdata's writers leave while they run (an interrupted
    conversion's ``.segdata-partial``), for the demo's entries."""
    names = [name + suffix for name in ENTRIES for suffix in (".segdata-partial", ".segdata-old")]
    return [out / name for name in names if (out / name).exists() or (out / name).is_symlink()]


def _run(out: Path, n_images, n_consistency, workers, seed, progress) -> dict:
    from .converters import ade20k
    from .synthetic import generate_ade20k_2021

    source_dir = out / "source"
    dataset_dir = out / "ade20k-unified"
    release = generate_ade20k_2021(source_dir, n_images, image_size="varied", seed=seed, workers=workers or 1)
    start = time.perf_counter()
    convert(ade20k, release, dataset_dir, workers=workers, name="demo", progress=progress)
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
    generated = generate_ade20k_consistency(
        source_dir, n_images, image_size=(768, 1024), parts=False, seed=seed, workers=workers or 1
    )
    convert(ade20k, generated.path, dataset_dir, workers=workers, name="demo-consistency")
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

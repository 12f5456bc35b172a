"""A learnable synthetic ADE20K dataset in one call (what ``segdata synthesize ade20k`` writes): the 2021 layout
with a training and a validation split, learnable images, power-law classes, and optionally the simulated
re-annotation of its first training images in the 2017 consistency-set layout. Written whole or not at all."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .encoding import PathLike
from .generate import generate_ade20k_2021, generate_ade20k_consistency
from .perturbation import ConsistencyPerturbation, ConsistencySummary
from .writers import DIR_2021, DIR_CONSISTENCY

#: defaults of :func:`synthesize_ade20k` (and of ``segdata synthesize ade20k``)
DEFAULT_IMAGES = 300
DEFAULT_CLASSES = 40
DEFAULT_SIZE = (256, 256)
#: class frequency by rank, in number of objects, follows ``rank ** -DEFAULT_ZIPF``: with the defaults a handful of
#: classes are in more than 100 training images and about a third in at most 10 (LVIS's rare bucket)
DEFAULT_ZIPF = 1.7
DEFAULT_VAL_FRACTION = 0.2


@dataclass(frozen=True)
class SynthesizedADE20K:
    """What :func:`synthesize_ade20k` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The output folder.
    release : pathlib.Path
        ``path / "ADE20K_2021_17_01"``: convert this one (``segdata convert ade20k <release> --to unified U``).
    images : dict of str to int
        Images per split folder: ``{"training": n, "validation": m}``.
    classes : int
        Vocabulary size (not every class need be drawn; each is in at least one training image when there are at
        least ``classes`` training images).
    image_size : tuple of int
        ``(height, width)`` in pixels.
    seed : int
    zipf_exponent : float
    consistency : ConsistencySummary or None
        The re-annotation of the first training images (``path / "ADE20K_2017_05_30_consistency"``), with the
        generator's exact edit counts; None when none was asked for.
    seconds : float
        Wall time of the generation.
    """

    path: Path
    release: Path
    images: dict[str, int]
    classes: int
    image_size: tuple[int, int]
    seed: int
    zipf_exponent: float
    consistency: ConsistencySummary | None
    seconds: float

    def as_dict(self) -> dict:
        """JSON-ready summary (paths as strings; the consistency set's generator figures when there is one)."""
        cons = None
        if self.consistency is not None:
            c = self.consistency
            cons = {
                "path": str(c.path),
                "images": len(c.images),
                "stems": [r.stem for r in c.images],
                "pixel_agreement": c.agreement,
                **c.fractions(),
            }
        return {
            "path": str(self.path),
            "release": str(self.release),
            "layout": "ADE20K_2021_17_01",
            "images": dict(self.images),
            "classes": self.classes,
            "image_size": list(self.image_size),
            "seed": self.seed,
            "zipf_exponent": self.zipf_exponent,
            "appearance": "learnable",
            "consistency": cons,
            "seconds": round(self.seconds, 3),
        }


def synthesize_ade20k(
    out: PathLike,
    n_images: int = DEFAULT_IMAGES,
    *,
    n_classes: int = DEFAULT_CLASSES,
    image_size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    n_consistency: int = 0,
    zipf_exponent: float = DEFAULT_ZIPF,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    parts: bool = False,
    perturbation: ConsistencyPerturbation | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthesizedADE20K:
    """Write a learnable synthetic ADE20K dataset into the folder ``out``.

    ``out/ADE20K_2021_17_01`` is :func:`generate_ade20k_2021` with ``appearance="learnable"`` (each class its own
    colour and texture, pixel noise, overlapping objects from a few pixels to bands across the image; every class in
    at least one training image): ``images/ADE/training/`` holds ``ADE_train_%08d`` and ``images/ADE/validation/``
    ``ADE_val_%08d``. With ``n_consistency > 0``, ``out/ADE20K_2017_05_30_consistency`` holds the first
    ``n_consistency`` training images (same stems, same JPEG bytes, same label maps) and their simulated
    re-annotation (:class:`ConsistencyPerturbation`, by default calibrated on ADE20K's 82.4 % pixel agreement).
    Everything is written to ``out.segdata-partial`` and renamed at the end.

    Parameters
    ----------
    out : path-like
        Output folder; must not exist unless ``overwrite`` (then it is replaced once the new one is complete).
    n_images : int
        Images in all (at least 2); ``round(n_images * val_fraction)`` of them (at least 1) are validation images.
    n_classes : int
        Vocabulary size.
    image_size : (int, int)
        ``(height, width)`` of every image, in pixels (16..4096).
    seed : int
        Same arguments and seed, byte-identical files (whatever ``workers``).
    n_consistency : int
        Images re-annotated (0 = no consistency set); at most the number of training images.
    zipf_exponent : float
        Class frequency by rank, in number of objects, follows ``rank ** -zipf_exponent``.
    val_fraction : float
        Share of validation images.
    parts : bool
        Also draw parts (``_parts_<N>.png``); the images do not show them.
    perturbation : ConsistencyPerturbation, optional
        Edit budgets of the re-annotation (default: the ADE20K study's).
    workers : int, optional
        Processes (default: all cores).
    overwrite : bool
        Replace an existing ``out``.
    progress : callable, optional
        ``progress(done, total)`` over the ``n_images + n_consistency`` images.

    Returns
    -------
    SynthesizedADE20K

    Raises
    ------
    OutputExistsError
        ``out`` exists and ``overwrite`` is false.
    ValueError
        On an argument out of range.
    """
    from ...convert import atomic_output

    h, w = (int(v) for v in image_size)
    if not (16 <= h <= 4096 and 16 <= w <= 4096):
        raise ValueError(f"image size must be between 16 and 4096 pixels per side, got {h}x{w}")
    if n_images < 2:
        raise ValueError(f"n_images must be at least 2 (a training and a validation image), got {n_images}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = min(n_images - 1, max(1, int(round(n_images * val_fraction))))
    n_train = n_images - n_val
    if not 0 <= n_consistency <= n_train:
        raise ValueError(f"n_consistency must be in 0..{n_train} (the training images), got {n_consistency}")
    if workers is None:
        workers = os.cpu_count() or 1
    total = n_images + n_consistency

    def step(offset: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, _: progress(offset + done, total)

    out = Path(out)
    start = time.perf_counter()
    common = {
        "image_size": (h, w),
        "n_classes": n_classes,
        "zipf_exponent": zipf_exponent,
        "parts": parts,
        "seed": seed,
        "workers": workers,
        "appearance": "learnable",
    }
    with atomic_output(out, overwrite=overwrite) as tmp:
        generate_ade20k_2021(tmp, n_images, val_fraction=n_val / n_images, progress=step(0), **common)
        summary = None
        if n_consistency:
            summary = generate_ade20k_consistency(
                tmp, n_consistency, perturbation=perturbation, progress=step(n_images), **common
            )
    if summary is not None:
        base = out / DIR_CONSISTENCY / "images" / "consistencyanalysis"
        summary = ConsistencySummary(
            out / DIR_CONSISTENCY,
            base / summary.original_dir.name,
            base / summary.reannotation_dir.name,
            summary.images,
        )
    return SynthesizedADE20K(
        path=out,
        release=out / DIR_2021,
        images={"training": n_train, "validation": n_val},
        classes=int(n_classes),
        image_size=(h, w),
        seed=int(seed),
        zipf_exponent=float(zipf_exponent),
        consistency=summary,
        seconds=time.perf_counter() - start,
    )

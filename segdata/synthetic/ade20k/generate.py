"""The public generators of the synthetic ADE20K datasets: :func:`generate_ade20k_2021`, :func:`generate_ade20k_2016`,
:func:`generate_ade20k_challenge` and :func:`generate_ade20k_consistency`.

Image ``i`` of a dataset is generated from ``numpy.random.default_rng([seed, i])`` and written by one task of
:func:`segdata.runner.parallel_map`, so the same arguments give byte-identical files whatever the number of workers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...runner import parallel_map
from ..pngs import PngEncoder
from .appearance import render_learnable_photo
from .encoding import PathLike
from .names import _SCENES, _build_vocabulary, _zipf_probabilities, class_details
from .perturbation import (
    _NAMING,
    _QUANTITY,
    _SEG,
    ConsistencyPerturbation,
    ConsistencySummary,
    ImagePerturbation,
    _perturb,
)
from .scene import _synth_image
from .writers import (
    _TIME_2016,
    _TIME_2021,
    _TIME_CHALLENGE,
    CONSISTENCY_ORIGINAL,
    CONSISTENCY_REANNOTATION,
    DIR_2016,
    DIR_2021,
    DIR_CHALLENGE,
    DIR_CONSISTENCY,
    write_ade2016_image,
    write_ade2021_image,
    write_challenge_image,
)

#: the image contents the generators draw (see :func:`generate_ade20k_2021`)
APPEARANCES = ("plain", "learnable")

ImageSizeSpec = (
    tuple[int, int] | tuple[tuple[int, int], tuple[int, int]] | str | Callable[[np.random.Generator], tuple[int, int]]
)


def _check_size(h: int, w: int) -> tuple[int, int]:
    h, w = int(h), int(w)
    if h < 4 or w < 4 or h > 65535 or w > 65535:
        raise ValueError(f"image size must be between 4 and 65535 pixels per side, got {h}x{w}")
    return h, w


def _draw_size(spec: ImageSizeSpec, rng: np.random.Generator) -> tuple[int, int]:
    if isinstance(spec, str):
        if spec != "varied":
            raise ValueError(f"image_size string must be 'varied', got {spec!r}")
        area = math.exp(rng.uniform(math.log(16 * 24), math.log(2048 * 2048)))
        aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        h = max(4, int(round(math.sqrt(area / aspect))))
        return _check_size(h, max(4, int(round(h * aspect))))
    if callable(spec):
        h, w = spec(rng)
        return _check_size(h, w)
    if len(spec) == 2 and all(isinstance(v, (tuple, list)) for v in spec):
        (h0, w0), (h1, w1) = spec  # type: ignore[misc]
        if h1 < h0 or w1 < w0:
            raise ValueError(f"image_size range must be ((hmin, wmin), (hmax, wmax)), got {spec!r}")
        return _check_size(int(rng.integers(h0, h1 + 1)), int(rng.integers(w0, w1 + 1)))
    h, w = spec  # type: ignore[misc]
    return _check_size(h, w)


@dataclass(frozen=True)
class _Config:
    layout: str
    dataset_dir: str
    image_size: ImageSizeSpec
    n_classes: int
    zipf_exponent: float
    parts: bool
    seed: int
    n_train: int
    perturbation: ConsistencyPerturbation | None = None
    appearance: str = "plain"


def _stem(cfg: _Config, index: int) -> tuple[str, str]:
    if index < cfg.n_train:
        return "training", f"ADE_train_{index + 1:08d}"
    return "validation", f"ADE_val_{index - cfg.n_train + 1:08d}"


_STAMPS = {"2021": _TIME_2021, "2016": _TIME_2016, "challenge": _TIME_CHALLENGE, "consistency": _TIME_2016}


@functools.cache
def _encoder(layout: str) -> PngEncoder:
    """The label-PNG encoder of a layout, one per process: it keeps its deflated zero rows for the next images."""
    return PngEncoder(_STAMPS[layout])


def _covered(cfg: _Config, index: int) -> tuple[int, ...]:
    """The class rank (0-based) drawn on top of image ``index`` of a learnable set, so that every class is in at least
    one training image and, as far as there are validation images, in one validation image: training image ``i``
    (0-based) gets rank ``K - 1 - i`` for ``i < K`` (the rarest classes first), validation image ``j`` rank
    ``K - 1 - j`` for ``j < K``."""
    k = cfg.n_classes
    j = index if index < cfg.n_train else index - cfg.n_train
    return (k - 1 - j,) if j < k else ()


def _one_image(cfg: _Config, index: int) -> tuple[int, object]:
    """Generate and write image ``index`` (0-based) of a dataset; returns ``(index, what the layout reports)``."""
    vocab = _build_vocabulary(cfg.n_classes, cfg.seed)
    probs = _zipf_probabilities(cfg.n_classes, cfg.zipf_exponent)
    encoder = _encoder(cfg.layout)
    root = Path(cfg.dataset_dir)
    rng = np.random.default_rng([int(cfg.seed) & 0xFFFFFFFF, int(index)])
    h, w = _draw_size(cfg.image_size, rng)
    scene = _SCENES[int(rng.integers(len(_SCENES)))]
    learnable = cfg.appearance == "learnable"
    image = _synth_image(rng, h, w, vocab, probs, cfg.parts, _covered(cfg, index) if learnable else ())
    split, stem = _stem(cfg, index)
    photo_seed = int(rng.integers(2**31))
    photo = None
    if learnable:
        photo = render_learnable_photo(image, cfg.n_classes, cfg.seed, np.random.default_rng([photo_seed, 0xF071]))
    if cfg.layout == "2021":
        click = bool(rng.random() < 0.3)
        write_ade2021_image(
            root / "images" / "ADE" / split / scene[1] / scene[2],
            stem,
            image,
            scene=scene,
            click_date=click,
            photo=photo,
            seed=photo_seed,
            _encoder=encoder,
        )
        return index, stem
    if cfg.layout == "2016":
        write_ade2016_image(
            root / "images" / split / scene[2][0] / scene[2],
            stem,
            image,
            photo=photo,
            seed=photo_seed,
            _encoder=encoder,
        )
        return index, stem
    if cfg.layout == "challenge":
        labels = {c.code: n + 1 for n, c in enumerate(vocab.classes)}
        counts = write_challenge_image(root, split, stem, image, labels, photo=photo, seed=photo_seed, _encoder=encoder)
        return index, (split, stem, scene[2], counts[: cfg.n_classes + 1])
    assert cfg.perturbation is not None
    base = root / "images" / "consistencyanalysis"
    written = write_ade2016_image(
        base / CONSISTENCY_ORIGINAL, stem, image, photo=photo, seed=photo_seed, _encoder=encoder
    )
    prng = np.random.default_rng([int(cfg.seed) & 0xFFFFFFFF, int(index), 1])
    new_image, counts, either = _perturb(image, vocab, probs, prng, cfg.perturbation)
    write_ade2016_image(
        base / CONSISTENCY_REANNOTATION, stem, new_image, jpeg_bytes=written[0].read_bytes(), _encoder=encoder
    )
    return index, ImagePerturbation(stem, int(counts[_SEG]), int(counts[_NAMING]), int(counts[_QUANTITY]), either)


def _generate(
    cfg: _Config, n_images: int, workers: int, progress: Callable[[int, int], None] | None = None
) -> list[object]:
    """Write images 0..n_images-1 on :func:`segdata.runner.parallel_map`; their results in index order."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if cfg.appearance not in APPEARANCES:
        raise ValueError(f"appearance must be one of {', '.join(APPEARANCES)}, got {cfg.appearance!r}")
    _build_vocabulary(cfg.n_classes, cfg.seed)  # validate arguments early
    _zipf_probabilities(cfg.n_classes, cfg.zipf_exponent)
    Path(cfg.dataset_dir).mkdir(parents=True, exist_ok=True)
    done = {}
    for index, result in parallel_map(
        functools.partial(_one_image, cfg), range(n_images), workers=min(workers, max(1, n_images))
    ):
        done[index] = result
        if progress is not None:
            progress(len(done), n_images)
    return [done[i] for i in range(n_images)]


def _common(n_images: int, val_fraction: float) -> int:
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    return n_images - int(round(n_images * val_fraction))


def generate_ade20k_2021(
    root: PathLike,
    n_images: int = 20,
    *,
    image_size: ImageSizeSpec = (1536, 2048),
    n_classes: int = 300,
    zipf_exponent: float = 1.0,
    parts: bool = True,
    val_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 1,
    appearance: str = "plain",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic dataset in the ADE20K 2021 (``ADE20K_2021_17_01``) layout.

    Parameters
    ----------
    root : path-like
        Parent folder; the dataset goes to ``root/ADE20K_2021_17_01``.
    n_images : int
        Number of images; the first ``n_images - round(n_images * val_fraction)`` are ``ADE_train_%08d`` (from 1), the
        rest ``ADE_val_%08d`` (from 1).
    image_size : tuple or str or callable
        ``(H, W)`` in pixels; ``((hmin, wmin), (hmax, wmax))`` for sizes drawn uniformly in that box; ``"varied"``
        for a log-uniform area from 16x24 to 2048x2048 with aspect ratio W/H in 0.5..2; or a picklable callable
        ``f(rng) -> (H, W)``.
    n_classes : int
        Vocabulary size (see :func:`class_vocabulary`).
    zipf_exponent : float
        Class frequency by rank in number of objects follows ``rank ** -zipf_exponent``.
    parts : bool
        Draw parts (level 1) and parts of parts (level 2).
    val_fraction : float
        Fraction of validation images.
    seed : int
        Dataset seed; image i uses ``numpy.random.default_rng([seed, i])``.
    workers : int
        Number of processes (1 = in-process). The output does not depend on it.
    appearance : str
        ``"plain"``: each object a colour hashed from its class code plus a tiled noise. ``"learnable"``: each class
        its own colour and texture (see :mod:`segdata.synthetic.ade20k.appearance`), and every class drawn on top of
        at least one training image and (as far as there are validation images) one validation image, the rarest
        first: training image ``i < n_classes`` gets the class of rank ``n_classes - i`` (1-based), and so does
        validation image ``i``.
    progress : callable, optional
        ``progress(done, total)`` after each image written.

    Returns
    -------
    pathlib.Path
        The ``ADE20K_2021_17_01`` folder.
    """
    n_train = _common(n_images, val_fraction)
    out = Path(root) / DIR_2021
    cfg = _Config("2021", str(out), image_size, n_classes, zipf_exponent, parts, seed, n_train, None, appearance)
    _generate(cfg, n_images, workers, progress)
    return out


def generate_ade20k_2016(
    root: PathLike,
    n_images: int = 20,
    *,
    image_size: ImageSizeSpec = (1536, 2048),
    n_classes: int = 300,
    zipf_exponent: float = 1.0,
    parts: bool = True,
    val_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 1,
    appearance: str = "plain",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic dataset in the ADE20K 2016 (``ADE20K_2016_07_26``) layout.

    Parameters are those of :func:`generate_ade20k_2021`; with the same arguments both layouts hold the same scenes.
    Images go to ``images/{training,validation}/<letter>/<scene>/`` with ``.jpg``, ``_seg.png``, ``_parts_<N>.png``
    and ``_atr.txt``.

    Returns
    -------
    pathlib.Path
        The ``ADE20K_2016_07_26`` folder.
    """
    n_train = _common(n_images, val_fraction)
    out = Path(root) / DIR_2016
    cfg = _Config("2016", str(out), image_size, n_classes, zipf_exponent, parts, seed, n_train, None, appearance)
    _generate(cfg, n_images, workers, progress)
    return out


def _csv_name(name: str) -> str:
    return name.replace(", ", ";").replace(" ", ";")


def generate_ade20k_challenge(
    root: PathLike,
    n_images: int = 20,
    *,
    image_size: ImageSizeSpec = ((300, 400), (512, 683)),
    zipf_exponent: float = 1.0,
    val_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 1,
    appearance: str = "plain",
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic dataset in the ADEChallengeData2016 (SceneParsing, 150 classes) layout.

    Labels 1..150 are the first 150 classes of :func:`class_vocabulary` (label = frequency rank); 0 = other/unlabeled.
    Writes ``images/{split}/<stem>.jpg``, ``annotations/{split}/<stem>.png`` (mode L), ``objectInfo150.csv``
    (``Idx,Ratio,Train,Val,Stuff,Name``, names joined with ';', no final newline), ``objectInfo150.txt`` (tab
    separated) and ``sceneCategories.txt`` (``<stem> <scene>`` per line). Ratio is the class's fraction of all
    annotated pixels of the dataset; Train/Val count the images that contain the class.

    Parameters are those of :func:`generate_ade20k_2021` (without ``n_classes`` and ``parts``; the learnable
    appearance is that of the vocabulary of 150 classes).

    Returns
    -------
    pathlib.Path
        The ``ADEChallengeData2016`` folder.
    """
    n_train = _common(n_images, val_fraction)
    out = Path(root) / DIR_CHALLENGE
    n_classes = 150
    cfg = _Config("challenge", str(out), image_size, n_classes, zipf_exponent, False, seed, n_train, None, appearance)
    results = _generate(cfg, n_images, workers, progress)
    pixels = np.zeros(n_classes + 1, np.int64)
    present = {"training": np.zeros(n_classes + 1, np.int64), "validation": np.zeros(n_classes + 1, np.int64)}
    scenes = []
    for split, stem, scene, counts in results:  # type: ignore[misc]
        pixels += counts
        present[split] += counts > 0
        scenes.append(f"{stem} {scene}\n")
    total = max(int(pixels.sum()), 1)
    csv_lines, txt_lines = ["Idx,Ratio,Train,Val,Stuff,Name"], ["Idx\tRatio\tTrain\tVal\tName\n"]
    for n, c in enumerate(class_details(n_classes, seed), start=1):
        ratio = pixels[n] / total
        tr, va = int(present["training"][n]), int(present["validation"][n])
        csv_lines.append(f"{n},{ratio:.4f},{tr},{va},{int(c.stuff)},{_csv_name(c.name)}")
        txt_lines.append(f"{n}\t{ratio:.4f}\t{tr}\t{va}\t{c.name}\n")
    (out / "objectInfo150.csv").write_bytes("\n".join(csv_lines).encode("ascii"))
    (out / "objectInfo150.txt").write_bytes("".join(txt_lines).encode("ascii"))
    (out / "sceneCategories.txt").write_bytes("".join(scenes).encode("ascii"))
    return out


def generate_ade20k_consistency(
    root: PathLike,
    n_images: int = 10,
    *,
    image_size: ImageSizeSpec = (1536, 2048),
    n_classes: int = 300,
    zipf_exponent: float = 1.0,
    parts: bool = True,
    perturbation: ConsistencyPerturbation | None = None,
    seed: int = 0,
    workers: int = 1,
    appearance: str = "plain",
    progress: Callable[[int, int], None] | None = None,
) -> ConsistencySummary:
    """Write a synthetic ADE20K consistency set (two annotations of the same images).

    ``root/ADE20K_2017_05_30_consistency/images/consistencyanalysis/original_ade20k/`` holds 2016-layout files
    (``.jpg``, ``_seg.png``, ``_parts_<N>.png``, ``_atr.txt``) for stems ``ADE_train_%08d``;
    ``.../reannotation/`` holds the same stems with the same JPEGs and perturbed annotations (see
    :class:`ConsistencyPerturbation`). Nothing else is written.

    Parameters
    ----------
    perturbation : ConsistencyPerturbation, optional
        Edit budgets; the default targets 82.4 % agreement (5.7 / 6.0 / 5.9 % disagreement).

    Other parameters are those of :func:`generate_ade20k_2021`. With the same ``image_size``, ``n_classes``,
    ``zipf_exponent``, ``parts``, ``seed`` and ``appearance``, the original annotation of image ``ADE_train_%08d`` and
    its JPEG are those of the training image of that stem written by :func:`generate_ade20k_2021` (when the
    training split has at least ``n_images`` images): the consistency set re-annotates part of that dataset.

    Returns
    -------
    ConsistencySummary
        Exact per-image and total pixel counts of each edit type.
    """
    _common(n_images, 0.0)
    pert = perturbation or ConsistencyPerturbation()
    out = Path(root) / DIR_CONSISTENCY
    cfg = _Config(
        "consistency", str(out), image_size, n_classes, zipf_exponent, parts, seed, n_images, pert, appearance
    )
    results = _generate(cfg, n_images, workers, progress)
    base = out / "images" / "consistencyanalysis"
    (base / CONSISTENCY_ORIGINAL).mkdir(parents=True, exist_ok=True)
    (base / CONSISTENCY_REANNOTATION).mkdir(parents=True, exist_ok=True)
    return ConsistencySummary(out, base / CONSISTENCY_ORIGINAL, base / CONSISTENCY_REANNOTATION, tuple(results))  # type: ignore[arg-type]

"""Deterministic synthetic datasets in the exact on-disk layouts of ADE20K.

The generators in this module write images, label maps and annotation files that follow, file for file, the formats of
the ADE20K releases:

* ``ADE20K_2021_17_01`` (full dataset, 2021 layout): ``images/ADE/{training,validation}/<group>/<scene>/<stem>.jpg``,
  ``<stem>.json``, ``<stem>_seg.png``, ``<stem>_parts_<N>.png`` and the folder ``<stem>/`` of amodal instance masks
  ``instance_NNN_<stem>.png``.
* ``ADE20K_2016_07_26`` (full dataset, 2016 layout): ``images/{training,validation}/<letter>/<scene>/<stem>.jpg``,
  ``<stem>_seg.png``, ``<stem>_parts_<N>.png`` and ``<stem>_atr.txt``.
* ``ADEChallengeData2016`` (SceneParsing, 150 classes): ``images/{training,validation}/<stem>.jpg``,
  ``annotations/{training,validation}/<stem>.png`` (mode L), ``objectInfo150.csv``, ``objectInfo150.txt`` and
  ``sceneCategories.txt``.
* ``ADE20K_2017_05_30_consistency``: ``images/consistencyanalysis/<annotation>/`` flat folders of 2016-layout files, the
  second annotation being a controlled perturbation of the first.

Conventions used throughout
---------------------------
* Arrays are indexed ``[row, column]`` = ``[y, x]``; sizes are given as ``(height, width)`` in pixels.
* Polygon coordinates are integer pixel coordinates ``x`` (column) and ``y`` (row), filled with Pillow's
  ``ImageDraw.polygon`` (which includes the boundary pixels): the filled polygon of an object is its *amodal* extent.
* Full-dataset label PNGs are 8-bit RGB with class code ``R // 10 * 256 + G`` (0 = unlabeled) and the instance in ``B``:
  the object with instance rank ``k`` (1..N) among the N objects of its part level has
  ``B = round_half_up(k * 255 / N)``; the ranks are a seeded random permutation, not the JSON order.
* Objects are painted back to front: an object later in the depth order (higher ``depth_ordering_rank``) occludes
  earlier ones. Parts (level >= 1) are painted only inside the visible region of their parent.
* Everything is seeded: image ``i`` of a dataset is generated from ``numpy.random.default_rng([seed, i])``, so the same
  arguments give byte-identical files, whatever the number of worker processes.

Modules, by responsibility: :mod:`.names` (the class vocabulary), :mod:`.encoding` (the RGB label encoding and
``_atr.txt``), :mod:`.render` (objects, rasterisation, region shapes), :mod:`.scene` (one random scene),
:mod:`.writers` (one image in each layout), :mod:`.perturbation` (the consistency set's re-annotation),
:mod:`.appearance` (the learnable images: each class its colour and texture), :mod:`.generate` (the dataset
generators, run on :func:`segdata.runner.parallel_map`) and :mod:`.synthesize` (a learnable dataset with its
re-annotation in one call, what ``segdata synthesize ade20k`` writes). Their public names are re-exported here.
"""

from __future__ import annotations

from .appearance import ClassAppearance, class_appearances, render_learnable_photo
from .encoding import (
    ADE_MAX_CODE,
    PathLike,  # noqa: F401
    ade_instance_b_values,
    encode_ade_rgb,
    write_atr,
)
from .generate import (
    APPEARANCES,
    ImageSizeSpec,  # noqa: F401
    generate_ade20k_2016,
    generate_ade20k_2021,
    generate_ade20k_challenge,
    generate_ade20k_consistency,
)
from .names import ClassInfo, class_details, class_vocabulary
from .perturbation import ConsistencyPerturbation, ConsistencySummary, ImagePerturbation
from .render import RenderedImage, SyntheticObject, render_objects
from .synthesize import SynthesizedADE20K, synthesize_ade20k
from .writers import (
    CONSISTENCY_ORIGINAL,  # noqa: F401
    CONSISTENCY_REANNOTATION,  # noqa: F401
    DIR_2016,  # noqa: F401
    DIR_2021,  # noqa: F401
    DIR_CHALLENGE,  # noqa: F401
    DIR_CONSISTENCY,  # noqa: F401
    write_ade2016_image,
    write_ade2021_image,
    write_challenge_image,
)

__all__ = [
    "ADE_MAX_CODE",
    "APPEARANCES",
    "ClassAppearance",
    "ClassInfo",
    "ConsistencyPerturbation",
    "ConsistencySummary",
    "ImagePerturbation",
    "RenderedImage",
    "SynthesizedADE20K",
    "SyntheticObject",
    "ade_instance_b_values",
    "class_appearances",
    "class_details",
    "class_vocabulary",
    "encode_ade_rgb",
    "generate_ade20k_2016",
    "generate_ade20k_2021",
    "generate_ade20k_challenge",
    "generate_ade20k_consistency",
    "render_learnable_photo",
    "render_objects",
    "synthesize_ade20k",
    "write_ade2016_image",
    "write_ade2021_image",
    "write_atr",
    "write_challenge_image",
]

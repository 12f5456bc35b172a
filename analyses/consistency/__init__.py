"""Annotation consistency: how far two (or more) annotations of the same images agree, and what
that agreement caps for a model scored against one of them.

Two annotations are two layers of one dataset (the ADE20K consistency set's ``objects`` and
``reannotation``, VOC ``objects`` next to ``sbd``, Cityscapes ``objects`` next to ``coarse``) or
one layer each of two datasets matched by image id. The first annotation, A, is the reference;
the second, B, is compared against it. Every figure is specified in ``docs/consistency.md``; in
short, per pixel ``p`` with class ``a(p)`` in A and ``b(p)`` in B (class 0 = unlabeled, ``I(c)``
the class table's ``ignore`` flag):

Conventions
-----------
- **unlabeled** is class 0 (segment id 0, "no annotation"); a class named ``unlabeled`` in the
  class table (Cityscapes keeps its labelId 0 as one, flagged ignore) counts as class 0 too.
- **compared pixels**: labelled in at least one annotation (``a != 0 or b != 0``). Pixels of a B
  class that the class map leaves unmapped are left out of every figure (and counted apart).
- ``pixel_agreement``: fraction of compared pixels with ``a == b``.
- ``pixel_agreement_excluding_void``: the same over pixels labelled in both with classes not
  flagged ignore (Cityscapes reported 96% and 98% this way).
- ``pixel_accuracy``, ``iou``, ``miou`` (**B against A**, the evaluation convention): pixels A
  leaves unlabeled or marks ignore are dropped first; a pixel of class ``c`` in A that B leaves
  unlabeled, marks ignore or names otherwise is a miss. ``IoU_c = TP / (TP + FP + FN)``. mIoU is
  defined once, at dataset level: the confusion is summed over images first; a class absent from
  both annotations has IoU NaN and is left out of the mean (never 0). Classes flagged ignore are
  never scored.
- ``iou_symmetric``: over pixels neither annotation marks ignore, ``|A_c & B_c| / |A_c | B_c|``.
- ``kappa``: Cohen's kappa over compared pixels neither annotation marks ignore, "unlabeled"
  being one of the categories.
- **boundary band** (``boundary_px = K``, default 3): a *boundary pixel* is a pixel whose left,
  right, upper or lower neighbour lies in another segment (segment id of the segment map, so
  instance boundaries count; "no annotation" is a region too) in A or in B; the band is every
  pixel within chessboard distance K of a boundary pixel (a (2K+1) x (2K+1) square around it).
  The *interior* is every other pixel. Agreement is reported for both.
- **breakdown** of the disagreement (a compared pixel with ``a != b``), decided per pixel from
  the pair (object ``i`` of A, object ``j`` of B) the pixel lies in, as the ADE20K
  re-annotation study split it. An *object* is a segment that is an instance (``is_instance``
  true in the segment table), whole even in pieces, or one connected component
  (8-connectivity) of a segment that is a class region (``is_instance`` false: SceneParsing,
  VOC class maps, Cityscapes stuff), so that an erased component is a missing object even where
  its class survives elsewhere in the image. Two labelled segments ``i`` and ``j`` are *counterparts* when
  each is the other's largest overlap among the other annotation's labelled segments (ties: the
  lower segment id).

  * one side unlabeled (``a == 0`` or ``b == 0``): **quantity** (a missing object) when the
    labelled side's segment is mostly (more than 50% of its pixels) unlabeled in the other
    annotation and has no counterpart there, else **segmentation quality**;
  * both labelled: **naming** when ``IoU(i, j) >= 0.5`` or ``i`` and ``j`` are counterparts (the
    same region, named differently), else **segmentation quality** (boundaries or extent
    differ).

  The counterpart clauses refine the plain rules (>50% unlabeled; IoU >= 0.5), which known edits
  proved wrong on thin objects: an object eroded by a few pixels that lost more than half of
  itself is not missing (its core is still there), an object renamed and grown or shrunk is
  still the same region (``docs/consistency.md`` has the numbers). The three add up to the
  disagreement: ``segmentation_quality + naming + quantity == 1 - pixel_agreement`` as
  fractions of the compared pixels.
- confidence intervals: BCa bootstrap over images (:func:`segdata.bootstrap.bca_intervals`:
  resampled with replacement, seeded, bias-corrected and accelerated), 95% by default, of every
  ratio above; each resample re-sums the per-image confusion first.
- with three or more annotations: the pairwise matrix of these figures, and a majority-vote
  consensus (per pixel, the most frequent class among the annotations, "unlabeled" included;
  ties give unlabeled) with each annotation's agreement with it.

Per image, one table of the (object of A, object of B) pairs present gives the confusion, the
agreement and the breakdown by table lookups (:mod:`.counting`: the C extension
``segdata._runs`` in one sweep over the rows, or the numpy reference). The package:

- :mod:`.classes`: class maps and the class space (:func:`read_class_map`, :class:`ClassSpace`,
  :func:`build_class_space`);
- :mod:`.counting`: one image (:func:`count_image`, :func:`boundary_band`, :func:`categorize`,
  :func:`split_regions`, :func:`majority_vote`, :func:`disagreement_map`);
- :mod:`.figures`: every figure from per-image sums (:func:`pair_figures`, the bootstrap);
- :mod:`.comparison`: which annotations and images, the parallel map and the reduce
  (:func:`compare`, :class:`ConsistencyResult`, :func:`consistency_report`);
- :mod:`.ceiling`: the ceiling file (:func:`write_ceiling`, :func:`read_ceiling`,
  :func:`ceiling_iou_for`);
- :mod:`.plots`: :func:`plot_consistency`.

The ceiling: a model scored against A cannot be expected to agree with A better than B does.
:func:`write_ceiling` writes B's pixel accuracy and mIoU against A, overall and per frequency
bucket of A (:mod:`segdata.analyses.longtail`), and per class its TP/FP/FN pixels, as JSON that
:func:`read_ceiling` reads back; :func:`ceiling_iou_for` re-projects it onto groups of A's
classes (another vocabulary's classes).
"""

from __future__ import annotations

from segdata.runner import dask_executor

from .ceiling import (
    CEILING_FORMAT,
    CEILING_VERSION,
    CEILING_VERSIONS,
    Ceiling,
    ceiling_iou_for,
    read_ceiling,
    write_ceiling,
)
from .classes import ClassSpace, build_class_space, read_class_map
from .comparison import Annotation, ConsistencyResult, compare, consistency_report, match_images, resolve_annotations
from .counting import (
    ADE20K_REFERENCE,
    AGREE,
    BACKENDS,
    CATEGORIES,
    DEFAULT_BOUNDARY_PX,
    MISSING_FRACTION,
    NAMING,
    NAMING_IOU,
    NOT_COMPARED,
    QUALITY,
    QUANTITY,
    ImageCounts,
    boundary_band,
    categorize,
    count_image,
    disagreement_map,
    majority_vote,
    pair_table,
    split_regions,
)
from .figures import pair_figures
from .plots import plot_consistency

__all__ = [
    "ADE20K_REFERENCE",
    "AGREE",
    "BACKENDS",
    "CATEGORIES",
    "CEILING_FORMAT",
    "CEILING_VERSION",
    "CEILING_VERSIONS",
    "DEFAULT_BOUNDARY_PX",
    "MISSING_FRACTION",
    "NAMING",
    "NAMING_IOU",
    "NOT_COMPARED",
    "QUALITY",
    "QUANTITY",
    "Annotation",
    "Ceiling",
    "ClassSpace",
    "ConsistencyResult",
    "ImageCounts",
    "boundary_band",
    "build_class_space",
    "categorize",
    "ceiling_iou_for",
    "compare",
    "consistency_report",
    "count_image",
    "dask_executor",
    "disagreement_map",
    "majority_vote",
    "match_images",
    "pair_figures",
    "pair_table",
    "plot_consistency",
    "read_ceiling",
    "read_class_map",
    "resolve_annotations",
    "split_regions",
    "write_ceiling",
]

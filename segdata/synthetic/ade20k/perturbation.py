"""The calibrated re-annotation of the synthetic consistency set: objects renamed, objects erased and boundaries moved,
each edit type up to a budget of the labelled pixels, with the exact pixel counts of what changed."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from .names import ClassInfo, _Vocabulary
from .render import RenderedImage, _finish


@dataclass(frozen=True)
class ConsistencyPerturbation:
    """How the second annotation of the consistency set differs from the first.

    Each value is the target fraction of the pixels labelled in the original annotation that an edit type changes
    (per image, approximately; the exact counts are reported in :class:`ConsistencySummary`). The defaults reproduce
    the published ADE20K re-annotation study: 82.4 % pixel agreement, disagreement from segmentation quality 5.7 %,
    object naming 6.0 % and quantity of objects 5.9 %.

    Attributes
    ----------
    segmentation_quality : float
        Boundaries moved: one region dilated (into its neighbours) or eroded (to unlabeled) by a few pixels.
    naming : float
        Whole objects given another class code.
    quantity : float
        Whole objects erased to unlabeled (0).
    max_boundary_shift : int or None
        Largest boundary move in pixels; None scales it with the image (``max(2, round(sqrt(H * W) / 300))``).
    """

    segmentation_quality: float = 0.057
    naming: float = 0.060
    quantity: float = 0.059
    max_boundary_shift: int | None = None

    def __post_init__(self) -> None:
        vals = (self.segmentation_quality, self.naming, self.quantity)
        if any(not (0.0 <= v < 1.0) for v in vals) or sum(vals) >= 1.0:
            raise ValueError(f"perturbation fractions must be in [0, 1) and sum below 1, got {vals}")
        if self.max_boundary_shift is not None and self.max_boundary_shift < 1:
            raise ValueError("max_boundary_shift must be >= 1")


@dataclass(frozen=True)
class ImagePerturbation:
    """Exact pixel counts of the edits of one consistency image.

    A pixel is counted when its class code differs between the two annotations; it is attributed to the last edit
    that changed it, so ``segmentation_quality + naming + quantity`` is the number of differing pixels.

    Attributes
    ----------
    stem : str
    segmentation_quality, naming, quantity : int
        Differing pixels per edit type.
    labelled_either : int
        Pixels labelled (code > 0) in at least one of the two annotations.
    """

    stem: str
    segmentation_quality: int
    naming: int
    quantity: int
    labelled_either: int

    @property
    def changed(self) -> int:
        """Total number of pixels whose class differs."""
        return self.segmentation_quality + self.naming + self.quantity


@dataclass(frozen=True)
class ConsistencySummary:
    """What :func:`generate_ade20k_consistency` wrote and changed.

    Attributes
    ----------
    path : pathlib.Path
        The ``ADE20K_2017_05_30_consistency`` folder.
    original_dir, reannotation_dir : pathlib.Path
        The two annotation folders.
    images : tuple of ImagePerturbation
        One record per image, in stem order.
    """

    path: Path
    original_dir: Path
    reannotation_dir: Path
    images: tuple[ImagePerturbation, ...]

    @property
    def segmentation_quality(self) -> int:
        """Differing pixels due to moved boundaries, all images."""
        return sum(i.segmentation_quality for i in self.images)

    @property
    def naming(self) -> int:
        """Differing pixels due to renamed objects, all images."""
        return sum(i.naming for i in self.images)

    @property
    def quantity(self) -> int:
        """Differing pixels due to erased objects, all images."""
        return sum(i.quantity for i in self.images)

    @property
    def changed(self) -> int:
        """Differing pixels, all images."""
        return sum(i.changed for i in self.images)

    @property
    def labelled_either(self) -> int:
        """Pixels labelled in either annotation, all images."""
        return sum(i.labelled_either for i in self.images)

    @property
    def agreement(self) -> float:
        """Fraction of the pixels labelled in either annotation that have the same class in both."""
        n = self.labelled_either
        return 1.0 - self.changed / n if n else 1.0

    def fractions(self) -> dict[str, float]:
        """Disagreement per edit type as a fraction of the pixels labelled in either annotation."""
        n = self.labelled_either or 1
        return {
            "segmentation_quality": self.segmentation_quality / n,
            "naming": self.naming / n,
            "quantity": self.quantity / n,
        }


_SEG, _NAMING, _QUANTITY = 1, 2, 3


def _perturb(
    image: RenderedImage, vocab: _Vocabulary, probs: np.ndarray, rng: np.random.Generator, pert: ConsistencyPerturbation
) -> tuple[RenderedImage, np.ndarray, int]:
    """Re-annotation of ``image``; returns it, the per-category pixel counts (index 1..3) and labelled_either."""
    h, w = image.height, image.width
    owner = image.owners[0]
    lvl0 = [i for i, o in enumerate(image.objects) if o.part_level == 0]
    code_of = np.zeros(256, np.int32)
    obj_of_slot: dict[int, int] = {}
    for i in lvl0:
        code_of[image.slots[i]] = image.objects[i].code
        obj_of_slot[int(image.slots[i])] = i
    new_code = code_of.copy()
    new_owner = owner.copy()
    cat = np.zeros((h, w), np.uint8)
    orig_cls = code_of[owner]
    labelled = int(np.count_nonzero(owner))
    bbox = {}
    for i in lvl0:
        y0, x0, m = image.amodal[i]
        bbox[int(image.slots[i])] = [y0, y0 + m.shape[0], x0, x0 + m.shape[1]]
    visible = {int(image.slots[i]): int(image.visible[i]) for i in lvl0}
    renamed: dict[int, ClassInfo] = {}
    erased: set[int] = set()

    for kind, frac in ((_NAMING, pert.naming), (_QUANTITY, pert.quantity)):
        # greedy, random order: take an object if it does not overshoot the budget by more than 10 %
        budget = frac * labelled
        remaining, tol = budget, 0.1 * budget
        for j in rng.permutation(len(lvl0)):
            if remaining <= 0.05 * budget or budget <= 0:
                break
            slot = int(image.slots[lvl0[j]])
            if slot in renamed or slot in erased or visible[slot] > remaining + tol:
                continue
            y0, y1, x0, x1 = bbox[slot]
            sub = new_owner[y0:y1, x0:x1]
            sel = sub == slot
            if kind == _NAMING:
                for _ in range(20):
                    info = vocab.classes[int(rng.choice(probs.size, p=probs))]
                    if info.code != code_of[slot]:
                        break
                else:
                    continue
                renamed[slot] = info
                new_code[slot] = info.code
            else:
                erased.add(slot)
                sub[sel] = 0
            cat[y0:y1, x0:x1][sel] = kind
            remaining -= visible[slot]

    budget = pert.segmentation_quality * labelled
    remaining, tol = budget, 0.1 * budget
    max_shift = pert.max_boundary_shift or max(2, int(round(math.sqrt(h * w) / 300)))
    alive = [s for s in visible if s not in erased]
    tries = 0
    while alive and budget > 0 and remaining > 0.05 * budget and tries < 100 + 10 * len(alive):
        tries += 1
        slot = alive[int(rng.integers(len(alive)))]
        r = int(rng.integers(1, max_shift + 1))
        dilate = bool(rng.random() < 0.5)
        y0, y1, x0, x1 = bbox[slot]
        y0, x0, y1, x1 = max(0, y0 - r), max(0, x0 - r), min(h, y1 + r), min(w, x1 + r)
        sub = new_owner[y0:y1, x0:x1]
        mask = sub == slot
        if not mask.any():
            continue
        if dilate:
            changed = ndimage.binary_dilation(mask, iterations=r) & ~mask
            value = slot
        else:
            eroded = ndimage.binary_erosion(mask, iterations=r, border_value=1)
            if not eroded.any():
                continue
            changed = mask & ~eroded
            value = 0
        changed &= cat[y0:y1, x0:x1] == 0  # leave pixels of earlier edits alone: categories stay exact
        if not changed.any():
            continue
        # untouched pixels still have their original class, so every changed pixel of another class is a new diff
        delta = int(np.count_nonzero(orig_cls[y0:y1, x0:x1][changed] != (new_code[value] if value else 0)))
        if delta == 0 or delta > remaining + tol:
            continue
        sub[changed] = value
        cat[y0:y1, x0:x1][changed] = _SEG
        remaining -= delta
        bbox[slot] = [min(bbox[slot][0], y0), max(bbox[slot][1], y1), min(bbox[slot][2], x0), max(bbox[slot][3], x1)]

    new_cls = new_code[new_owner]
    diff = new_cls != orig_cls
    counts = np.bincount(cat[diff], minlength=4)
    if counts[0]:
        raise AssertionError("internal error: a changed pixel has no edit category")
    labelled_either = int(np.count_nonzero((orig_cls > 0) | (new_cls > 0)))

    # rebuild the annotated image: survivors of level 0, parts clipped to their parent's new region
    owners = [new_owner]
    for lv in range(1, len(image.owners)):
        parent_slot = np.zeros(256, np.uint8)
        for i, o in enumerate(image.objects):
            if o.part_level == lv:
                parent_slot[image.slots[i]] = image.slots[o.parent]  # type: ignore[index]
        own = image.owners[lv]
        keep = (own > 0) & (owners[-1] == parent_slot[own])
        owners.append(np.where(keep, own, np.uint8(0)).astype(np.uint8))
    level_counts = [np.bincount(o.ravel(), minlength=256) for o in owners]
    survivors = [i for i, o in enumerate(image.objects) if level_counts[o.part_level][image.slots[i]] > 0]
    new_index = {i: n for n, i in enumerate(survivors)}
    objects = []
    for i in survivors:
        o = image.objects[i]
        parent = new_index[o.parent] if o.parent is not None else None
        if o.part_level == 0 and int(image.slots[i]) in renamed:
            info = renamed[int(image.slots[i])]
            o = replace(o, code=info.code, name=info.name, raw_name=info.raw_name, hypernym=info.hypernym)
        objects.append(replace(o, parent=parent))
    ks = [0] * len(survivors)
    for lv in range(len(owners)):
        idx = [n for n, i in enumerate(survivors) if image.objects[i].part_level == lv]
        for rank, n in enumerate(sorted(idx, key=lambda n: image.instance_k[survivors[n]]), start=1):
            ks[n] = rank
    while len(owners) > 1 and not any(o.part_level == len(owners) - 1 for o in objects):
        owners.pop()
    new_image = _finish(
        h,
        w,
        objects,
        [int(image.slots[i]) for i in survivors],
        owners,
        [image.amodal[i] for i in survivors],
        [int(level_counts[image.objects[i].part_level][image.slots[i]]) for i in survivors],
        ks,
    )
    return new_image, counts, labelled_either

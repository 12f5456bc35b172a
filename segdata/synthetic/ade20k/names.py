"""The class vocabulary of the synthetic ADE20K datasets: real ADE20K class and part names (WordNet style) with their
full-dataset codes, then seeded synthetic ``"object <code>"`` and ``"part <code>"`` classes; the scene categories."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

#: Class codes of the synthetic vocabularies lie in 1..this value (the range of the real ADE20K codes).
_MAX_VOCAB_CODE = 3688

# Scene categories: (indoor/outdoor, 2021 scene group, scene). The 2016 folder is <scene[0]>/<scene>.
_SCENES: tuple[tuple[str, str, str], ...] = (
    ("outdoor", "urban", "street"),
    ("outdoor", "urban", "skyscraper"),
    ("outdoor", "transportation", "highway"),
    ("outdoor", "nature_landscape", "mountain"),
    ("outdoor", "nature_landscape", "field"),
    ("outdoor", "cultural", "abbey"),
    ("outdoor", "sports_and_leisure", "park"),
    ("indoor", "home_or_hotel", "bedroom"),
    ("indoor", "home_or_hotel", "living_room"),
    ("indoor", "home_or_hotel", "kitchen"),
    ("indoor", "home_or_hotel", "bathroom"),
    ("indoor", "work_place", "office"),
    ("indoor", "shopping_and_dining", "restaurant"),
    ("indoor", "transportation", "airport_terminal"),
)

# Region roles: how a class is drawn.
_TOP, _BACK, _BOTTOM, _THING = 0, 1, 2, 3
_ROLE_NAMES = ("top", "back", "bottom", "thing")

# Real ADE20K class names (WordNet style), raw names, full-dataset class codes and roles, in decreasing real frequency
# (these codes are the ones the devkit's mapFromADE.txt uses, so converters keyed on real codes work on this data).
_REAL_CLASSES: tuple[tuple[str, str, int, int], ...] = (
    ("wall", "wall", 2978, _BACK),
    ("building, edifice", "building", 312, _BACK),
    ("sky", "sky", 2420, _TOP),
    ("floor, flooring", "floor", 976, _BOTTOM),
    ("tree", "tree", 2855, _THING),
    ("ceiling", "ceiling", 447, _TOP),
    ("road, route", "road", 2131, _BOTTOM),
    ("bed", "bed", 165, _THING),
    ("windowpane, window", "window", 3055, _THING),
    ("grass", "grass", 1125, _BOTTOM),
    ("cabinet", "cabinet", 350, _THING),
    ("sidewalk, pavement", "sidewalk", 2377, _BOTTOM),
    ("person, individual, someone, somebody, mortal, soul", "person", 1831, _THING),
    ("earth, ground", "ground", 838, _BOTTOM),
    ("door", "door", 774, _THING),
    ("table", "table", 2684, _THING),
    ("mountain, mount", "mountain", 1610, _BACK),
    ("plant, flora, plant life", "plant", 1910, _THING),
    ("curtain, drape, drapery, mantle, pall", "curtain", 687, _THING),
    ("chair", "chair", 471, _THING),
    ("car, auto, automobile, machine, motorcar", "car", 401, _THING),
    ("water", "water", 2994, _BOTTOM),
    ("painting, picture", "painting", 1735, _THING),
    ("sofa, couch, lounge", "sofa", 2473, _THING),
    ("shelf", "shelf", 2329, _THING),
    ("house", "house", 1276, _BACK),
    ("sea", "sea", 2264, _BOTTOM),
    ("rug, carpet, carpeting", "rug", 2178, _BOTTOM),
    ("field", "field", 913, _BOTTOM),
    ("armchair", "armchair", 57, _THING),
    ("seat", "seat", 2272, _THING),
    ("fence, fencing", "fence", 907, _BACK),
    ("desk", "desk", 724, _THING),
    ("rock, stone", "rock", 2138, _THING),
    ("lamp", "lamp", 1395, _THING),
    ("cushion", "cushion", 689, _THING),
    ("signboard, sign", "sign", 2380, _THING),
    ("streetlight, street lamp", "street light", 2616, _THING),
    ("traffic light, traffic signal, stoplight", "traffic light", 2836, _THING),
    (
        "ashcan, trash can, garbage can, wastebin, ash bin, ash-bin, ashbin, dustbin, trash barrel, trash bin",
        "trash can",
        64,
        _THING,
    ),
    ("awning, sunshade, sunblind", "awning", 77, _THING),
    ("bicycle, bike, wheel, cycle", "bicycle", 187, _THING),
    ("minibike, motorbike", "motorbike", 1563, _THING),
    ("van", "van", 2928, _THING),
    ("truck, motortruck", "truck", 2880, _THING),
    ("umbrella", "umbrella", 2901, _THING),
    ("fountain", "fountain", 1023, _THING),
    ("banner, streamer", "banner", 118, _THING),
)

# Real part names: (name, code or 0 = draw a synthetic code, usable at level 2). "door" shares its code with the object.
_REAL_PARTS: tuple[tuple[str, int, bool], ...] = (
    ("wheel", 3035, False),
    ("headlight", 1213, False),
    ("taillight", 2700, False),
    ("license plate", 1439, False),
    ("windshield", 3057, False),
    ("bumper", 320, False),
    ("housing", 1279, False),
    ("window", 3050, False),
    ("shop window", 2346, False),
    ("balcony", 101, False),
    ("double door", 783, False),
    ("metal shutters", 1541, False),
    ("door", 774, False),
    ("head", 0, False),
    ("torso", 0, False),
    ("arm", 0, False),
    ("leg", 0, False),
    ("drawer", 0, False),
    ("shade", 0, False),
    ("base", 0, False),
    ("back", 0, False),
    ("screen", 0, False),
    ("handle", 1180, True),
    ("rim", 2122, True),
    ("mirror", 1564, True),
    ("knob", 0, True),
    ("hinge", 0, True),
    ("pane", 0, True),
)
_N_SYNTHETIC_PARTS = 32  # synthetic "part NNNN" classes added after the real part names (every 4th usable at level 2)

_HYPERNYM_TAIL = {
    _TOP: ("atmosphere", "gas", "fluid", "matter", "physical entity", "entity"),
    _BACK: (
        "structure, construction",
        "artifact, artefact",
        "whole, unit",
        "object, physical object",
        "physical entity",
        "entity",
    ),
    _BOTTOM: ("surface", "artifact, artefact", "whole, unit", "object, physical object", "physical entity", "entity"),
    _THING: ("whole, unit", "object, physical object", "physical entity", "entity"),
}


@dataclass(frozen=True)
class ClassInfo:
    """One class of a synthetic vocabulary.

    Attributes
    ----------
    code : int
        ADE full-dataset class code (``name_ndx``), 1..3688.
    name : str
        WordNet-style name, synonyms separated by ``", "``.
    raw_name : str
        Annotator's raw name.
    stuff : bool
        True for amorphous regions (wall, sky, floor, ...), False for countable things.
    role : str
        How regions are drawn: ``"top"`` (band from the top edge), ``"back"`` (band in the middle), ``"bottom"``
        (band to the bottom edge), ``"thing"`` (star-shaped polygon) or ``"part"``.
    hypernym : tuple of str
        Hypernym chain, starting with ``name`` (empty for parts, as in the real data).
    """

    code: int
    name: str
    raw_name: str
    stuff: bool
    role: str
    hypernym: tuple[str, ...]


def _mix(*values: int) -> int:
    """Deterministic 64-bit integer hash (splitmix64 over the values)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
        h = (h + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h


@dataclass(frozen=True)
class _Vocabulary:
    classes: tuple[ClassInfo, ...]
    parts: tuple[ClassInfo, ...]
    part_sets: tuple[tuple[int, ...], ...]  # per class rank: part indices usable at level 1
    subpart_sets: tuple[tuple[int, ...], ...]  # per part index: part indices usable at level 2 below it
    role_ids: np.ndarray = field(repr=False)


def _max_classes() -> int:
    reserved = {c for _, _, c, _ in _REAL_CLASSES} | {c for _, c, _ in _REAL_PARTS if c}
    n_real_parts_synthetic = sum(1 for _, c, _ in _REAL_PARTS if not c)
    return _MAX_VOCAB_CODE - len(reserved) + len(_REAL_CLASSES) - n_real_parts_synthetic - _N_SYNTHETIC_PARTS


@functools.lru_cache(maxsize=8)
def _build_vocabulary(n_classes: int, seed: int) -> _Vocabulary:
    """The vocabulary of ``n_classes`` classes for ``seed`` (cached: every image of a dataset uses it)."""
    n_classes = int(n_classes)
    limit = _max_classes()
    if not 1 <= n_classes <= limit:
        raise ValueError(f"n_classes must be in 1..{limit}, got {n_classes}")
    reserved = {c for _, _, c, _ in _REAL_CLASSES} | {c for _, c, _ in _REAL_PARTS if c}
    perm = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x70CAB]).permutation(np.arange(1, _MAX_VOCAB_CODE + 1))
    pool = [int(c) for c in perm if int(c) not in reserved]
    classes: list[ClassInfo] = []
    for i in range(n_classes):
        if i < len(_REAL_CLASSES):
            name, raw, code, role = _REAL_CLASSES[i]
        else:
            code = pool[i - len(_REAL_CLASSES)]
            h = _mix(seed, code, 1)
            role = (_TOP, _BACK, _BOTTOM)[(h >> 8) % 3] if h % 100 < 15 else _THING
            raw = f"object {code}"
            name = f"object {code}, item {code}" if (h >> 16) % 4 == 0 else raw
        classes.append(
            ClassInfo(
                code=code,
                name=name,
                raw_name=raw,
                stuff=role != _THING,
                role=_ROLE_NAMES[role],
                hypernym=(name,) + _HYPERNYM_TAIL[role],
            )
        )
    # Parts: real names (synthetic codes where the real one is not known), then synthetic names; synthetic part codes
    # come from the far end of the pool so that they never collide with synthetic object codes.
    parts: list[ClassInfo] = []
    sub_ok: list[bool] = []
    tail = len(pool) - 1
    for name, code, level2 in _REAL_PARTS:
        if not code:
            code, tail = pool[tail], tail - 1
        parts.append(ClassInfo(code=code, name=name, raw_name=name, stuff=False, role="part", hypernym=()))
        sub_ok.append(level2)
    for j in range(_N_SYNTHETIC_PARTS):
        code, tail = pool[tail], tail - 1
        parts.append(
            ClassInfo(code=code, name=f"part {code}", raw_name=f"part {code}", stuff=False, role="part", hypernym=())
        )
        sub_ok.append(j % 4 == 3)
    level1 = [j for j, ok in enumerate(sub_ok) if not ok]
    level2 = [j for j, ok in enumerate(sub_ok) if ok]

    def pick(key: int, pool_idx: list[int], n: int) -> tuple[int, ...]:
        chosen: list[int] = []
        for t in range(4 * n):
            j = pool_idx[_mix(seed, key, 7, t) % len(pool_idx)]
            if j not in chosen:
                chosen.append(j)
            if len(chosen) == n:
                break
        return tuple(chosen)

    part_sets = tuple(pick(c.code, level1, 2 + _mix(seed, c.code, 2) % 3) for c in classes)
    subpart_sets = tuple(pick(100000 + p.code, level2, 1 + _mix(seed, p.code, 3) % 2) for p in parts)
    role_ids = np.array([_ROLE_NAMES.index(c.role) for c in classes], np.int8)
    return _Vocabulary(tuple(classes), tuple(parts), part_sets, subpart_sets, role_ids)


def class_vocabulary(n_classes: int, seed: int = 0) -> list[tuple[int, str, str]]:
    """Synthetic ADE-style class vocabulary.

    Parameters
    ----------
    n_classes : int
        Number of classes (1..about 3600).
    seed : int
        Seed for the codes and stuff/thing flags of the synthetic classes.

    Returns
    -------
    list of (int, str, str)
        ``(code, wordnet_name, raw_name)`` in frequency-rank order (rank 1 first). The first 48 classes are real
        ADE20K names with their real full-dataset codes ("wall" 2978, "building, edifice" 312, "sky" 2420, ...); the
        rest are ``"object <code>"`` names with distinct codes scattered over 1..3688. ``class_vocabulary(n)`` is a
        prefix of ``class_vocabulary(n + 1)``.
    """
    return [(c.code, c.name, c.raw_name) for c in _build_vocabulary(n_classes, seed).classes]


def class_details(n_classes: int, seed: int = 0) -> list[ClassInfo]:
    """Like :func:`class_vocabulary` but returns :class:`ClassInfo` records (with the stuff flag and role)."""
    return list(_build_vocabulary(n_classes, seed).classes)


def _zipf_probabilities(n: int, exponent: float) -> np.ndarray:
    if exponent < 0 or not math.isfinite(exponent):
        raise ValueError(f"zipf_exponent must be a finite number >= 0, got {exponent}")
    p = np.arange(1, n + 1, dtype=np.float64) ** (-float(exponent))
    return p / p.sum()

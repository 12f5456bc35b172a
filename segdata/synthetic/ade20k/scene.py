"""One random ADE20K-like scene: stuff bands, star-shaped things, unlabeled holes, parts and parts of parts, painted
back to front, with the JSON order, ids, occlusion flags, attributes and dates of the real annotations."""

from __future__ import annotations

import math

import numpy as np

from .encoding import _MAX_PER_LEVEL
from .names import _BACK, _BOTTOM, _THING, _TOP, ClassInfo, _Vocabulary
from .render import (
    RenderedImage,
    SyntheticObject,
    _finish,
    _rasterize,
    _sample_in_slot,
    _shuffled_ranks,
    _star_polygon,
    _stuff_polygon,
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _random_date(rng: np.random.Generator) -> str:
    y, mo, d = int(rng.integers(2005, 2021)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    hh, mm, ss = int(rng.integers(0, 24)), int(rng.integers(0, 60)), int(rng.integers(0, 60))
    return f"{d:02d}-{_MONTHS[mo - 1]}-{y} {hh:02d}:{mm:02d}:{ss:02d}"


class _Item:
    """Mutable scratch record of one object during synthesis."""

    __slots__ = ("level", "key", "info", "poly", "box", "slot", "parent", "rank", "part_index", "visible")

    def __init__(
        self,
        level: int,
        key: float,
        info: ClassInfo,
        poly: tuple[np.ndarray, np.ndarray],
        box: tuple[int, int, np.ndarray],
        parent: _Item | None,
        rank: int = -1,
        part_index: int = -1,
    ):
        self.level, self.key, self.info, self.poly, self.box = level, key, info, poly, box
        self.parent, self.rank, self.part_index = parent, rank, part_index
        self.slot, self.visible = 0, 0


def _synth_image(
    rng: np.random.Generator,
    height: int,
    width: int,
    vocab: _Vocabulary,
    probs: np.ndarray,
    parts: bool,
    extra_ranks: tuple[int, ...] = (),
) -> RenderedImage:
    """Random scene: stuff bands, star-shaped things, unlabeled holes, parts; painted back to front.

    ``extra_ranks`` (0-based class ranks) are drawn on top of the random ones (the coverage of the learnable sets).
    """
    area = height * width
    n0 = int(np.clip(np.rint(45.0 * (area / 3.1e6) ** 0.2 * rng.uniform(0.65, 1.35)), 1, _MAX_PER_LEVEL))
    ranks = rng.choice(probs.size, size=n0, p=probs)
    if extra_ranks:
        ranks = np.concatenate((ranks[: _MAX_PER_LEVEL - len(extra_ranks)], np.asarray(extra_ranks, ranks.dtype)))
        n0 = ranks.size
    roles = vocab.role_ids[ranks]
    polys: list[tuple[np.ndarray, np.ndarray] | None] = [None] * n0
    keys = np.zeros(n0)
    for role, (klo, khi) in ((_TOP, (0.0, 0.05)), (_BACK, (0.05, 0.15)), (_BOTTOM, (0.15, 0.25))):
        idx = np.flatnonzero(roles == role)
        if idx.size == 0:
            continue
        edges = np.concatenate(([0.0], np.sort(rng.uniform(0.0, 1.0, idx.size - 1)), [1.0]))
        for j, i in enumerate(idx):
            lo, hi = max(0.0, edges[j] - 0.03), min(1.0, edges[j + 1] + 0.03)
            skyline = vocab.classes[ranks[i]].raw_name in ("building", "house") or rng.random() < 0.2
            polys[i] = _stuff_polygon(rng, height, width, role, lo * (width - 1), hi * (width - 1), skyline)
            keys[i] = rng.uniform(klo, khi)
    a_max = 0.2 * area
    a_min = max(4.0, min(30.0, 0.02 * area))
    for i in np.flatnonzero(roles == _THING):
        a = math.exp(rng.uniform(math.log(a_min), math.log(max(a_max, a_min * 1.01))))
        cx, cy = rng.uniform(0, width - 1), rng.uniform(0.1, 0.95) * (height - 1)
        polys[i] = _star_polygon(rng, cx, cy, math.sqrt(a / math.pi), height, width)
        keys[i] = 0.3 + 0.7 * (0.6 * cy / max(height - 1, 1) + 0.4 * rng.random())
    for i in range(n0 - len(extra_ranks), n0):
        if roles[i] == _THING:  # the forced things go on top, so that they stay visible
            keys[i] = 1.0 + 1e-6 * i
    n_void = int(rng.choice(4, p=[0.5, 0.25, 0.15, 0.1]))
    voids = []
    for _ in range(n_void):
        a = area * math.exp(rng.uniform(math.log(0.001), math.log(0.02)))
        poly = _star_polygon(
            rng,
            rng.uniform(0, width - 1),
            rng.uniform(0, height - 1),
            math.sqrt(a / math.pi),
            height,
            width,
            roughness=0.3,
        )
        voids.append((poly, rng.uniform(0.3, 1.0)))
    all_keys = np.concatenate((keys, [k for _, k in voids]))
    owner0 = np.zeros((height, width), np.uint8)
    level0: list[_Item] = []
    for j in np.argsort(all_keys, kind="stable"):
        poly = polys[j] if j < n0 else voids[j - n0][0]
        if poly is None:
            continue
        box = _rasterize(poly[0], poly[1], height, width)
        if box is None:
            continue
        y0, x0, m = box
        view = owner0[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]]
        if j >= n0:
            view[m] = 0
            continue
        item = _Item(0, float(len(level0)), vocab.classes[ranks[j]], poly, box, None, rank=int(ranks[j]))
        level0.append(item)
        item.slot = len(level0)
        view[m] = item.slot
    counts = np.bincount(owner0.ravel(), minlength=256)
    if counts[0] == 0:
        # Real label maps always keep some unlabeled pixels (so that the seg PNG has N + 1 distinct B values):
        # punch a small hole on top of everything.
        a = max(1.0, area * rng.uniform(0.0005, 0.003))
        cx, cy = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
        poly = _star_polygon(rng, cx, cy, math.sqrt(a / math.pi), height, width, roughness=0.3)
        box = _rasterize(poly[0], poly[1], height, width) if poly is not None else None
        if box is None:
            owner0[int(round(cy)), int(round(cx))] = 0
        else:
            y0, x0, m = box
            owner0[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]][m] = 0
        counts = np.bincount(owner0.ravel(), minlength=256)
    for it in level0:
        it.visible = int(counts[it.slot])
    owners = [owner0]
    levels = [level0]
    if parts:
        for lv in (1, 2):
            prev_owner, prev = owners[-1], levels[-1]
            new: list[_Item] = []
            for par in prev:
                if par.visible == 0:
                    continue
                p_area = int(np.count_nonzero(par.box[2]))
                if lv == 1:
                    if p_area < 64 or rng.random() >= (0.35 if par.info.role == "thing" else 0.15):
                        continue
                    choices, n_parts, scale = vocab.part_sets[par.rank], int(rng.integers(1, 4)), (0.12, 0.4)
                else:
                    if p_area < 40 or rng.random() >= 0.25:
                        continue
                    choices, n_parts, scale = vocab.subpart_sets[par.part_index], int(rng.integers(1, 3)), (0.2, 0.45)
                for _ in range(n_parts):
                    if len(new) >= _MAX_PER_LEVEL:
                        break
                    centre = _sample_in_slot(rng, prev_owner, par.box, par.slot)
                    if centre is None:
                        break
                    radius = max(1.0, math.sqrt(p_area / math.pi) * rng.uniform(*scale))
                    poly = _star_polygon(rng, centre[0], centre[1], radius, height, width)
                    pidx = choices[int(rng.integers(len(choices)))]
                    key = float(rng.uniform(-0.5, len(level0) - 0.5))
                    if poly is None:
                        continue
                    box = _rasterize(poly[0], poly[1], height, width)
                    if box is None:
                        continue
                    new.append(_Item(lv, key, vocab.parts[pidx], poly, box, par, part_index=pidx))
            if not new:
                break
            new.sort(key=lambda it: it.key)
            owner = np.zeros((height, width), np.uint8)
            for s, it in enumerate(new, start=1):
                it.slot = s
                y0, x0, m = it.box
                sl = (slice(y0, y0 + m.shape[0]), slice(x0, x0 + m.shape[1]))
                owner[sl][m & (prev_owner[sl] == it.parent.slot)] = s
            for it in new:
                y0, x0, m = it.box
                it.visible = int(np.count_nonzero(owner[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] == it.slot))
            owners.append(owner)
            levels.append(new)
    # JSON order, ids (dropped objects and a few random skips leave gaps, as in the real data), final records
    everything = sorted((it for lvl in levels for it in lvl), key=lambda it: (it.key, it.level))
    dates = [_random_date(rng) for _ in range(int(rng.integers(1, 4)))]
    kept: list[_Item] = []
    ids: list[int] = []
    next_id = 0
    for it in everything:
        if it.visible > 0:
            kept.append(it)
            ids.append(next_id)
        next_id += 2 if rng.random() < 0.02 else 1
    position = {id(it): i for i, it in enumerate(kept)}
    objects = []
    for i, it in enumerate(kept):
        area_amodal = int(np.count_nonzero(it.box[2]))
        hidden = area_amodal > it.visible
        flag = "unknown" if rng.random() < 0.4 else ("yes" if hidden else "no")
        attrs: tuple[str, ...] = ()
        if it.info.raw_name == "person" and rng.random() < 0.3:
            attrs = (("walking", "standing", "sitting")[int(rng.integers(3))],)
        elif rng.random() < 0.02:
            attrs = (("open", "closed", "broken")[int(rng.integers(3))],)
        objects.append(
            SyntheticObject(
                code=it.info.code,
                name=it.info.name,
                raw_name=it.info.raw_name,
                polygon=(tuple(it.poly[0].tolist()), tuple(it.poly[1].tolist())),
                part_level=it.level,
                parent=position[id(it.parent)] if it.parent is not None else None,
                id=ids[i],
                hypernym=it.info.hypernym,
                attributes=attrs,
                occluded=flag,
                saved_date=dates[int(rng.integers(len(dates)))],
            )
        )
    ks = _shuffled_ranks([o.part_level for o in objects], rng)
    return _finish(
        height,
        width,
        objects,
        [it.slot for it in kept],
        owners,
        [it.box for it in kept],
        [it.visible for it in kept],
        ks,
    )

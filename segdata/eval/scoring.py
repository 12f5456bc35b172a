"""From counts to the evaluation's figures: overall, per class, per frequency bucket, per object
size, next to the annotator ceiling, with bootstrap intervals over images.

The figures follow one convention (:mod:`segdata.eval.conventions`, segdata's own by default) for
the estimate and for every bootstrap resample alike. Intervals are bias-corrected and accelerated
(BCa, :func:`segdata.bootstrap.bca_intervals`) over images, resampling the per-image sums of
:class:`~segdata.eval.counting.Counts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..format import Dataset
from . import buckets as bucketing
from . import conventions
from .counting import Counts
from .instances import cityscapes_iiou, instance_table, size_recall
from .space import EvalSpace


def _num(x) -> float | None:
    x = float(x)
    return None if x != x else x


def _pair(lo, hi) -> list | None:
    lo, hi = _num(lo), _num(hi)
    return None if lo is None or hi is None else [lo, hi]


@dataclass
class EvalResult:
    """An evaluation's figures; :meth:`to_dict` is ``segdata eval --json``.

    Attributes
    ----------
    figures : dict
        ``pixel_accuracy``, ``mean_accuracy``, ``miou``, ``fw_iou`` (fractions; None where the
        convention does not define them), ``mean_iiou`` (Cityscapes only).
    per_class : DataFrame
        One row per evaluated class: ``train_id``, ``class_id`` (the first unified class),
        ``class_ids``, ``name``, ``iou``, ``accuracy`` (NaN: absent), ``present``, ``bucket``,
        ``train_images``, ``train_pixel_share``, ``ceiling_iou``, ``iiou``.
    buckets : list of dict
    size_recall : dict or None
    ceiling : dict or None
    ci : dict
    convention : dict
    settings : dict
    matrix : ndarray (K, K + 1)
    """

    figures: dict
    per_class: pd.DataFrame
    buckets: list
    size_recall: dict | None
    ceiling: dict | None
    ci: dict
    convention: dict
    settings: dict
    matrix: np.ndarray = field(repr=False, default=None)

    @property
    def miou(self) -> float | None:
        return self.figures.get("miou")

    def to_dict(self) -> dict:
        out = dict(self.figures)
        rows = []
        for r in self.per_class.itertuples(index=False):
            row = {
                "class_id": int(r.class_id),
                "class_ids": [int(c) for c in r.class_ids],
                "train_id": int(r.train_id),
                "name": r.name,
                "iou": _num(r.iou),
                "accuracy": _num(r.accuracy),
                "present": bool(r.present),
                "bucket": r.bucket,
                "train_images": None if pd.isna(r.train_images) else int(r.train_images),
                "train_pixel_share": _num(r.train_pixel_share),
                "ceiling_iou": _num(r.ceiling_iou),
            }
            if not pd.isna(r.iiou) or r.has_iiou:
                row["iiou"] = _num(r.iiou)
            rows.append(row)
        out["per_class"] = rows
        out["buckets"] = self.buckets
        out["size_recall"] = self.size_recall
        if self.ceiling is not None:
            out["ceiling"] = self.ceiling
        out["ci"] = self.ci
        out["convention"] = self.convention
        out["settings"] = self.settings
        return out

    def _repr_html_(self) -> str:  # a compact card in a notebook
        from ..render.html import evaluation_card

        return evaluation_card(self)


def _ceiling_ious(ceiling, ds: Dataset, space: EvalSpace) -> np.ndarray:
    """The annotators' IoU of each evaluated class, re-projected from the ceiling file's classes:
    matched by unified ``class_id`` when the ceiling's reference is this dataset, by name otherwise;
    an evaluated class merging several classes sums their TP/FP/FN (ceiling file v2). NaN where the
    ceiling does not cover the class."""
    cc = ceiling.classes
    same = str(ceiling.reference.get("path", "")) == str(ds.path)
    names = dict(zip(ds.classes["class_id"].astype(int), ds.classes["name"].astype(str).str.lower()))
    by_name: dict[str, list[int]] = {}
    for cid, name in zip(cc["class_id"].astype(int), cc["name"].astype(str).str.lower()):
        by_name.setdefault(name, []).append(cid)
    groups = []
    for ids in space.class_ids:
        if same:
            groups.append([int(c) for c in ids])
        else:
            groups.append([g for c in ids for g in by_name.get(names.get(int(c), ""), [])])
    try:
        from ..analyses.consistency.ceiling import ceiling_iou_for
    except ImportError:  # a ceiling module without per-class TP/FP/FN: single classes only
        ceiling_iou_for = None
    if ceiling_iou_for is not None:
        return np.asarray(ceiling_iou_for(ceiling, groups), dtype=np.float64)
    iou = dict(zip(cc["class_id"].astype(int), cc["iou"].astype(float)))
    return np.array([iou.get(g[0], np.nan) if len(g) == 1 else np.nan for g in groups], dtype=np.float64)


def score(
    ds: Dataset,
    space: EvalSpace,
    counts: Counts,
    *,
    by_frequency: bool = False,
    bucket_rule: str = "lvis",
    freq_split: str = "train",
    ceiling=None,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    convention: str = "segdata",
    settings: dict | None = None,
) -> EvalResult:
    """The figures of ``counts``.

    Parameters
    ----------
    by_frequency : bool
        Put the evaluated classes in frequency buckets counted on ``freq_split``
        (:mod:`segdata.eval.buckets`) and score each bucket.
    ceiling : Ceiling, optional
        Read with :func:`segdata.analyses.consistency.ceiling.read_ceiling`: the annotators'
        figure next to each model figure (overall and per bucket: the mean human IoU of the
        bucket's classes the ceiling covers).
    bootstrap : int
        Resamples of the images for the BCa intervals (0: none).
    """
    conv = conventions.get(convention)
    k = space.num_classes
    sums = counts.per_image()
    total = {name: a.sum(axis=0) for name, a in sums.items()}
    tp, gt, pred, miss = total["tp"], total["gt"], total["pred"], total["miss"]
    iou = conv.iou(tp, gt, pred, miss)
    acc = conv.accuracy(tp, gt, miss)
    present = (gt + pred) > 0

    freq = None
    bucket_names: list[str | None] = [None] * k
    order: list[str] = []
    if by_frequency:
        freq = bucketing.training_frequencies(ds, space, freq_split)
        bucket_names, order = bucketing.assign(freq, bucket_rule, space)
    members = {b: np.flatnonzero(np.array([n == b for n in bucket_names])) for b in order}

    human = _ceiling_ious(ceiling, ds, space) if ceiling is not None else np.full(k, np.nan)
    instances = instance_table(ds, space, counts) if counts.segment_hits else pd.DataFrame()
    is_cityscapes = ds.manifest.get("source", {}).get("family") == "cityscapes"
    iiou = {}
    if is_cityscapes:
        iiou = cityscapes_iiou(instances if not instances.empty else _no_instances(), counts.matrix, space)

    figures = {
        "pixel_accuracy": _num(conv.pixel_accuracy(tp, gt, miss)),
        "mean_accuracy": _num(conv.mean_accuracy(tp, gt, miss)) if conv.mean_accuracy_defined else None,
        "miou": _num(conv.miou(tp, gt, pred, miss)),
        "fw_iou": _num(conv.fw_iou(tp, gt, pred, miss)) if conv.fw_iou_defined else None,
    }
    if is_cityscapes:
        figures["mean_iiou"] = _num(np.nanmean(list(iiou.values()))) if any(v == v for v in iiou.values()) else None

    ceiling_overall = _num(np.nanmean(human)) if np.isfinite(human).any() else None

    # ---- bootstrap: one statistic vector over every figure that gets an interval
    names = ["miou", "pixel_accuracy", "mean_accuracy"] + [f"bucket:{b}" for b in order]

    # a resample holding none of a class's ground truth leaves the class out (metrics.iou_of)
    seen = gt > 0

    def statistic(s: dict) -> np.ndarray:
        t, g, p, m = s["tp"], s["gt"], s["pred"], s["miss"]
        v = conv.iou(t, g, p, m, seen)
        cols = [_mean_of(v, np.arange(k)), conv.pixel_accuracy(t, g, m), conv.mean_accuracy(t, g, m)]
        cols += [_mean_of(v, members[b]) for b in order]
        return np.stack(cols, axis=-1)

    intervals: dict[str, list | None] = dict.fromkeys(names)
    ci = {"level": confidence, "method": "bca", "bootstrap": int(bootstrap), "seed": int(seed)}
    if bootstrap and len(counts.image_ids) > 1:
        from ..bootstrap import bca_intervals

        res = bca_intervals(sums, statistic, n_resamples=int(bootstrap), seed=int(seed), confidence=confidence)
        intervals = {n: _pair(lo, hi) for n, lo, hi in zip(names, res.low, res.high)}
    for n in ("miou", "pixel_accuracy", "mean_accuracy"):
        ci[n] = intervals[n]

    bucket_rows = []
    for b in order:
        idx = members[b]
        model = _num(_mean_of(iou, idx))
        row = {
            "name": b,
            "classes": int(len(idx)),
            "classes_present": int(present[idx].sum()),
            "miou": model,
            "ci": intervals[f"bucket:{b}"],
        }
        if ceiling is not None:
            h = human[idx]
            covered = np.isfinite(h)
            ceil = _num(np.mean(h[covered])) if covered.any() else None
            row["ceiling_miou"] = ceil
            row["ceiling_classes"] = int(covered.sum())
            row["difference"] = None if ceil is None or model is None else model - ceil
            lohi = intervals[f"bucket:{b}"]
            row["difference_ci"] = None if ceil is None or lohi is None else [lohi[0] - ceil, lohi[1] - ceil]
        bucket_rows.append(row)

    ceiling_block = None
    if ceiling is not None:
        ceiling_block = {
            "miou": ceiling_overall,
            "file_miou": ceiling.miou,
            "pixel_accuracy": ceiling.pixel_accuracy,
            "classes_covered": int(np.isfinite(human).sum()),
            "path": ceiling.path,
            "difference": None
            if ceiling_overall is None or figures["miou"] is None
            else figures["miou"] - ceiling_overall,
            "difference_ci": None
            if ceiling_overall is None or ci["miou"] is None
            else [ci["miou"][0] - ceiling_overall, ci["miou"][1] - ceiling_overall],
        }

    first_ids = [ids[0] for ids in space.class_ids]
    per_class = pd.DataFrame(
        {
            "train_id": np.arange(k),
            "class_id": first_ids,
            "class_ids": space.class_ids,
            "name": space.names,
            "iou": iou,
            "accuracy": acc,
            "present": present,
            "bucket": bucket_names,
            "train_images": freq["train_images"].to_numpy() if freq is not None else [None] * k,
            "train_pixel_share": freq["pixel_share"].to_numpy() if freq is not None else np.full(k, np.nan),
            "ceiling_iou": human,
            "iiou": [iiou.get(i, np.nan) for i in range(k)],
            "has_iiou": [i in iiou for i in range(k)],
        }
    )
    convention_block = {
        "name": conv.name,
        "description": conv.description,
        "printed": conv.printed(figures),
    }
    return EvalResult(
        figures=figures,
        per_class=per_class,
        buckets=bucket_rows,
        size_recall=size_recall(instances) if not instances.empty else None,
        ceiling=ceiling_block,
        ci=ci,
        convention=convention_block,
        settings=dict(settings or {}),
        matrix=counts.matrix,
    )


def _mean_of(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    from ..metrics import mean_present

    return mean_present(values[..., idx]) if len(idx) else np.full(values.shape[:-1], np.nan)


def _no_instances() -> pd.DataFrame:
    return pd.DataFrame({"source_instance": [], "name": [], "area": [], "hits": [], "index": []})

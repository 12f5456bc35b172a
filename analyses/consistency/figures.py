"""Every figure as a function of per-image sums: the point estimates, the BCa bootstrap
intervals over images (:mod:`segdata.bootstrap` on the same sums) and the figures of one
class-pair table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from segdata.metrics import iou_of, mean_present

from .classes import ClassSpace

_DENSE_SUMS = 1 << 22  # images * per-class sums up to which the per-image sums are a dense array (32 MiB)


_SCALARS = (
    "compared",
    "agree",
    "evaluable",
    "agree_evaluable",
    "gt",
    "tp_all",
    "kappa_n",
    "kappa_agree",
    "sym_unlabeled",
)
#: the per-class sums kept per image; TP, GT, PR, kA and kB follow from them (see :func:`_weighted`)
_PER_CLASS = ("sTP", "sA", "sB", "EA", "UB")


def _sums(
    image: np.ndarray,
    ca: np.ndarray,
    cb: np.ndarray,
    n: np.ndarray,
    n_images: int,
    space: ClassSpace,
    per_class: Sequence[str] = _PER_CLASS,
) -> dict:
    """Per-image sums every figure is a function of.

    Returns ``{"scalars": (n_images, len(_SCALARS)), "classes": the (n_images, len(per_class) K)
    per-class sums, "k": K, "names": per_class}``, columns in the order of :data:`_SCALARS` and
    ``per_class`` (K columns each, names from :data:`_PER_CLASS`). Up to :data:`_DENSE_SUMS`
    entries ``classes`` is a dense array of the non-zero columns only, whose indices are in
    ``"columns"``; above, a CSR matrix of all columns."""
    k = len(space)
    ign = space.ignore
    if space.unmapped is not None:
        keep = cb != space.unmapped
        image, ca, cb, n = image[keep], ca[keep], cb[keep], n[keep]
    n = n.astype(np.float64)
    la, lb = ca != 0, cb != 0
    ia, ib = ign[ca], ign[cb]
    same = ca == cb
    compared = la | lb
    evaluable = la & lb & ~ia & ~ib
    scored_gt = la & ~ia  # B against A: A's evaluable pixels
    sym = ~ia & ~ib
    kap = sym & compared
    masks = (
        compared,
        compared & same,
        evaluable,
        evaluable & same,
        scored_gt,
        scored_gt & same,
        kap,
        kap & same,
        sym & ~la & ~lb,
    )
    scalars = np.stack([np.bincount(image[m], weights=n[m], minlength=n_images) for m in masks], axis=1)
    out = {"scalars": scalars, "k": k, "classes": None, "names": tuple(per_class)}
    if not per_class:
        return out
    # EA: A labels class c, B marks ignore; UB: B labels class c, A leaves unlabeled (neither ignore)
    every = {
        "sTP": (sym & same, ca),
        "sA": (sym, ca),
        "sB": (sym, cb),
        "EA": (la & ~ia & ib, ca),
        "UB": (~la & sym, cb),
    }
    defs = [every[name] for name in per_class]
    width = len(defs) * k
    rows = np.concatenate([image[m] for m, _ in defs])
    cols = np.concatenate([cls[m] + t * k for t, (m, cls) in enumerate(defs)])
    vals = np.concatenate([n[m] for m, _ in defs])
    if n_images * width <= _DENSE_SUMS:  # one bincount, and BLAS products (of the non-zero columns) in the bootstrap
        dense = np.bincount(rows * width + cols, weights=vals, minlength=n_images * width).reshape(n_images, width)
        out["columns"] = np.flatnonzero(dense.any(axis=0))
        out["classes"] = np.ascontiguousarray(dense[:, out["columns"]])
        return out
    from scipy import sparse

    out["classes"] = sparse.csr_matrix((vals, (rows, cols)), shape=(n_images, width))
    return out


def _ratio(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _figures(
    s: dict, scored: np.ndarray, buckets: dict[str, np.ndarray] | None = None, seen: dict | None = None
) -> dict:
    """Figures from (resampled) sums: scalars are (B,), per-class sums dense (B, K). ``seen``
    (``{"iou": mask, "iou_symmetric": mask}``, classes with ground truth in the whole sample) makes
    a resample without a seen class's ground truth leave it out (:func:`segdata.metrics.iou_of`)."""
    seen = seen or {}
    out = {
        "pixel_agreement": _ratio(s["agree"], s["compared"]),
        "pixel_agreement_excluding_void": _ratio(s["agree_evaluable"], s["evaluable"]),
        "pixel_accuracy": _ratio(s["tp_all"], s["gt"]),
    }
    iou = iou_of(s["TP"], s["GT"], s["PR"], seen=seen.get("iou"))
    iou[:, ~scored] = np.nan
    out["miou"] = mean_present(iou)
    out["iou"] = iou
    if "sTP" in s:
        siou = iou_of(s["sTP"], s["sA"], s["sB"], seen=seen.get("iou_symmetric"))
        siou[:, ~scored] = np.nan
        out["miou_symmetric"] = mean_present(siou)
        out["iou_symmetric"] = siou
    if "kA" in s:
        po = _ratio(s["kappa_agree"], s["kappa_n"])
        pe = _ratio((s["kA"] * s["kB"]).sum(axis=1), np.asarray(s["kappa_n"], dtype=np.float64) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["kappa"] = np.where(pe < 1, (po - pe) / (1 - pe), np.nan)
    if buckets:
        for name, members in buckets.items():
            tp = s["TP"][:, members].sum(axis=1)
            gt = s["GT"][:, members].sum(axis=1)
            out[f"bucket:{name}:pixel_accuracy"] = _ratio(tp, gt)
            out[f"bucket:{name}:miou"] = mean_present(iou[:, members])
    return out


def _weighted(s: dict, weights: np.ndarray) -> dict:
    """Sums under image weights (B, n_images): scalars -> (B,), per-class -> dense (B, K)
    (:func:`_derived`)."""
    m = s["classes"]
    pc = None
    if m is not None:
        if isinstance(m, np.ndarray):  # the non-zero columns only
            pc = np.zeros((len(weights), s["k"] * len(s["names"])))
            pc[:, s["columns"]] = weights @ m
        else:
            pc = np.asarray((m.T @ weights.T).T)
    return _derived(s, weights @ s["scalars"], pc)


def _derived(s: dict, scalars: np.ndarray, pc: np.ndarray | None) -> dict:
    """The sums every figure needs from (resampled) sums: ``scalars`` (B, len(_SCALARS)) and the
    per-class sums ``pc`` (B, len(names) K, all columns) or None.

    The figures need eight per-class sums; five are resampled (:data:`_PER_CLASS`, two of them
    sparse) and the others derived, which saves most of the bootstrap's products:

    - ``TP`` (A and B agree on class c, c labelled, not ignore) is ``sTP`` without class 0;
    - ``GT`` (A's pixels of class c, c labelled, not ignore) is ``sA`` (neither side ignore)
      plus ``EA`` (B marks ignore), without class 0;
    - ``PR`` (B's pixels of class c where A is labelled, not ignore) is ``sB`` less ``UB`` (A
      unlabeled); exact for every class that is not ignore, the only ones scored;
    - ``kA`` / ``kB`` (pixels of class c in A / B among those kappa counts: neither side ignore,
      at least one labelled) are ``sA`` / ``sB`` less, in class 0, the pixels both leave
      unlabeled (``sym_unlabeled``): for a labelled class the two conditions coincide.
    """
    out = {name: scalars[:, t] for t, name in enumerate(_SCALARS)}
    if pc is not None:
        k = s["k"]
        for t, name in enumerate(s["names"]):
            out[name] = pc[:, t * k : (t + 1) * k]
        out["TP"] = out["sTP"].copy()
        out["TP"][:, 0] = 0
        out["GT"] = out["sA"] + out["EA"]
        out["GT"][:, 0] = 0
        out["PR"] = out["sB"] - out["UB"]
        out["kA"], out["kB"] = out["sA"].copy(), out["sB"].copy()
        out["kA"][:, 0] -= out["sym_unlabeled"]
        out["kB"][:, 0] -= out["sym_unlabeled"]
    return out


def _pair_sums(pairs: np.ndarray, space: ClassSpace) -> dict:
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] < 3:
        raise ValueError(f"expected a (R, 3) or wider class-pair table, got shape {pairs.shape}")
    s = _sums(np.zeros(len(pairs), np.int64), pairs[:, 0], pairs[:, 1], pairs[:, 2], 1, space)
    return _weighted(s, np.ones((1, 1)))


def seen_classes(pairs: np.ndarray, space: ClassSpace) -> dict:
    """The classes with ground truth in a class-pair table (``{"iou": mask, "iou_symmetric":
    mask}``): what a bootstrap resample of part of it leaves out when it holds none of theirs
    (:func:`segdata.metrics.iou_of`)."""
    d = _pair_sums(pairs, space)
    return {"iou": np.asarray(d["GT"])[0] > 0, "iou_symmetric": np.asarray(d["sA"])[0] > 0}


def pair_figures(pairs: np.ndarray, space: ClassSpace, seen: dict | None = None) -> dict:
    """Dataset-level figures of one class-pair table, rows ``(class of A, class of B, pixels,
    ...)`` (class indices of ``space``): ``pixel_agreement``, ``pixel_agreement_excluding_void``,
    ``pixel_accuracy``, ``miou``, ``miou_symmetric``, ``kappa``. ``seen`` (:func:`seen_classes`
    of the whole sample) when the table is a bootstrap resample."""
    f = _figures(_pair_sums(pairs, space), space.scored, seen=seen)
    return {k: _float(v[0]) for k, v in f.items() if np.ndim(v) == 1}


def _float(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def bootstrap_intervals(
    s: dict,
    scored: np.ndarray,
    bucket_members: dict,
    extra: dict,
    keys: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
    confidence: float,
    threads: int = 1,
) -> dict:
    """BCa intervals over images (:func:`segdata.bootstrap.bca_intervals`) of the figures
    ``keys`` (scalar figures of :func:`_figures` and the ratios ``extra``: ``{key: (numerator
    (n_images,), denominator (n_images,))}``) on the per-image sums ``s`` of :func:`_sums`.

    Returns ``{key: [low, high]}`` (``None`` where undefined)."""
    from segdata.bootstrap import bca_intervals

    n_images = len(s["scalars"])
    if not n_images:
        return {key: [None, None] for key in keys}
    per_image = {"scalars": s["scalars"]}
    if s["classes"] is not None:
        per_image["classes"] = s["classes"]
    extra_keys = list(extra)
    if extra_keys:
        per_image["extra"] = np.stack([x for key in extra_keys for x in extra[key]], axis=1)
    dense = isinstance(s["classes"], np.ndarray)

    def derive(sums: dict) -> dict:
        pc = None
        if "classes" in sums:
            pc = sums["classes"]
            if dense:  # the non-zero columns only
                pc = np.zeros((len(pc), s["k"] * len(s["names"])))
                pc[:, s["columns"]] = sums["classes"]
        return _derived(s, sums["scalars"], pc)

    # the classes with ground truth in the whole sample: a resample without theirs leaves them out
    totals = {k: np.asarray(v.sum(axis=0)).reshape(1, -1) for k, v in per_image.items()}
    whole = derive(totals)
    seen = {"iou": np.asarray(whole["GT"])[0] > 0}
    if "sA" in whole:
        seen["iou_symmetric"] = np.asarray(whole["sA"])[0] > 0

    def statistic(sums: dict) -> np.ndarray:
        f = _figures(derive(sums), scored, bucket_members, seen)
        for t, key in enumerate(extra_keys):
            f[key] = _ratio(sums["extra"][:, 2 * t], sums["extra"][:, 2 * t + 1])
        return np.stack([f[key] for key in keys], axis=1)

    result = bca_intervals(
        per_image,
        statistic,
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
        threads=1 if dense else threads,  # sparse products run on threads; BLAS has its own
    )
    return result.intervals(keys)


def _clean(x):
    """NaN -> None, numpy scalars -> Python, recursively."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x

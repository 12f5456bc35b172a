"""The ceiling file: B's pixel accuracy and mIoU against A, overall and per frequency bucket of
A, with per-class TP/FP/FN pixel counts (format version 2), as JSON (``docs/consistency.md``,
"The ceiling file"); and the human IoU of any grouping of A's classes (:func:`ceiling_iou_for`),
for an evaluation in another vocabulary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from segdata.errors import InputError

from .figures import _clean

CEILING_FORMAT = "segdata-ceiling"
CEILING_VERSION = 2
#: the format versions :func:`read_ceiling` reads (1: no per-class tp/fp/fn)
CEILING_VERSIONS = (1, 2)
_COUNTS = ("tp", "fp", "fn")


@dataclass(frozen=True)
class Ceiling:
    """The human ceiling read back from a ceiling file (:func:`read_ceiling`).

    Attributes
    ----------
    pixel_accuracy, miou : float or None
        The annotation's pixel accuracy and mIoU against the reference (fractions).
    images : int
    reference, annotation : dict
        ``dataset``, ``path``, ``layer`` of each.
    buckets : dict
        ``{bucket name: {"classes", "classes_scored", "pixel_accuracy", "miou", "ci"}}`` in the
        rule's order (``rare``, ``common``, ``frequent``, ``absent`` with the LVIS rule).
    bucket_rule : str
    classes : DataFrame
        ``class_id`` (the reference's unified class id), ``name``, ``bucket``, ``pixels``
        (reference pixels), ``iou`` (NaN when absent), ``tp``, ``fp``, ``fn`` (pixel counts, int64;
        float NaN in a version 1 file, which lacks them).
    ci : dict
        ``level``, ``method`` (``"bca"``; absent in files written before it), ``bootstrap``,
        ``seed``, ``pixel_accuracy`` and ``miou`` as ``[low, high]``.
    path : str
    version : int
        The file's ``format_version``.
    """

    pixel_accuracy: float | None
    miou: float | None
    images: int
    reference: dict
    annotation: dict
    buckets: dict
    bucket_rule: str
    classes: pd.DataFrame
    ci: dict
    path: str = ""
    version: int = CEILING_VERSION


def write_ceiling(path: str | Path, result) -> Path:
    """Write the ceiling (see ``docs/consistency.md``, "The ceiling file") as JSON; returns the path.

    ``result`` is a :class:`ConsistencyResult`, its report (a dict with a ``"ceiling"`` entry) or
    the ceiling dict itself."""
    path = Path(path)
    body = result.get("ceiling", result) if isinstance(result, dict) else result.ceiling
    path.write_text(json.dumps(_clean(body), indent=1) + "\n", encoding="utf-8")
    return path


def read_ceiling(path: str | Path) -> Ceiling:
    """Read a ceiling file written by :func:`write_ceiling` (``--ceiling-out``).

    Raises
    ------
    InputError
        When the file is missing, not JSON, not a ceiling file, or of another format version.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "ceiling file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CEILING_FORMAT:
        raise InputError(
            path,
            f"not a segdata ceiling file (format {data.get('format') if isinstance(data, dict) else None!r}, "
            f"expected {CEILING_FORMAT!r})",
            "write one with `segdata analyze consistency ... --ceiling-out FILE`",
        )
    version = data.get("format_version")
    if version not in CEILING_VERSIONS:
        raise InputError(
            path,
            f"ceiling format version {version}, this segdata reads " + " and ".join(str(v) for v in CEILING_VERSIONS),
        )
    missing = [
        k
        for k in ("pixel_accuracy", "miou", "images", "reference", "annotation", "buckets", "classes")
        if k not in data
    ]
    if missing:
        raise InputError(path, f"ceiling file lacks {missing}")
    buckets = data["buckets"]
    values = buckets.get("values", {})
    order = buckets.get("order", list(values))
    classes = pd.DataFrame(data["classes"], columns=["class_id", "name", "bucket", "pixels", "iou", *_COUNTS])
    classes["iou"] = pd.to_numeric(classes["iou"], errors="coerce").astype(np.float64)
    for c in _COUNTS:
        counts = pd.to_numeric(classes[c], errors="coerce").astype(np.float64)
        if version >= 2 and counts.isna().any():
            raise InputError(path, f"ceiling file (version {version}) lacks {c!r} for some classes")
        classes[c] = counts.astype(np.int64) if version >= 2 else counts
    return Ceiling(
        pixel_accuracy=data["pixel_accuracy"],
        miou=data["miou"],
        images=int(data["images"]),
        reference=data["reference"],
        annotation=data["annotation"],
        buckets={name: values[name] for name in order if name in values},
        bucket_rule=buckets.get("rule", ""),
        classes=classes,
        ci=data.get("ci", {}),
        path=str(path),
        version=int(version),
    )


def ceiling_iou_for(ceiling: Ceiling, class_groups) -> np.ndarray:
    """The human IoU of each group of the reference's unified class ids: ``sum TP / (sum TP +
    sum FP + sum FN)`` over the group's classes (version 2 files).

    A group is an evaluated class of another vocabulary that merges several classes of the
    reference. The sums are an approximation for merged groups: B's pixels of one class of the
    group on A's pixels of another stay counted as errors (an FP of one, an FN of the other)
    although the merged class would score them right, so the merged IoU is a lower bound.

    Parameters
    ----------
    ceiling : Ceiling
        From :func:`read_ceiling`.
    class_groups : list of list of int
        Unified class ids of the reference, one list per group.

    Returns
    -------
    ndarray (len(class_groups),) float64
        The IoU of each group (a fraction); NaN where the ceiling does not cover it: none of its
        ids is among the file's classes, or none has pixels in either annotation; for a version
        1 file (no counts), a group of one class gets that class's ``iou`` and a merged group NaN.
        Ids the file lacks contribute nothing to a group that has others.

    >>> import pandas as pd
    >>> classes = pd.DataFrame({"class_id": [3, 5, 7], "iou": [0.5, 0.25, np.nan],
    ...                         "tp": [2, 1, 0], "fp": [1, 1, 0], "fn": [1, 2, 0]})
    >>> c = Ceiling(None, None, 0, {}, {}, {}, "", classes, {})
    >>> ceiling_iou_for(c, [[3], [3, 5], [7], [9], []]).tolist()
    [0.5, 0.375, nan, nan, nan]
    """
    cls = ceiling.classes
    index = {int(c): i for i, c in enumerate(cls["class_id"].to_numpy())}
    counted = all(c in cls.columns for c in _COUNTS) and not cls[list(_COUNTS)].isna().to_numpy().any()
    if counted:
        tp, fp, fn = (cls[c].to_numpy(np.float64) for c in _COUNTS)
    iou = cls["iou"].to_numpy(np.float64)
    out = np.full(len(class_groups), np.nan)
    for g, group in enumerate(class_groups):
        ids = list(dict.fromkeys(int(c) for c in group))
        rows = [index[c] for c in ids if c in index]
        if not rows:
            continue
        if counted:
            t = tp[rows].sum()
            union = t + fp[rows].sum() + fn[rows].sum()
            if union > 0:
                out[g] = t / union
        elif len(ids) == 1:
            out[g] = iou[rows[0]]
    return out

"""The ceiling file: B's pixel accuracy and mIoU against A, overall and per frequency bucket of
A, as JSON (``docs/consistency.md``, "The ceiling file")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from segdata.errors import InputError

from .figures import _clean

CEILING_FORMAT = "segdata-ceiling"
CEILING_VERSION = 1


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
        ``class_id``, ``name``, ``bucket``, ``pixels`` (reference pixels), ``iou`` (NaN when absent).
    ci : dict
        ``level``, ``bootstrap``, ``seed``, ``pixel_accuracy`` and ``miou`` as ``[low, high]``.
    path : str
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
    if data.get("format_version") != CEILING_VERSION:
        raise InputError(
            path, f"ceiling format version {data.get('format_version')}, this segdata reads {CEILING_VERSION}"
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
    classes = pd.DataFrame(data["classes"], columns=["class_id", "name", "bucket", "pixels", "iou"])
    classes["iou"] = pd.to_numeric(classes["iou"], errors="coerce").astype(np.float64)
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
    )

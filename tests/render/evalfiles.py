"""Hand-made ``segdata eval --json`` reports in the schema of the eval contract (issue 12), for the
report's tests: built from a dataset's long tail with known IoUs, so a test can find them again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segdata.analyses import longtail as lt


def make_eval(ds, *, strength: float, seed: int = 0, ceiling: float = 0.8, name: str = "uniform") -> dict:
    """An evaluation report of ``ds``: every class of the long tail with a training image gets an
    IoU rising with its training images (``strength`` scales it), NaN-free; buckets are the means
    of their classes; the ceiling of each bucket is ``ceiling``."""
    freq = lt.class_frequencies(ds)
    freq = freq.assign(bucket=lt.assign_buckets(freq))
    rng = np.random.default_rng(seed)
    per_class = []
    for k, r in enumerate(freq.itertuples(index=False)):
        present = r.pixels > 0
        iou = float(np.clip(strength * np.log1p(r.train_images) / 5 + rng.normal(0, 0.03), 0, 1)) if present else None
        per_class.append(
            {
                "class_id": int(r.class_id),
                "class_ids": [int(r.class_id)],
                "train_id": k,
                "name": r.name,
                "iou": iou,
                "accuracy": None if iou is None else min(1.0, iou + 0.1),
                "present": bool(present),
                "bucket": r.bucket,
                "train_images": int(r.train_images),
                "train_pixel_share": float(r.pixel_share),
                "ceiling_iou": None if iou is None else ceiling,
            }
        )
    buckets = []
    for bucket in ("rare", "common", "frequent", "absent"):
        values = [c["iou"] for c in per_class if c["bucket"] == bucket and c["iou"] is not None]
        members = [c for c in per_class if c["bucket"] == bucket]
        if not members:
            continue
        miou = float(np.mean(values)) if values else None
        buckets.append(
            {
                "name": bucket,
                "classes": len(members),
                "classes_present": len(values),
                "miou": miou,
                "ci": None if miou is None else [miou - 0.05, miou + 0.05],
                "ceiling_miou": ceiling,
                "ceiling_classes": len(values),
                "ceiling_ci": [ceiling - 0.02, ceiling + 0.02],
                "difference": None if miou is None else miou - ceiling,
                "difference_ci": None if miou is None else [miou - ceiling - 0.06, miou - ceiling + 0.06],
            }
        )
    scored = [c["iou"] for c in per_class if c["iou"] is not None]
    miou = float(np.mean(scored))
    return {
        "pixel_accuracy": 0.9,
        "mean_accuracy": 0.6,
        "miou": miou,
        "fw_iou": 0.85,
        "ci": {
            "level": 0.95,
            "method": "bca",
            "bootstrap": 1000,
            "seed": 0,
            "miou": [miou - 0.03, miou + 0.03],
            "pixel_accuracy": [0.88, 0.92],
            "mean_accuracy": [0.55, 0.65],
        },
        "per_class": per_class,
        "buckets": buckets,
        "ceiling": {"miou": ceiling, "pixel_accuracy": 0.9, "path": "ceiling.json", "classes_covered": len(scored)},
        "size_recall": {
            "small": {"instances": 120, "recall": 0.2 * strength},
            "medium": {"instances": 80, "recall": 0.5 * strength},
            "large": {"instances": 40, "recall": 0.8 * strength},
        },
        "convention": {"name": "segdata", "miou": miou},
        "settings": {
            "dataset": str(ds.path),
            "split": "val",
            "images": len(ds),
            "pred": f"preds/{name}",
            "pred_ids": "train",
            "vocab": None,
            "ignore": "none",
            "buckets": "lvis",
            "freq_split": "train",
            "bootstrap": 1000,
            "seed": 0,
            "convention": "segdata",
            "skipped": [],
        },
    }


def write_eval(path: Path, ds, **options) -> Path:
    path = Path(path)
    path.write_text(json.dumps(make_eval(ds, **options)), encoding="utf-8")
    return path

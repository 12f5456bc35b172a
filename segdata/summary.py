"""A short, machine-readable summary of a unified dataset, computed from its tables alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .format import Dataset


def summarize(path: str | Path | Dataset, top: int = 10) -> dict:
    """Images per split, classes, segments and instances per layer, the ``top`` classes by pixels
    (layer ``objects``), and the problems recorded at conversion. Decodes no mask."""
    ds = path if isinstance(path, Dataset) else Dataset(path)
    images, segments, classes = ds.images, ds.segments, ds.classes
    total_pixels = int((images["width"].astype(np.int64) * images["height"]).sum())
    layers = []
    for layer in ds.layers:
        rows = segments[segments["layer"] == layer]
        layers.append(
            {
                "name": layer,
                "segments": int(len(rows)),
                "instances": int(rows["is_instance"].sum()),
                "labelled_fraction": float(rows["area"].sum() / total_pixels) if total_pixels else 0.0,
            }
        )
    objects = segments[segments["layer"] == (ds.layers[0] if ds.layers else "objects")]
    per_class = objects.groupby("class_id").agg(pixels=("area", "sum"), images=("image_id", "nunique"))
    per_class = per_class.sort_values(["pixels", "images"], ascending=False)
    labelled = int(per_class["pixels"].sum())
    names = dict(zip(classes["class_id"], classes["name"]))
    top_classes = [
        {
            "class_id": int(cid),
            "name": names.get(cid, "?"),
            "pixels": int(r.pixels),
            "pixel_share": float(r.pixels / labelled) if labelled else 0.0,
            "images": int(r.images),
        }
        for cid, r in per_class.head(top).iterrows()
    ]
    return {
        "name": ds.name,
        "path": str(ds.path),
        "source": ds.manifest.get("source", {}),
        "images": int(len(images)),
        "classes": int(len(classes)),
        "classes_present": int(len(per_class)),
        "segments": int(len(segments)),
        "splits": {k: int(v) for k, v in images["split"].value_counts().sort_index().items()},
        "pixels": total_pixels,
        "layers": layers,
        "top_classes": top_classes,
        "problems": ds.manifest.get("problems", []),
    }

"""A short, machine-readable summary of a unified dataset, computed from its tables alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .format import Dataset


def summarize(path: str | Path | Dataset, top: int = 10) -> dict:
    """Images per split, classes, segments and instances per layer, the ``top`` classes by pixels
    (layer ``objects``), and the problems recorded at conversion. Decodes no mask.

    Pixels are counted as ``segdata analyze longtail`` counts them
    (:func:`segdata.analyses.longtail.pixel_accounting`): per layer, ``labelled_fraction`` is the
    share of all pixels held by classes not flagged ignore, ``ignore_fraction`` by ignore classes
    (Cityscapes ignoreInEval, VOC void), ``unlabeled_fraction`` by no segment (the three add up to
    1). A top class's ``pixel_share`` is its fraction of the labelled pixels; ignore classes are not
    listed there."""
    from .analyses.longtail import pixel_accounting

    ds = path if isinstance(path, Dataset) else Dataset(path)
    images, segments, classes = ds.images, ds.segments, ds.classes
    total_pixels = int((images["width"].astype(np.int64) * images["height"]).sum())
    layers = []
    for layer in ds.layers:
        rows = segments[segments["layer"] == layer]
        acc = pixel_accounting(ds, layer=layer)
        layers.append(
            {
                "name": layer,
                "segments": int(len(rows)),
                "instances": int(rows["is_instance"].sum()),
                "labelled_fraction": float(acc["labelled_fraction"]),
                "ignore_fraction": float(acc["ignore_fraction"]),
                "unlabeled_fraction": float(acc["unlabeled_fraction"]),
            }
        )
    objects = segments[segments["layer"] == (ds.layers[0] if ds.layers else "objects")]
    per_class = objects.groupby("class_id").agg(pixels=("area", "sum"), images=("image_id", "nunique"))
    per_class = per_class.sort_values(["pixels", "images"], ascending=False)
    ignore_ids = set(classes.loc[classes["ignore"].fillna(False).astype(bool), "class_id"])
    listed = per_class[~per_class.index.isin(ignore_ids)]
    labelled = int(listed["pixels"].sum())
    names = dict(zip(classes["class_id"], classes["name"]))
    top_classes = [
        {
            "class_id": int(cid),
            "name": names.get(cid, "?"),
            "pixels": int(r.pixels),
            "pixel_share": float(r.pixels / labelled) if labelled else 0.0,
            "images": int(r.images),
        }
        for cid, r in listed.head(top).iterrows()
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

"""Object sizes: how small a dataset's objects are, per class, against what a network resolves.

Sizes are areas in pixels (the number of pixels of a segment in its mask) and fractions of the
image's area. Size buckets follow COCO: ``small`` area < 32², ``medium`` 32² <= area < 96²,
``large`` area >= 96² (an area of exactly 32² = 1024 is medium). A network of output stride ``s``
assigns one prediction per ``s x s`` cell; an object of area below ``s²`` fits inside one cell and
is reported as below that stride.

Instances come from the segment table (``is_instance`` rows; objects the source lists with no
visible pixel, area 0, are counted apart as ``zero_area`` and left out of the size figures). For a
layer without instances (e.g. SceneParsing class maps), the connected components of each class
region stand in (8-connectivity), computed from the masks in the process pool; the result says
``"unit": "connected components"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from segdata.errors import InputError
from segdata.format import Dataset, mask_relpath
from segdata.maskio import read_segment_map
from segdata.runner import parallel_map

from .plotting import FigureWriter

#: COCO's area thresholds (pixels): small < 32**2 <= medium < 96**2 <= large
SMALL_MAX = 32**2
MEDIUM_MAX = 96**2
BUCKETS = ("small", "medium", "large")
STRIDES = (8, 16, 32)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def size_bucket(area) -> np.ndarray:
    """COCO size bucket of each area (pixels): ``small`` < 1024 <= ``medium`` < 9216 <= ``large``.

    >>> size_bucket([1023, 1024, 9215, 9216]).tolist()
    ['small', 'medium', 'medium', 'large']
    """
    area = np.asarray(area)
    return np.where(area < SMALL_MAX, "small", np.where(area < MEDIUM_MAX, "medium", "large")).astype(object)


def _components(root: str, item) -> tuple[np.ndarray, np.ndarray]:
    """(class ids, areas) of the connected components of one image's class regions.

    ``item`` is ``(mask path relative to root, lut)``: each image travels with its own lookup table
    (``lut[segment_id] = class_id``), so a task's size does not grow with the dataset.
    """
    from skimage.measure import label

    mask_rel, lut = item
    path = Path(root) / mask_rel
    segmap = read_segment_map(path)
    if segmap.size and int(segmap.max()) >= len(lut):
        raise InputError(
            path,
            f"segment id {int(segmap.max())} has no row in segments.parquet",
            "run `segdata validate` on the dataset",
        )
    semantic = lut[segmap]
    comps = label(semantic, background=0, connectivity=2)
    flat = comps.ravel()
    areas = np.bincount(flat)[1:]
    # a component has one class: the mean class id over its pixels is that id, exactly
    classes = np.rint(np.bincount(flat, weights=semantic.ravel())[1:] / np.maximum(areas, 1))
    return classes.astype(np.int64), areas.astype(np.int64)


def object_sizes(
    ds: Dataset,
    split: str | None = None,
    layer: str = "objects",
    workers: int | None = None,
    *,
    executor=None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, str]:
    """One row per object: ``image_id``, ``class_id``, ``area`` (pixels), ``image_area``,
    ``fraction`` (of the image), ``bucket``.

    Returns the table and its unit: ``"instances"`` when the layer has instances, else
    ``"connected components"`` (decoded from the masks, in the process pool or on ``executor``,
    a Dask ``Client.get_executor()``). Rows of area 0 (objects without a visible pixel) are kept
    with bucket ``zero_area``. A split or layer the dataset lacks raises
    :class:`segdata.errors.SelectionError`.
    """
    images = ds.select_images(split, layer)
    seg = ds.read_segments(["image_id", "layer", "segment_id", "class_id", "is_instance", "area"])
    seg = seg[(seg["layer"] == layer) & seg["image_id"].isin(images["image_id"])]
    image_area = dict(zip(images["image_id"], images["width"].astype(np.int64) * images["height"].astype(np.int64)))
    if seg["is_instance"].any():
        unit = "instances"
        objects = seg[seg["is_instance"]][["image_id", "class_id", "area"]].reset_index(drop=True)
    else:
        unit = "connected components"
        ids = sorted(set(seg["image_id"]))  # images with at least one segment in the layer
        luts = ds.lookup_tables(layer, ids)
        split_of = dict(zip(images["image_id"], images["split"]))
        items = [(mask_relpath(layer, split_of[i], i), luts[i]) for i in ids]
        results = parallel_map(
            partial(_components, str(ds.path)), items, workers=workers, executor=executor, batch_size=8, ordered=True
        )
        rows = []
        for done, (image_id, (classes, areas)) in enumerate(zip(ids, results), 1):
            rows.append(pd.DataFrame({"image_id": image_id, "class_id": classes, "area": areas}))
            if progress is not None:
                progress(done, len(ids))
        objects = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["image_id", "class_id", "area"])
    objects["image_area"] = objects["image_id"].map(image_area).astype(np.int64)
    objects["fraction"] = objects["area"] / objects["image_area"]
    objects["bucket"] = size_bucket(objects["area"].to_numpy())
    objects.loc[objects["area"] == 0, "bucket"] = "zero_area"
    return objects, unit


def size_summary(objects: pd.DataFrame, classes: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Overall bucket counts, stride shares, and the per-class table.

    Returns
    -------
    overall : dict
        ``size_buckets`` (small/medium/large counts), ``zero_area``, ``objects``,
        ``below_stride`` ({stride: fraction of objects with area < stride²}),
        ``area_quantiles`` and ``fraction_quantiles``.
    per_class : DataFrame
        ``class_id``, ``name``, ``instances``, ``small``, ``medium``, ``large``,
        ``median_area`` and the area quantiles ``q10`` .. ``q90`` (pixels), ``median_fraction``,
        sorted by instances (descending).
    """
    visible = objects[objects["area"] > 0]
    counts = visible["bucket"].value_counts()
    overall = {
        "objects": int(len(visible)),
        "zero_area": int((objects["area"] == 0).sum()),
        "size_buckets": {b: int(counts.get(b, 0)) for b in BUCKETS},
        "below_stride": {str(s): float((visible["area"] < s * s).mean()) if len(visible) else 0.0 for s in STRIDES},
        "area_quantiles": {
            f"q{round(q * 100)}": float(visible["area"].quantile(q)) if len(visible) else 0.0 for q in QUANTILES
        },
        "fraction_quantiles": {
            f"q{round(q * 100)}": float(visible["fraction"].quantile(q)) if len(visible) else 0.0 for q in QUANTILES
        },
    }
    names = dict(zip(classes["class_id"], classes["name"]))
    if len(visible):
        grouped = visible.groupby("class_id")
        per_class = grouped["bucket"].value_counts().unstack(fill_value=0).reindex(columns=list(BUCKETS), fill_value=0)
        per_class["instances"] = grouped.size()
        quant = grouped["area"].quantile(list(QUANTILES)).unstack()
        quant.columns = [f"q{round(q * 100)}" for q in QUANTILES]
        per_class = per_class.join(quant)
        per_class["median_area"] = per_class["q50"]
        per_class["median_fraction"] = grouped["fraction"].median()
        for s in STRIDES:
            per_class[f"below_stride_{s}"] = grouped["area"].apply(lambda a, s=s: float((a < s * s).mean()))
        per_class = per_class.reset_index()
    else:
        per_class = pd.DataFrame(columns=["class_id", "instances", *BUCKETS, "median_area"])
    per_class.insert(1, "name", per_class["class_id"].map(names))
    per_class = per_class.sort_values(["instances", "class_id"], ascending=[False, True]).reset_index(drop=True)
    return overall, per_class


@dataclass(frozen=True)
class SizeResult:
    """What :func:`analyze` measured; :meth:`to_dict` is the JSON report; the terminal table and
    the plots read these fields and recompute nothing.

    Attributes
    ----------
    dataset, split, layer : str
    unit : str
        ``"instances"`` or ``"connected components"``.
    objects : DataFrame
        :func:`object_sizes`, one row per object.
    overall : dict
        :func:`size_summary`'s overall figures.
    per_class : DataFrame
        :func:`size_summary`'s per-class table.
    """

    dataset: str
    split: str | None
    layer: str
    unit: str
    objects: pd.DataFrame
    overall: dict
    per_class: pd.DataFrame

    def _repr_html_(self) -> str:
        from segdata.render.html import sizes_card

        return sizes_card(self)

    def to_dict(self) -> dict:
        """The JSON-ready report (what ``segdata analyze small-objects --json`` prints)."""
        classes = []
        for r in self.per_class.itertuples(index=False):
            classes.append(
                {
                    "class_id": int(r.class_id),
                    "name": r.name,
                    "instances": int(r.instances),
                    "small": int(r.small),
                    "medium": int(r.medium),
                    "large": int(r.large),
                    "median_area": float(r.median_area),
                    "median_fraction": float(r.median_fraction),
                    "area_quantiles": {
                        f"q{round(q * 100)}": float(getattr(r, f"q{round(q * 100)}")) for q in QUANTILES
                    },
                    "below_stride": {str(s): float(getattr(r, f"below_stride_{s}")) for s in STRIDES},
                }
            )
        return {
            "dataset": self.dataset,
            "split": self.split,
            "layer": self.layer,
            "unit": self.unit,
            **self.overall,
            "classes": classes,
        }


def analyze(
    ds: Dataset,
    split: str | None = None,
    layer: str = "objects",
    workers: int | None = None,
    *,
    executor=None,
    progress: Callable[[int, int], None] | None = None,
) -> SizeResult:
    """Object sizes of one layer (and split): :func:`object_sizes` and :func:`size_summary`."""
    objects, unit = object_sizes(ds, split=split, layer=layer, workers=workers, executor=executor, progress=progress)
    overall, per_class = size_summary(objects, ds.classes)
    return SizeResult(ds.name, split, layer, unit, objects, overall, per_class)


def small_objects_report(
    ds: Dataset, split: str | None = None, layer: str = "objects", workers: int | None = None
) -> dict:
    """Everything ``segdata analyze small-objects --json`` prints, as one JSON-ready dict
    (``analyze(...).to_dict()``)."""
    return analyze(ds, split=split, layer=layer, workers=workers).to_dict()


def size_histogram_figure(objects: pd.DataFrame, title: str = ""):
    """Log-scale histogram of object areas (pixels) with the stride cells (8², 16², 32²) and the
    COCO thresholds marked (a :class:`matplotlib.figure.Figure`)."""
    areas = objects.loc[objects["area"] > 0, "area"].to_numpy()
    fig, ax = FigureWriter.figure((6.5, 4.5))
    if len(areas):
        bins = np.logspace(0, np.log10(max(areas.max(), 10)) + 0.05, 50)
        ax.hist(areas, bins=bins, color="tab:blue", alpha=0.8)
        ax.set_xscale("log")
    for s, color in zip(STRIDES, ("tab:green", "tab:orange", "tab:red")):
        ax.axvline(s * s, color=color, ls=":", lw=1, label=f"stride {s}: {s}² px")
    ax.axvline(SMALL_MAX, color="k", ls="--", lw=1, label="COCO small < 32²")
    ax.axvline(MEDIUM_MAX, color="grey", ls="--", lw=1, label="COCO medium < 96²")
    ax.set_xlabel("object area (pixels)")
    ax.set_ylabel("objects")
    ax.set_title(f"object sizes {title}".strip())
    ax.legend(fontsize=7)
    return fig


def median_size_figure(per_class: pd.DataFrame, title: str = ""):
    """Per class, the median object area (pixels) against the number of objects, log-log."""
    fig, ax = FigureWriter.figure((6.5, 4.5))
    if len(per_class):
        ax.loglog(per_class["instances"], per_class["median_area"], ".", ms=4, color="tab:purple")
    ax.axhline(SMALL_MAX, color="k", ls="--", lw=1)
    ax.set_xlabel("instances of the class")
    ax.set_ylabel("median area (pixels)")
    ax.set_title(f"median size against frequency {title}".strip())
    return fig


def plot_sizes(objects: pd.DataFrame, per_class: pd.DataFrame, directory: str | Path, title: str = "") -> list[Path]:
    """Log-scale size histogram with the COCO and stride thresholds, and per-class median size
    against class frequency (instances); PNG and SVG. Returns the files written."""
    writer = FigureWriter(directory)
    writer.save(size_histogram_figure(objects, title), "size_histogram")
    writer.save(median_size_figure(per_class, title), "median_size_vs_frequency")
    return writer.written

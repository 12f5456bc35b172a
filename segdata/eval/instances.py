"""Per-instance figures of an evaluation: size recall (any dataset with instances) and
Cityscapes' instance-level IoU (iIoU).

Both read the segment table (areas, instance flags) and the pixels of each ground-truth segment
predicted as its own class (:attr:`segdata.eval.counting.Counts.segment_hits`); neither decodes a
mask again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..format import Dataset
from .counting import Counts
from .space import EvalSpace

#: COCO's object sizes (pixels): small < 32², medium < 96², large above
SIZE_EDGES = (32**2, 96**2)
SIZE_NAMES = ("small", "medium", "large")
#: an instance is found when at least this share of its pixels is predicted as its class
FOUND_SHARE = 0.5
#: cityscapesScripts' ``args.avgClassSize`` (evalPixelLevelSemanticLabeling.py, v2.3.0): the mean
#: pixel size of each instance class's instances on the training set, the weight of its iIoU
CITYSCAPES_AVG_CLASS_SIZE = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}
#: cityscapesScripts counts instance ids strictly above this value (``instanceNp > 1000``)
CITYSCAPES_INSTANCE_MIN = 1000


def instance_table(ds: Dataset, space: EvalSpace, counts: Counts, layer: str = "objects") -> pd.DataFrame:
    """The evaluated instances of the counted images: one row per segment with ``is_instance``,
    not ``iscrowd``, of an evaluated class and at least one pixel, with its eval ``index``,
    ``area`` (pixels), ``hits`` (pixels predicted as its class), ``name`` (its unified class's
    name) and ``source_instance``."""
    cols = ["image_id", "segment_id", "class_id", "is_instance", "iscrowd", "area", "source_instance"]
    table = ds.segment_table(cols, layer=layer)
    table = table.filter(pc.is_in(table["image_id"], value_set=pa.array(counts.image_ids, type=pa.string())))
    seg = table.to_pandas()
    if seg.empty:
        return seg.assign(index=[], hits=[], name=[])
    lut = space.gt_lut
    cid = seg["class_id"].to_numpy(np.int64)
    seg["index"] = np.where(cid < len(lut), lut[np.minimum(cid, len(lut) - 1)], -1)
    keep = seg["is_instance"].astype(bool) & ~seg["iscrowd"].fillna(False).astype(bool)
    keep &= (seg["index"] >= 0) & (seg["area"] > 0)
    seg = seg[keep].reset_index(drop=True)
    hits = np.zeros(len(seg), dtype=np.int64)
    segment_ids = seg["segment_id"].to_numpy(np.int64)
    for image_id, rows in seg.groupby("image_id", sort=False).indices.items():
        h = counts.segment_hits.get(image_id)
        if h is None:
            continue
        sid = segment_ids[rows]
        inside = sid < len(h)
        hits[rows[inside]] = h[sid[inside]]
    seg["hits"] = hits
    names = dict(zip(ds.classes["class_id"].astype(int), ds.classes["name"].astype(str)))
    seg["name"] = [names.get(int(c), "") for c in seg["class_id"]]
    return seg


def size_recall(instances: pd.DataFrame) -> dict | None:
    """Per COCO size bucket: ``instances`` and ``recall``, the share of them with at least half
    their pixels predicted as their class (null without instances). None when the evaluated
    classes have no instance at all (a dataset of class regions, such as SceneParsing)."""
    if instances.empty:
        return None
    area = instances["area"].to_numpy(np.int64)
    found = instances["hits"].to_numpy(np.int64) >= FOUND_SHARE * area
    bucket = np.searchsorted(np.asarray(SIZE_EDGES), area, side="right")
    out = {}
    for i, name in enumerate(SIZE_NAMES):
        m = bucket == i
        n = int(m.sum())
        out[name] = {"instances": n, "recall": float(found[m].mean()) if n else None}
    return out


def cityscapes_iiou(instances: pd.DataFrame, matrix: np.ndarray, space: EvalSpace) -> dict[int, float]:
    """Cityscapes' iIoU per evaluated instance class, as ``evalPixelLevelSemanticLabeling`` defines
    it: each instance's true positives and false negatives weighted by ``avgClassSize / size``,
    false positives unweighted from the pixel-level confusion (predictions of the class on any
    evaluated ground truth that is not the class); NaN when the denominator is 0.

    Returns ``{eval index: iIoU}`` for the evaluated classes named in
    :data:`CITYSCAPES_AVG_CLASS_SIZE` (those with instances)."""
    k = space.num_classes
    weighted_tp = np.zeros(k)
    weighted_fn = np.zeros(k)
    inst = instances[instances["source_instance"].fillna(0).astype(np.int64) > CITYSCAPES_INSTANCE_MIN]
    for row in inst.itertuples(index=False):
        size = CITYSCAPES_AVG_CLASS_SIZE.get(row.name)
        if size is None:
            continue
        weight = size / float(row.area)
        weighted_tp[row.index] += float(row.hits) * weight
        weighted_fn[row.index] += float(row.area - row.hits) * weight
    fp = matrix[:, :k].sum(axis=0) - np.diagonal(matrix[:, :k])
    out = {}
    for i, name in enumerate(space.names):
        if name not in CITYSCAPES_AVG_CLASS_SIZE:
            continue
        denom = weighted_tp[i] + fp[i] + weighted_fn[i]
        out[i] = float(weighted_tp[i] / denom) if denom > 0 else float("nan")
    return out

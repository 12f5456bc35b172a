"""Comparing annotations: which annotations and images, the per-image work, and the reduce of
the per-image counts into the figures of :class:`ConsistencyResult`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from segdata.errors import FormatError, InputError
from segdata.format import Dataset, mask_relpath
from segdata.maskio import read_segment_map
from segdata.runner import default_workers, parallel_map

from .. import longtail
from .ceiling import CEILING_FORMAT, CEILING_VERSION
from .classes import ClassSpace, build_class_space, read_class_map
from .counting import CATEGORIES, DEFAULT_BOUNDARY_PX, ImageCounts, _class_pairs, count_image, split_regions
from .figures import _SCALARS, _clean, _figures, _float, _ratio, _sums, _weighted, bootstrap_intervals, pair_figures


@dataclass(frozen=True)
class Annotation:
    """One annotation: a layer of a dataset."""

    dataset: Dataset
    layer: str

    def describe(self) -> dict:
        return {"dataset": self.dataset.name, "path": str(self.dataset.path), "layer": self.layer}


def _as_dataset(d) -> Dataset:
    return d if isinstance(d, Dataset) else Dataset(d)


def _top_layers(ds: Dataset) -> list[str]:
    return [layer["name"] for layer in ds.manifest.get("layers", []) if not layer.get("parent")]


def resolve_annotations(a, b=None, layers: Sequence[str] | str | None = None) -> list[Annotation]:
    """The annotations to compare, from one dataset and its layers or two datasets.

    One dataset: ``layers`` names two or more of its layers (default: all its top-level layers,
    e.g. ``objects`` and ``reannotation``). Two datasets: ``layers`` is ``(layer of A, layer of
    B)`` or one layer for both (default ``objects``).
    """
    a = _as_dataset(a)
    if isinstance(layers, str):
        layers = [x.strip() for x in layers.split(",") if x.strip()]
    if b is None:
        names = list(layers) if layers else _top_layers(a)
        if len(names) < 2:
            raise ValueError(
                f"{a.path} has the top-level layer(s) {names or a.layers}; comparing needs two: "
                "give --layers L1,L2 or a second dataset"
            )
        out = [Annotation(a, n) for n in names]
    else:
        b = _as_dataset(b)
        names = list(layers) if layers else ["objects"]
        if len(names) == 1:
            names = names * 2
        if len(names) != 2:
            raise ValueError(f"with two datasets --layers gives one layer each (A,B), got {names}")
        out = [Annotation(a, names[0]), Annotation(b, names[1])]
    for ann in out:
        ann.dataset.check_layer(ann.layer)  # SelectionError (a ValueError) listing the layers
    # an annotation may be listed twice (a dataset against itself: the first sanity check)
    return out


def match_images(annotations: Sequence[Annotation], split: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Images every annotation has (in A's order), and those left out.

    Returns
    -------
    images : DataFrame
        A's image rows (``image_id``, ``split``, ``width``, ``height``, ...) of the compared images.
    unmatched : dict
        ``only_in_a``, ``only_in_b`` (image ids found in one annotation only), ``size_mismatch``
        (``{image_id, a, b}`` with the sizes as ``WxH``); with three or more annotations,
        ``incomplete`` (ids some annotation lacks) instead of the first two.
    """
    tables = [ann.dataset.select_images(split, ann.layer) for ann in annotations]
    ids = [set(t["image_id"].tolist()) for t in tables]
    common = set.intersection(*ids)
    first = tables[0]
    unmatched: dict = {}
    if len(annotations) == 2:
        unmatched["only_in_a"] = sorted(ids[0] - ids[1])
        unmatched["only_in_b"] = sorted(ids[1] - ids[0])
    else:
        unmatched["incomplete"] = sorted(set.union(*ids) - common)
    sizes = [dict(zip(t["image_id"].tolist(), zip(t["width"].tolist(), t["height"].tolist()))) for t in tables]
    mismatch = []
    for image_id in sorted(common):
        s = [sz[image_id] for sz in sizes]
        if len(set(s)) > 1:
            mismatch.append({"image_id": image_id, **{f"{'abcdefghij'[k]}": f"{x[0]}x{x[1]}" for k, x in enumerate(s)}})
    unmatched["size_mismatch"] = mismatch
    bad = {m["image_id"] for m in mismatch}
    wanted = common - bad
    keep = np.fromiter((i in wanted for i in first["image_id"].tolist()), dtype=bool, count=len(first))
    return first[keep].reset_index(drop=True), unmatched


def _count_task(boundary_px: int | None, unmapped: int | None, item) -> ImageCounts:
    """Worker: decode the masks of one image and count them (module level: picklable).

    ``item`` is ``(image_id, mask paths, lookup tables[, whole flags])``; with whole flags (per
    annotation, None or the ``is_instance`` flag per segment id), the class regions of that
    annotation are split into their connected components first (:func:`split_regions`)."""
    image_id, paths, luts = item[:3]
    whole = item[3] if len(item) > 3 else (None,) * len(paths)
    maps = [read_segment_map(p, view=True) for p in paths]
    for p, m in zip(paths[1:], maps[1:]):
        if m.shape != maps[0].shape:
            raise InputError(
                p, f"mask is {m.shape[1]}x{m.shape[0]}, the first annotation's is {maps[0].shape[1]}x{maps[0].shape[0]}"
            )
    if any(w is not None for w in whole):
        maps, luts = zip(*(split_regions(m, lut, w) for m, lut, w in zip(maps, luts, whole)))
    return count_image(maps, luts, boundary_px=boundary_px, unmapped=unmapped, image_id=image_id, where=paths)


def _whole_tables(ann: Annotation, ids: Sequence[str]) -> dict | None:
    """Per image, the ``is_instance`` flag of each segment id of ``ann`` (None when every segment
    of the layer is an instance: nothing to split, nothing read but one column). A missing flag
    counts as an instance."""
    flags = ann.dataset.segment_table(["is_instance"], layer=ann.layer)["is_instance"]
    if pc.all(pc.fill_null(flags, True)).as_py() is not False:
        return None
    table = ann.dataset.segment_table(["image_id", "segment_id", "layer", "is_instance"], layer=ann.layer)
    table = table.set_column(3, "is_instance", pc.fill_null(table["is_instance"], True))
    return ann.dataset.lookup_tables(ann.layer, ids, column="is_instance", dtype=bool, table=table)


@dataclass
class ConsistencyResult:
    """Everything :func:`compare` measured; :meth:`report` gives the JSON-ready dict.

    Attributes
    ----------
    annotations : list of Annotation
    space : ClassSpace
    per_image : DataFrame
        One row per compared image: ``image_id``, ``pixels``, ``compared``, ``agree``,
        ``evaluable`` and ``agree_evaluable`` (labelled non-ignore in both), ``band_compared``,
        ``band_agree``, ``segmentation_quality``, ``naming``, ``quantity``, ``unmapped``.
    pairs : DataFrame
        Dataset-level class pairs: ``a`` and ``b`` (class indices), ``pixels``, ``band_pixels``.
    figures, per_class, boundary, breakdown, ci, ceiling, pairwise, consensus, unmatched,
    class_map, settings : dict or DataFrame
        The sections of the report (see ``docs/consistency.md``).
    """

    annotations: list
    space: ClassSpace
    per_image: pd.DataFrame
    pairs: pd.DataFrame
    figures: dict
    per_class: pd.DataFrame
    boundary: dict
    breakdown: dict
    ci: dict
    ceiling: dict
    unmatched: dict
    settings: dict
    class_map: dict = field(default_factory=dict)
    pairwise: dict | None = None
    consensus: list | None = None
    luts: dict = field(default_factory=dict, repr=False)
    whole: dict = field(default_factory=dict, repr=False)

    def report(self, per_image: bool = True) -> dict:
        """The JSON-ready report (NaN written as null)."""
        return consistency_report(self, per_image=per_image)

    def _repr_html_(self) -> str:
        from segdata.render.html import consistency_card

        return consistency_card(self)


def compare(
    a,
    b=None,
    *,
    layers: Sequence[str] | str | None = None,
    class_map: dict[int, int | None] | str | Path | None = None,
    split: str | None = None,
    boundary_px: int | None = DEFAULT_BOUNDARY_PX,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    bucket_rule: longtail.BucketRule = longtail.LVIS,
    unlabeled: Sequence[int] | None = None,
    workers: int | None = None,
    executor=None,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> ConsistencyResult:
    """Compare two or more annotations of the same images.

    Parameters
    ----------
    a, b : Dataset or path
        One dataset (compare its ``layers``) or two (matched by image id; A is the reference).
    layers : sequence of str or "L1,L2,..."
        See :func:`resolve_annotations`.
    class_map : dict or path, optional
        B's vocabulary onto A's (see :func:`read_class_map`); only with two datasets.
    split : str, optional
        Only images of this split (in each dataset).
    boundary_px : int or None
        Half-width of the boundary band in pixels (None: no band figures).
    bootstrap : int
        Bootstrap resamples of the images for the confidence intervals (0: none).
    confidence : float
        Level of the BCa intervals (two-sided).
    seed : int
        Seed of the resampling.
    bucket_rule : longtail.BucketRule
        Frequency buckets of A's classes for the ceiling (default LVIS rare/common/frequent).
    unlabeled : sequence of int, optional
        Class ids that mean "no annotation" (count as class 0); default: classes named
        ``unlabeled`` (see :func:`build_class_space`).
    workers : int, optional
        Processes (default all cores; 1 runs inline), or the number of tasks to keep in flight per
        worker slot when ``executor`` is given.
    executor : concurrent.futures.Executor, optional
        Run the per-image work there instead (a Dask ``Client.get_executor()``); results are the
        same.
    progress : callable, optional
        ``progress(done, total)`` after each image.

    Returns
    -------
    ConsistencyResult
    """
    anns = resolve_annotations(a, b, layers)
    two_datasets = len(anns) == 2 and anns[1].dataset is not anns[0].dataset
    if class_map is not None and not two_datasets:
        raise ValueError("a class map maps B's vocabulary onto A's: it needs two datasets")
    if isinstance(class_map, (str, Path)):
        map_file = str(class_map)
        class_map = read_class_map(class_map)
    else:
        map_file = None
    if boundary_px is not None and boundary_px < 0:
        raise ValueError(f"boundary_px must be >= 0, got {boundary_px}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    space, b_ids, b_index, map_info = build_class_space(
        anns[0].dataset, anns[1].dataset if two_datasets else None, class_map, unlabeled
    )
    if class_map is not None:
        map_info = {"file": map_file, **map_info}
    images, unmatched = match_images(anns, split)
    if len(images) == 0:
        raise ValueError(
            "no image is annotated in every annotation compared; nothing to compare "
            f"(only in A: {len(unmatched.get('only_in_a', []))}, only in B: {len(unmatched.get('only_in_b', []))})"
        )
    ids = images["image_id"].tolist()

    def b_lookup(class_ids):
        pos = np.searchsorted(b_ids, class_ids)
        ok = (pos < len(b_ids)) & (b_ids[np.minimum(pos, len(b_ids) - 1)] == class_ids) if len(b_ids) else class_ids < 0
        if not ok.all():
            raise FormatError(
                f"{anns[1].dataset.path}: class id(s) {sorted(set(class_ids[~ok].tolist()))[:5]} have no row in the class table"
            )
        return b_index[pos]

    lookups = []
    tables: dict[int, pa.Table] = {}  # one read of a dataset's segment table for all its compared layers
    shared = {id(ann.dataset) for ann in anns if sum(x.dataset is ann.dataset for x in anns) > 1}
    for k, ann in enumerate(anns):
        to_index = b_lookup if (k == 1 and two_datasets) else partial(space.index_of, where=str(ann.dataset.path))
        if id(ann.dataset) in shared and id(ann.dataset) not in tables:
            tables[id(ann.dataset)] = ann.dataset.segment_table(["image_id", "segment_id", "class_id", "layer"])
        lookups.append(ann.dataset.lookup_tables(ann.layer, ids, to_index, table=tables.get(id(ann.dataset))))
    splits = {
        a_k: dict(zip(a_k.dataset.images["image_id"].tolist(), a_k.dataset.images["split"].tolist())) for a_k in anns
    }
    roots = [str(ann.dataset.path) for ann in anns]
    items = [
        (
            image_id,
            tuple(
                f"{roots[k]}/{mask_relpath(ann.layer, splits[ann][image_id], image_id)}" for k, ann in enumerate(anns)
            ),
            tuple(lk[image_id] for lk in lookups),
        )
        for image_id in ids
    ]
    # class regions (segments that are not instances) count one object per connected component
    wholes = [_whole_tables(ann, ids) for ann in anns]
    whole: dict = {}
    if any(w is not None for w in wholes):
        whole = {image_id: tuple(None if w is None else w[image_id] for w in wholes) for image_id in ids}
        items = [item + (whole[item[0]],) for item in items]
    # A's frequency buckets need A's tables only: a thread reads them while the workers count
    # (the reduce would otherwise wait for them once the workers are done)
    background = ThreadPoolExecutor(1)
    buckets = background.submit(_buckets_of_a, anns[0], space, bucket_rule)
    background.shutdown(wait=False)
    fn = partial(_count_task, boundary_px, space.unmapped)
    order = {image_id: n for n, image_id in enumerate(ids)}
    results: list[ImageCounts | None] = [None] * len(items)
    for done, counts in enumerate(
        parallel_map(fn, items, workers=workers, executor=executor, batch_size=batch_size), 1
    ):
        results[order[counts.image_id]] = counts
        if progress is not None:
            progress(done, len(items))
    luts = {image_id: item[2] for image_id, item in zip(ids, items)}
    return _reduce(
        anns,
        space,
        results,
        unmatched,
        map_info,
        luts,
        boundary_px=boundary_px,
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        bucket_rule=bucket_rule,
        split=split,
        buckets=buckets.result(),
        whole=whole,
        threads=default_workers() if executor is not None or workers is None else max(1, int(workers)),
    )


def _buckets_of_a(ann: Annotation, space: ClassSpace, rule: longtail.BucketRule) -> tuple[np.ndarray, pd.DataFrame]:
    """Bucket name of every class index (classes A's long-tail table lacks: ``absent``)."""
    freq = longtail.class_frequencies(ann.dataset, layer=ann.layer)
    freq = freq.assign(bucket=longtail.assign_buckets(freq, rule))
    names = dict(zip(freq["class_id"].astype(np.int64), freq["bucket"]))
    bucket = np.array([names.get(int(c), longtail.ABSENT) for c in space.class_ids], dtype=object)
    return bucket, freq


def _tp_fp_fn(sums: dict, keep: np.ndarray) -> tuple[list, list, list]:
    """Per class index in ``keep``: TP, FP (B's pixels of the class where A is evaluable and
    names another class) and FN (A's evaluable pixels of the class that B names otherwise,
    leaves unlabeled or marks ignore), as lists of int pixel counts."""
    tp = sums["TP"][0, keep]
    fp = sums["PR"][0, keep] - tp
    fn = sums["GT"][0, keep] - tp
    return tuple(x.astype(np.int64).tolist() for x in (tp, fp, fn))


def _reduce(
    anns,
    space,
    results,
    unmatched,
    map_info,
    luts,
    *,
    boundary_px,
    bootstrap,
    confidence,
    seed,
    bucket_rule,
    split,
    threads: int = 1,
    buckets=None,
    whole=None,
) -> ConsistencyResult:
    n_images = len(results)
    ids = [r.image_id for r in results]
    img = np.concatenate([np.full(len(r.pairs), k, dtype=np.int64) for k, r in enumerate(results)])
    allp = np.concatenate([r.pairs for r in results]) if n_images else np.zeros((0, 4), np.int64)
    ca, cb, n, nband = allp[:, 0], allp[:, 1], allp[:, 2], allp[:, 3]
    s = _sums(img, ca, cb, n, n_images, space)
    sb = _sums(img, ca, cb, nband, n_images, space, per_class=())  # the same sums over band pixels
    per = {name: s["scalars"][:, t] for t, name in enumerate(_SCALARS)}
    band_per = {name: sb["scalars"][:, t] for t, name in enumerate(_SCALARS)}
    breakdown = np.stack([r.breakdown for r in results]).astype(np.float64)
    unm = (
        np.bincount(img[cb == space.unmapped], weights=n[cb == space.unmapped], minlength=n_images)
        if space.unmapped is not None
        else np.zeros(n_images)
    )
    per_image = pd.DataFrame(
        {
            "image_id": ids,
            "pixels": [r.shape[0] * r.shape[1] for r in results],
            "compared": per["compared"].astype(np.int64),
            "agree": per["agree"].astype(np.int64),
            "evaluable": per["evaluable"].astype(np.int64),
            "agree_evaluable": per["agree_evaluable"].astype(np.int64),
            "band_compared": band_per["compared"].astype(np.int64),
            "band_agree": band_per["agree"].astype(np.int64),
            "segmentation_quality": breakdown[:, 0].astype(np.int64),
            "naming": breakdown[:, 1].astype(np.int64),
            "quantity": breakdown[:, 2].astype(np.int64),
            "unmapped": unm.astype(np.int64),
        }
    )
    disagree = (per_image["compared"] - per_image["agree"]).to_numpy()
    if not np.array_equal(disagree, breakdown.sum(axis=1).astype(np.int64)):  # pragma: no cover - a bug if it fires
        raise AssertionError("internal error: the breakdown does not add up to the disagreement")
    bucket_of, freq = buckets if buckets is not None else _buckets_of_a(anns[0], space, bucket_rule)
    scored = space.scored
    bucket_members = {name: scored & (bucket_of == name) for name in (*bucket_rule.names, longtail.ABSENT)}
    bucket_members = {k: v for k, v in bucket_members.items() if v.any()}

    ones = np.ones((1, n_images))
    totals_w = _weighted(s, ones)
    point = _figures(totals_w, scored, bucket_members)
    extra = {
        "segmentation_quality": (breakdown[:, 0], per["compared"]),
        "naming": (breakdown[:, 1], per["compared"]),
        "quantity": (breakdown[:, 2], per["compared"]),
        "band_agreement": (band_per["agree"], band_per["compared"]),
        "interior_agreement": (per["agree"] - band_per["agree"], per["compared"] - band_per["compared"]),
    }
    for key, (num, den) in extra.items():
        point[key] = _ratio(ones @ num, ones @ den)
    ci: dict = {"level": confidence, "method": "bca", "bootstrap": int(bootstrap), "seed": int(seed), "unit": "images"}
    if bootstrap > 0:
        keys = [key for key, v in point.items() if np.ndim(v) == 1]
        ci.update(
            bootstrap_intervals(
                s,
                scored,
                bucket_members,
                extra,
                keys,
                n_resamples=bootstrap,
                seed=seed,
                confidence=confidence,
                threads=threads,
            )
        )
    bucket_ci = {k: ci.pop(k) for k in [k for k in ci if k.startswith("bucket:")]}

    scalar_keys = (
        "pixel_agreement",
        "pixel_agreement_excluding_void",
        "pixel_accuracy",
        "miou",
        "miou_symmetric",
        "kappa",
    )
    figures = {k: _float(point[k][0]) for k in scalar_keys}
    totals = {
        c: int(per_image[c].to_numpy().sum())
        for c in ("pixels", "compared", "agree", "evaluable", "agree_evaluable", "unmapped")
    }
    figures["pixels"] = dict(totals)

    pixels_a = totals_w["GT"][0]  # A's evaluable pixels per class
    pixels_b = totals_w["PR"][0]
    keep = np.flatnonzero(scored)
    per_class = pd.DataFrame(
        {
            "class_id": space.class_ids[keep],
            "name": [space.names[i] for i in keep],
            "pixels_a": pixels_a[keep].astype(np.int64),
            "pixels_b": pixels_b[keep].astype(np.int64),
            "iou": point["iou"][0, keep],
            "iou_symmetric": point["iou_symmetric"][0, keep],
            "bucket": bucket_of[keep],
        }
    )
    compared_total = max(1, int(totals["compared"]))
    band_total = int(per_image["band_compared"].sum())
    boundary = {}
    if boundary_px is not None:
        boundary = {
            "k": int(boundary_px),
            "band": {
                "pixels": band_total,
                "share": band_total / compared_total,
                "agreement": _float(point["band_agreement"][0]),
            },
            "interior": {
                "pixels": int(totals["compared"]) - band_total,
                "share": (int(totals["compared"]) - band_total) / compared_total,
                "agreement": _float(point["interior_agreement"][0]),
            },
        }
    counts = {c: int(per_image[c].to_numpy().sum()) for c in CATEGORIES}
    breakdown_out = {c: counts[c] / compared_total if totals["compared"] else 0.0 for c in CATEGORIES}
    breakdown_out["pixels"] = dict(counts)
    breakdown_out["disagreement"] = sum(breakdown_out[c] for c in CATEGORIES)

    ceiling = {
        "format": CEILING_FORMAT,
        "format_version": CEILING_VERSION,
        "reference": anns[0].describe(),
        "annotation": anns[1].describe(),
        "images": n_images,
        "split": split,
        "conventions": "the annotation scored as a prediction against the reference: pixels the reference leaves "
        "unlabeled or marks ignore are left out; elsewhere a pixel the annotation leaves unlabeled, "
        "marks ignore or names otherwise is wrong. IoU per class summed over all images, classes "
        "absent from both are null and left out of the means.",
        "pixel_accuracy": figures["pixel_accuracy"],
        "miou": figures["miou"],
        "ci": {
            "level": confidence,
            "method": "bca",
            "bootstrap": int(bootstrap),
            "seed": int(seed),
            "pixel_accuracy": ci.get("pixel_accuracy"),
            "miou": ci.get("miou"),
        },
        "buckets": {
            "rule": bucket_rule.description,
            "by": bucket_rule.by,
            "order": [b for b in (*bucket_rule.names, longtail.ABSENT) if b in bucket_members],
            "values": {
                name: {
                    "classes": int(members.sum()),
                    "classes_scored": int(np.count_nonzero(~np.isnan(point["iou"][0, members]))),
                    "pixel_accuracy": _float(point[f"bucket:{name}:pixel_accuracy"][0]),
                    "miou": _float(point[f"bucket:{name}:miou"][0]),
                    "ci": {
                        "pixel_accuracy": bucket_ci.get(f"bucket:{name}:pixel_accuracy"),
                        "miou": bucket_ci.get(f"bucket:{name}:miou"),
                    },
                }
                for name, members in bucket_members.items()
            },
        },
        "classes": [
            {
                "class_id": c,
                "name": name,
                "bucket": bucket,
                "pixels": px,
                "iou": _float(iou),
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }
            for c, name, bucket, px, iou, tp, fp, fn in zip(
                per_class["class_id"].tolist(),
                per_class["name"].tolist(),
                per_class["bucket"].tolist(),
                per_class["pixels_a"].tolist(),
                per_class["iou"].tolist(),
                *_tp_fp_fn(totals_w, keep),
            )
        ],
    }
    pairs = pd.DataFrame(_class_pairs(ca, cb, [n, nband]), columns=["a", "b", "pixels", "band_pixels"])

    pairwise = consensus = None
    if len(anns) > 2:
        labels = [_label(x) for x in anns]
        nl = len(anns)
        mats: dict[str, list] = {
            k: [[None] * nl for _ in range(nl)]
            for k in ("pixel_agreement", "pixel_agreement_excluding_void", "miou", "miou_symmetric")
        }
        p = 0
        for l in range(nl):
            for m in range(l + 1, nl):
                table = np.concatenate([r.pairwise[p] for r in results])
                fwd = pair_figures(table, space)
                bwd = pair_figures(table[:, [1, 0, 2]], space)
                for key in ("pixel_agreement", "pixel_agreement_excluding_void", "miou_symmetric"):
                    mats[key][l][m] = mats[key][m][l] = fwd[key]
                mats["miou"][l][m] = fwd["miou"]  # row: reference, column: scored against it
                mats["miou"][m][l] = bwd["miou"]
                p += 1
            for key in mats:
                mats[key][l][l] = 1.0
        pairwise = {"annotations": labels, **mats}
        consensus = []
        for l in range(nl):
            table = np.concatenate([r.consensus[l] for r in results])
            f = pair_figures(table[:, [1, 0, 2]], space)  # the annotation scored against the consensus
            consensus.append(
                {
                    "annotation": labels[l],
                    "pixel_agreement": f["pixel_agreement"],
                    "pixel_agreement_excluding_void": f["pixel_agreement_excluding_void"],
                    "miou": f["miou"],
                }
            )
    settings = {
        "boundary_px": boundary_px,
        "bootstrap": int(bootstrap),
        "confidence": confidence,
        "seed": int(seed),
        "split": split,
        "bucket_rule": bucket_rule.description,
        "unlabeled_classes": [int(c) for c in space.unlabeled],
    }
    return ConsistencyResult(
        annotations=list(anns),
        space=space,
        per_image=per_image,
        pairs=pairs,
        figures=figures,
        per_class=per_class,
        boundary=boundary,
        breakdown=breakdown_out,
        ci=ci,
        ceiling=ceiling,
        unmatched=unmatched,
        settings=settings,
        class_map=map_info,
        pairwise=pairwise,
        consensus=consensus,
        luts=luts,
        whole=whole or {},
    )


def _label(ann: Annotation) -> str:
    return ann.layer


def consistency_report(result: ConsistencyResult, per_image: bool = True) -> dict:
    """Everything ``segdata analyze consistency --json`` prints, as one JSON-ready dict (schema in
    ``docs/consistency.md``)."""
    f = result.figures
    anns = result.annotations
    report = {
        "a": anns[0].describe(),
        "b": anns[1].describe(),
        "images": int(len(result.per_image)),
        "unmatched": result.unmatched,
        "pixels": f["pixels"],
        "pixel_agreement": f["pixel_agreement"],
        "pixel_agreement_excluding_void": f["pixel_agreement_excluding_void"],
        "pixel_accuracy": f["pixel_accuracy"],
        "miou": f["miou"],
        "miou_symmetric": f["miou_symmetric"],
        "kappa": f["kappa"],
        "per_class": [
            {
                "class_id": int(r.class_id),
                "name": r.name,
                "pixels_a": int(r.pixels_a),
                "pixels_b": int(r.pixels_b),
                "iou": r.iou,
                "iou_symmetric": r.iou_symmetric,
                "bucket": r.bucket,
            }
            for r in result.per_class.itertuples(index=False)
        ],
        "boundary": result.boundary,
        "breakdown": result.breakdown,
        "ci": result.ci,
        "ceiling": result.ceiling,
        "settings": result.settings,
    }
    if len(anns) > 2:
        report["annotations"] = [x.describe() for x in anns]
        report["pairwise"] = result.pairwise
        report["consensus"] = result.consensus
    if result.class_map:
        report["class_map"] = result.class_map
    if per_image:
        pi = result.per_image
        report["per_image"] = [
            {
                "image_id": r.image_id,
                "compared": int(r.compared),
                "pixel_agreement": r.agree / r.compared if r.compared else None,
                "pixel_agreement_excluding_void": r.agree_evaluable / r.evaluable if r.evaluable else None,
                "band_agreement": r.band_agree / r.band_compared if r.band_compared else None,
                "interior_agreement": (r.agree - r.band_agree) / (r.compared - r.band_compared)
                if r.compared > r.band_compared
                else None,
                **{c: getattr(r, c) / r.compared if r.compared else 0.0 for c in CATEGORIES},
            }
            for r in pi.itertuples(index=False)
        ]
    return _clean(report)

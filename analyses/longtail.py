"""The long tail: how pixels, images and instances are spread over a dataset's classes.

Everything here is computed from the segment table alone; no mask is decoded.

Conventions
-----------
- ``pixels`` are pixel counts (integers); ``pixel_share`` is a fraction of the *labelled* pixels,
  that is pixels of classes not flagged ``ignore``. Pixels of ``ignore`` classes (VOC void,
  Cityscapes ``ignoreInEval``) and unlabeled pixels (segment id 0) are counted separately by
  :func:`pixel_accounting` and never mixed into shares.
- ``images`` is the number of images of the selected split in which the class has at least one
  pixel; ``train_images`` the same count over the ``train`` split, which the LVIS frequency rule
  is defined on.
- ``rank`` is 1-based, by pixels, descending; ties broken by class id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from segdata.format import Dataset

from .plotting import FigureWriter
from .powerlaw_fit import fit_power_law, gini

#: LVIS (Gupta et al. 2019): rare 1-10 training images, common 11-100, frequent > 100
LVIS_EDGES = (10, 100)
LVIS_NAMES = ("rare", "common", "frequent")
ABSENT = "absent"  # no training image at all
SEGMENT_COLUMNS = ["image_id", "class_id", "is_instance", "area"]


@dataclass(frozen=True)
class BucketRule:
    """How classes are put into frequency buckets.

    ``by`` is ``"train_images"`` or ``"pixel_share"``; a class goes to bucket ``i`` when its value
    is ``<= edges[i]`` (and above ``edges[i - 1]``), to the last bucket above ``edges[-1]``.
    ``edges=None`` with ``by="pixel_share"`` means terciles of the classes present.
    Classes without any training image (or pixel) go to :data:`ABSENT`.
    """

    by: str
    edges: tuple[float, ...] | None
    names: tuple[str, ...]
    description: str


LVIS = BucketRule(
    "train_images", LVIS_EDGES, LVIS_NAMES, "LVIS: rare 1-10, common 11-100, frequent > 100 training images"
)
TERCILES = BucketRule("pixel_share", None, ("low", "mid", "high"), "terciles of pixel share")


def parse_bucket_rule(text: str) -> BucketRule:
    """Parse ``lvis``, ``terciles``, ``images:E1,E2,...`` or ``share:E1,E2,...``.

    >>> parse_bucket_rule("images:5,50").names
    ('<=5', '6-50', '>50')
    """
    text = text.strip().lower()
    if text == "lvis":
        return LVIS
    if text == "terciles":
        return TERCILES
    kind, _, values = text.partition(":")
    if kind not in ("images", "share") or not values:
        raise ValueError(f"bucket rule {text!r}: expected lvis, terciles, images:E1,E2,... or share:E1,E2,...")
    try:
        edges = tuple(float(v) for v in values.split(","))
    except ValueError:
        raise ValueError(f"bucket rule {text!r}: edges must be numbers") from None
    if list(edges) != sorted(set(edges)):
        raise ValueError(f"bucket rule {text!r}: edges must increase")
    if kind == "images":
        e = [int(x) for x in edges]
        names = [f"<={e[0]}"] + [f"{a + 1}-{b}" for a, b in zip(e, e[1:])] + [f">{e[-1]}"]
        return BucketRule("train_images", tuple(e), tuple(names), f"by training images, edges {e}")
    names = [f"<={edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:])] + [f">{edges[-1]:g}"]
    return BucketRule("pixel_share", edges, tuple(names), f"by pixel share, edges {list(edges)}")


def _segments(ds: Dataset, layer: str, **membership) -> pd.DataFrame:
    """Rows of ``layer`` with SEGMENT_COLUMNS, plus one boolean column per keyword: whether the
    row's image is in that collection of image ids (Arrow's ``is_in``: fast on millions of rows)."""
    table = ds.segment_table(SEGMENT_COLUMNS, layer=layer)
    for name, ids in membership.items():
        value_set = pa.array(ids, type=pa.string())
        table = table.append_column(name, pc.is_in(table["image_id"], value_set=value_set))
    return table.to_pandas()


def _split_images(ds: Dataset, split: str | None, layer: str) -> pd.DataFrame:
    """Every image of ``split`` (annotated in ``layer`` or not: an image without it is all
    unlabeled there); a split or layer the dataset lacks raises SelectionError."""
    ds.check_layer(layer)
    return ds.select_images(split)


def pixel_accounting(ds: Dataset, split: str | None = None, layer: str = "objects") -> dict:
    """Where every pixel of the selection goes.

    Returns
    -------
    dict
        ``total`` (pixels of all selected images), ``labelled`` (pixels of classes not flagged
        ignore), ``ignore`` (pixels of ignore classes), ``unlabeled`` (segment id 0), and the
        three as fractions of ``total`` (``*_fraction``). ``labelled + ignore + unlabeled ==
        total``.
    """
    images = _split_images(ds, split, layer)
    seg = _segments(ds, layer, selected=images["image_id"])
    seg = seg[seg["selected"]]
    ignore_ids = set(ds.classes.loc[ds.classes["ignore"].fillna(False).astype(bool), "class_id"])
    is_ignore = seg["class_id"].isin(ignore_ids)
    total = int((images["width"].astype(np.int64) * images["height"].astype(np.int64)).sum())
    ignore = int(seg.loc[is_ignore, "area"].sum())
    labelled = int(seg.loc[~is_ignore, "area"].sum())
    unlabeled = total - ignore - labelled
    frac = (lambda v: v / total) if total else (lambda v: 0.0)
    return {
        "total": total,
        "labelled": labelled,
        "ignore": ignore,
        "unlabeled": unlabeled,
        "labelled_fraction": frac(labelled),
        "ignore_fraction": frac(ignore),
        "unlabeled_fraction": frac(unlabeled),
    }


def class_frequencies(
    ds: Dataset, split: str | None = None, layer: str = "objects", train_split: str = "train"
) -> pd.DataFrame:
    """Per-class pixels, pixel share, images, training images, instances and rank.

    Parameters
    ----------
    ds : Dataset
    split : str, optional
        Restrict pixels, images and instances to this split (default: all images).
    layer : str
        Annotation layer (default ``objects``).
    train_split : str
        The split whose image counts define ``train_images`` (LVIS buckets). When the dataset has
        no such split, every image counts as a training image.

    Returns
    -------
    DataFrame
        One row per class of the class table not flagged ``ignore`` (classes without pixels
        included, with zeros), sorted by ``rank``: ``class_id``, ``name``, ``pixels``,
        ``pixel_share`` (fraction of labelled pixels), ``images``, ``train_images``,
        ``instances`` (segments that are real instances), ``rank``.
    """
    images = _split_images(ds, split, layer)
    all_images = ds.images
    train_ids = all_images.loc[all_images["split"] == train_split, "image_id"]
    if len(train_ids) == 0:
        train_ids = all_images["image_id"]
    table = ds.segment_table(SEGMENT_COLUMNS, layer=layer)
    classes = ds.classes
    keep = classes[~classes["ignore"].fillna(False).astype(bool)][["class_id", "name"]].reset_index(drop=True)
    # integer codes throughout (Arrow encodes the image ids): counts are bincounts, distinct
    # (class, image) pairs one np.unique over int64 keys
    image_code = pc.dictionary_encode(table["image_id"]).combine_chunks().indices.to_numpy().astype(np.int64)
    n_codes = int(image_code.max()) + 1 if len(image_code) else 1
    selected = pc.is_in(table["image_id"], value_set=pa.array(images["image_id"], type=pa.string())).to_numpy(
        zero_copy_only=False
    )
    train = pc.is_in(table["image_id"], value_set=pa.array(train_ids, type=pa.string())).to_numpy(zero_copy_only=False)
    class_id = table["class_id"].to_numpy().astype(np.int64)
    area = table["area"].to_numpy().astype(np.int64)
    is_instance = table["is_instance"].to_numpy(zero_copy_only=False).astype(bool)
    index = pd.Index(keep["class_id"].to_numpy(np.int64)).get_indexer(class_id)  # row in keep; -1: ignore or unknown
    known = index >= 0
    n = len(keep)

    def per_class(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        m = mask & known
        return np.bincount(index[m], weights=None if weights is None else weights[m], minlength=n)[:n]

    def images_per_class(mask: np.ndarray) -> np.ndarray:
        m = mask & known
        pairs = np.unique(index[m] * n_codes + image_code[m])
        return np.bincount(pairs // n_codes, minlength=n)[:n]

    present = selected & (area > 0)
    out = keep.assign(
        pixels=per_class(present, area).astype(np.int64),
        images=images_per_class(present).astype(np.int64),
        train_images=images_per_class((area > 0) & train).astype(np.int64),
        instances=per_class(selected & is_instance).astype(np.int64),
    )
    total = out["pixels"].sum()
    out["pixel_share"] = out["pixels"] / total if total else 0.0
    out = out.sort_values(["pixels", "class_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out[["class_id", "name", "pixels", "pixel_share", "images", "train_images", "instances", "rank"]]


def coverage(freq: pd.DataFrame) -> pd.DataFrame:
    """Cumulative pixel share of the top-k classes by pixels: columns ``k`` (1-based) and
    ``pixel_share`` (fraction of labelled pixels), for every k up to the classes present."""
    ranked = freq[freq["pixels"] > 0].sort_values("rank")
    total = ranked["pixels"].sum()
    cum = ranked["pixels"].cumsum() / total if total else ranked["pixels"] * 0.0
    return pd.DataFrame({"k": np.arange(1, len(ranked) + 1), "pixel_share": cum.to_numpy()})


def classes_for_coverage(freq: pd.DataFrame, fraction: float) -> int:
    """Smallest k whose top-k classes cover at least ``fraction`` of the labelled pixels."""
    if not 0 < fraction <= 1:
        raise ValueError(f"coverage fraction must be in (0, 1], got {fraction}")
    cov = coverage(freq)
    if cov.empty:
        return 0
    hit = np.flatnonzero(cov["pixel_share"].to_numpy() >= fraction - 1e-12)
    return int(cov["k"].iloc[hit[0]]) if hit.size else int(cov["k"].iloc[-1])


def assign_buckets(freq: pd.DataFrame, rule: BucketRule = LVIS) -> pd.Series:
    """Frequency bucket of each class (a Series aligned with ``freq``).

    With the LVIS rule, a class seen in 10 training images is ``rare``, 11 ``common``, 100
    ``common``, 101 ``frequent``; a class in no training image is ``absent``.
    """
    values = freq[rule.by].to_numpy(dtype=np.float64)
    present = values > 0
    edges = rule.edges
    if edges is None:  # terciles of the classes present
        edges = tuple(np.quantile(values[present], [1 / 3, 2 / 3])) if present.any() else (0.0, 0.0)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    names = np.asarray(rule.names, dtype=object)[np.minimum(idx, len(rule.names) - 1)]
    names[~present] = ABSENT
    return pd.Series(names, index=freq.index, name="bucket")


def bucket_table(freq: pd.DataFrame, buckets: pd.Series, rule: BucketRule = LVIS) -> pd.DataFrame:
    """Classes, pixels and pixel share per bucket, in the rule's order, ``absent`` last."""
    df = freq.assign(bucket=buckets)
    order = list(rule.names) + [ABSENT]
    table = df.groupby("bucket").agg(classes=("class_id", "size"), pixels=("pixels", "sum"))
    table["pixel_share"] = table["pixels"] / max(1, int(freq["pixels"].sum()))
    return table.reindex(order, fill_value=0)


@dataclass(frozen=True)
class LongtailResult:
    """What :func:`analyze` measured; :meth:`to_dict` is the JSON report, the views (terminal,
    plots, bucket file) read these fields and recompute nothing.

    Attributes
    ----------
    dataset, split, layer : str
    rule : BucketRule
    frequencies : DataFrame
        :func:`class_frequencies` with a ``bucket`` column (:func:`assign_buckets`).
    accounting : dict
        :func:`pixel_accounting`.
    fits : dict
        Power-law fits of the per-class ``pixels`` and ``instances``
        (:meth:`~segdata.analyses.powerlaw_fit.PowerLawFit.as_dict`, or ``{"error": ...}``).
    """

    dataset: str
    split: str | None
    layer: str
    rule: BucketRule
    frequencies: pd.DataFrame
    accounting: dict
    fits: dict

    @property
    def buckets(self) -> pd.Series:
        return self.frequencies["bucket"]

    def _repr_html_(self) -> str:
        from segdata.render.html import longtail_card

        return longtail_card(self)

    def to_dict(self) -> dict:
        """The JSON-ready report (what ``segdata analyze longtail --json`` prints)."""
        freq = self.frequencies
        cov = coverage(freq)
        present = freq[freq["pixels"] > 0]
        return {
            "dataset": self.dataset,
            "split": self.split,
            "layer": self.layer,
            "accounting": self.accounting,
            "n_classes": int(len(freq)),
            "n_classes_present": int(len(present)),
            "classes": [
                {
                    "class_id": int(r.class_id),
                    "name": r.name,
                    "pixels": int(r.pixels),
                    "pixel_share": float(r.pixel_share),
                    "images": int(r.images),
                    "train_images": int(r.train_images),
                    "instances": int(r.instances),
                    "rank": int(r.rank),
                    "bucket": r.bucket,
                }
                for r in freq.itertuples(index=False)
            ],
            "coverage": [{"k": int(k), "pixel_share": float(s)} for k, s in zip(cov["k"], cov["pixel_share"])],
            "classes_for_coverage": {f"{f:g}": classes_for_coverage(freq, f) for f in (0.5, 0.9, 0.9275, 0.95, 0.99)},
            "powerlaw": {**self.fits["pixels"], "instances": self.fits["instances"]},
            "gini": gini(present["pixels"].to_numpy()),
            "gini_instances": gini(present["instances"].to_numpy()),
            "buckets": {
                "rule": self.rule.description,
                "counts": {
                    name: int(row.classes) for name, row in bucket_table(freq, self.buckets, self.rule).iterrows()
                },
            },
        }


def analyze(
    ds: Dataset,
    split: str | None = None,
    layer: str = "objects",
    rule: BucketRule = LVIS,
    bootstrap: int = 100,
) -> LongtailResult:
    """Class frequencies, buckets, pixel accounting and power-law fits of one layer (and split).

    ``bootstrap`` is the number of synthetic data sets of the goodness-of-fit p-value of the pixel
    law (0: none). A split or layer the dataset lacks raises :class:`segdata.errors.SelectionError`.
    """
    freq = class_frequencies(ds, split=split, layer=layer)
    freq = freq.assign(bucket=assign_buckets(freq, rule))
    present = freq[freq["pixels"] > 0]
    fits = {}
    # the goodness-of-fit bootstrap runs on the pixel law (the statistic behind the benchmark
    # vocabularies); the instance law gets its exponent and KS distance only
    for quantity, n_boot in (("pixels", bootstrap), ("instances", 0)):
        values = present[quantity].to_numpy()
        values = values[values > 0]
        try:
            fits[quantity] = fit_power_law(values, bootstrap=n_boot).as_dict()
        except ValueError as exc:
            fits[quantity] = {"error": str(exc)}
    accounting = pixel_accounting(ds, split=split, layer=layer)
    return LongtailResult(ds.name, split, layer, rule, freq, accounting, fits)


def longtail_report(
    ds: Dataset,
    split: str | None = None,
    layer: str = "objects",
    rule: BucketRule = LVIS,
    bootstrap: int = 100,
) -> dict:
    """Everything ``segdata analyze longtail --json`` prints, as one JSON-ready dict
    (``analyze(...).to_dict()``)."""
    return analyze(ds, split=split, layer=layer, rule=rule, bootstrap=bootstrap).to_dict()


def write_buckets(path: str | Path, freq: pd.DataFrame, buckets: pd.Series) -> Path:
    """Write ``class_id,name,bucket`` as CSV: the file ``segdata eval --buckets`` reads back."""
    path = Path(path)
    freq.assign(bucket=buckets)[["class_id", "name", "bucket"]].sort_values("class_id").to_csv(path, index=False)
    return path


def rank_frequency_figure(freq: pd.DataFrame, fits: dict | None = None, title: str = ""):
    """Log-log rank-frequency of the per-class ``pixels`` and ``instances`` (a
    :class:`matplotlib.figure.Figure`); with ``fits`` (:attr:`LongtailResult.fits`), the fitted
    power law of each drawn over the ranks of its tail: ``count(rank) = xmin (rank / n_tail)^-s``,
    ``s`` the rank exponent (ranks 1-based)."""
    fig, ax = FigureWriter.figure((6, 4.5))
    for quantity, color in (("pixels", "tab:blue"), ("instances", "tab:orange")):
        values = np.sort(freq[quantity].to_numpy())[::-1]
        values = values[values > 0]
        if len(values):
            ax.loglog(np.arange(1, len(values) + 1), values, ".", ms=3, color=color, label=quantity)
        fit = (fits or {}).get(quantity) or {}
        if len(values) and "alpha" in fit and fit.get("n_tail"):
            ranks = np.geomspace(1, fit["n_tail"], 50)
            ax.loglog(
                ranks,
                fit["xmin"] * (ranks / fit["n_tail"]) ** -fit["rank_exponent"],
                "-",
                lw=1,
                color=color,
                alpha=0.7,
                label=f"power law, alpha={fit['alpha']:.2f}",
            )
    ax.set_xlabel("class rank")
    ax.set_ylabel("count per class")
    ax.set_title(f"rank-frequency {title}".strip())
    ax.legend()
    return fig


def coverage_figure(freq: pd.DataFrame, title: str = "", fractions=(0.9, 0.95), legend: bool = False):
    """The coverage curve (% of labelled pixels held by the top-k classes, k on a log axis) with
    the k reaching each of ``fractions`` marked (a :class:`matplotlib.figure.Figure`); with
    ``legend``, the k are named in a legend instead of next to their lines (close fractions
    stay readable)."""
    cov = coverage(freq)
    fig, ax = FigureWriter.figure((6, 4.5))
    ax.plot(cov["k"], cov["pixel_share"] * 100, color="tab:blue")
    colors = ("tab:green", "tab:red", "tab:purple", "tab:brown")
    for f, color in zip(fractions, colors):
        k = classes_for_coverage(freq, f) if len(cov) else 0
        if k:
            line = ax.axvline(k, color=color, ls="--", lw=1)
            if legend:
                line.set_label(f"{f:.0%}: k={k}")
            else:
                ax.annotate(f"{f:.0%}: k={k}", (k, f * 100), textcoords="offset points", xytext=(5, -12), color=color)
    if legend and len(ax.lines) > 1:
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("top-k classes by pixels")
    ax.set_ylabel("% of labelled pixels covered")
    ax.set_title(f"pixel coverage {title}".strip())
    return fig


def buckets_figure(freq: pd.DataFrame, buckets: pd.Series, rule: BucketRule = LVIS, title: str = ""):
    """Classes per frequency bucket, each bar labelled with its share of the pixels."""
    table = bucket_table(freq, buckets, rule)
    fig, ax = FigureWriter.figure((6, 4))
    ax.bar(table.index.astype(str), table["classes"], color="tab:purple")
    for i, (n, share) in enumerate(zip(table["classes"], table["pixel_share"])):
        ax.annotate(f"{n}\n{share:.1%} px", (i, n), ha="center", va="bottom", fontsize=8)
    ax.margins(y=0.18)  # room for the labels above the tallest bar, below the title
    ax.set_ylabel("classes")
    ax.set_title(f"classes per frequency bucket {title}".strip())
    return fig


def plot_longtail(
    freq: pd.DataFrame, buckets: pd.Series, directory: str | Path, title: str = "", rule: BucketRule = LVIS
) -> list[Path]:
    """Log-log rank-frequency (pixels and instances), coverage curve with the k reaching 90% and
    95%, and classes per bucket; each as PNG and SVG. Returns the files written."""
    writer = FigureWriter(directory)
    writer.save(rank_frequency_figure(freq, title=title), "rank_frequency")
    writer.save(coverage_figure(freq, title=title), "coverage")
    writer.save(buckets_figure(freq, buckets, rule, title=title), "buckets")
    return writer.written

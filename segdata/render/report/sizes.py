"""The report's small-objects section: size distributions per frequency bucket, the share below
one stride cell, the classes most often tiny (plots of :mod:`segdata.analyses.small_objects`)."""

from __future__ import annotations

import numpy as np

from segdata.analyses import small_objects as so
from segdata.analyses.plotting import new_figure

from ..html import count, figure, grid, kpis, num, pct, svg, table

#: classes with fewer objects than this are left out of the "most often tiny" table
MIN_OBJECTS = 3


def sizes_section(
    result: so.SizeResult, bucket_of: dict | None = None, top: int = 15, bucket_order: list | None = None
) -> str:
    """The section of a :class:`~segdata.analyses.small_objects.SizeResult`; ``bucket_of`` maps a
    class id to its frequency bucket (from the long tail) for the per-bucket distributions, shown
    in ``bucket_order`` (default: as the buckets first appear)."""
    order = list(bucket_order or [])
    order += [b for b in dict.fromkeys((bucket_of or {}).values()) if b not in order]
    o = result.overall
    n = o["objects"]
    b = o["size_buckets"]
    unit = result.unit
    out = [
        f'<p class="note">Areas in pixels, counted per {"instance" if unit == "instances" else "connected component of a class region (the layer has no instances)"}; '
        "COCO buckets: small &lt; 32², medium &lt; 96², large. An object below stride² fits inside one cell of a "
        "network of that output stride.</p>",
        kpis(
            [
                (count(n), unit),
                *((pct(b[k] / n if n else None), f"{k} (COCO)") for k in so.BUCKETS),
                *((pct(o["below_stride"][str(s)]), f"below one stride-{s} cell ({s * s} px)") for s in so.STRIDES),
            ]
        ),
    ]
    plots = [
        figure(
            svg(so.size_histogram_figure(result.objects, result.dataset), "object size histogram"),
            "Object areas, log scale, with the stride cells and the COCO thresholds.",
        )
    ]
    if bucket_of:
        plots.append(
            figure(
                svg(_per_bucket_figure(result.objects, bucket_of, order), "object sizes per frequency bucket"),
                "Distribution of object areas per frequency bucket of the class (each curve sums to 1).",
            )
        )
    plots.append(
        figure(
            svg(so.median_size_figure(result.per_class, result.dataset), "median size against frequency"),
            "Per class: median area against number of objects; dashed: 32² (COCO small).",
        )
    )
    out.append(grid(*plots))
    rows = [(k, count(b[k]), pct(b[k] / n if n else None)) for k in so.BUCKETS]
    if o["zero_area"]:
        rows.append(("no visible pixel (left out)", count(o["zero_area"]), ""))
    out.append(table(["COCO size bucket", unit, "share"], rows, caption="Size buckets"))
    out.append(
        table(
            ["stride", "cell (px)", f"share of {unit} below one cell"],
            [(s, count(s * s), pct(o["below_stride"][str(s)])) for s in so.STRIDES],
            caption="Below one cell of a network's output stride",
        )
    )
    if bucket_of:
        out.append(_bucket_table(result.objects, bucket_of, order))
    out.append(
        table(
            ["quantile", "area (px)", "share of the image"],
            [(q, num(o["area_quantiles"][q], 0), pct(o["fraction_quantiles"][q], 3)) for q in o["area_quantiles"]],
            caption="Area quantiles",
        )
    )
    out.append(_tiny_table(result.per_class, top))
    return "".join(out)


def _bucket_areas(objects, bucket_of: dict, order: list) -> dict:
    visible = objects[objects["area"] > 0]
    buckets = visible["class_id"].map(bucket_of).fillna("absent")
    order = [name for name in order if (buckets == name).any()]
    return {name: visible.loc[buckets == name, "area"].to_numpy() for name in order}


def _per_bucket_figure(objects, bucket_of: dict, order: list):
    fig, ax = new_figure((6.5, 4.5))
    areas = _bucket_areas(objects, bucket_of, order)
    top = max((a.max() for a in areas.values() if len(a)), default=10)
    bins = np.logspace(0, np.log10(max(top, 10)) + 0.05, 40)
    for name, a in areas.items():
        weights = np.full(len(a), 1 / len(a)) if len(a) else None
        ax.hist(a, bins=bins, weights=weights, histtype="step", lw=1.5, label=f"{name} ({len(a):,})")
    ax.set_xscale("log")
    for s, color in zip(so.STRIDES, ("tab:green", "tab:orange", "tab:red")):
        ax.axvline(s * s, color=color, ls=":", lw=1)
    ax.set_xlabel("object area (pixels)")
    ax.set_ylabel("fraction of the bucket's objects")
    ax.set_title("object sizes per frequency bucket")
    ax.legend(fontsize=8)
    return fig


def _bucket_table(objects, bucket_of: dict, order: list) -> str:
    rows = []
    for name, a in _bucket_areas(objects, bucket_of, order).items():
        rows.append(
            (
                name,
                count(len(a)),
                num(np.median(a), 0) if len(a) else "n/a",
                *(pct((a < s * s).mean() if len(a) else None) for s in so.STRIDES),
                pct((a < so.SMALL_MAX).mean() if len(a) else None),
            )
        )
    return table(
        ["frequency bucket", "objects", "median area", *(f"< stride {s}²" for s in so.STRIDES), "small (< 32²)"],
        rows,
        caption="Sizes per frequency bucket",
    )


def _tiny_table(per_class, top: int) -> str:
    if not len(per_class):
        return "<p>No object with a visible pixel.</p>"
    pc = per_class[per_class["instances"] >= MIN_OBJECTS]
    if not len(pc):
        pc = per_class
    pc = pc.assign(small_share=pc["small"] / pc["instances"])
    pc = pc.sort_values(["below_stride_16", "small_share", "instances"], ascending=[False, False, False]).head(top)
    return table(
        ["class", "id", "objects", "small", "< 8²", "< 16²", "< 32²", "median area", "median share of image"],
        [
            (
                r.name,
                r.class_id,
                count(r.instances),
                pct(r.small_share),
                pct(r.below_stride_8),
                pct(r.below_stride_16),
                pct(r.below_stride_32),
                num(r.median_area, 0),
                pct(r.median_fraction, 3),
            )
            for r in pc.itertuples(index=False)
        ],
        caption=f"The classes most often tiny (by share below one stride-16 cell; classes with at least "
        f"{MIN_OBJECTS} objects)",
    )

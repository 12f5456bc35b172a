"""The report's consistency section: agreement, the breakdown of the disagreement, the boundary
band against the interior, the ceiling per bucket, and the disagreement drawn on a few images."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from segdata.analyses.plotting import new_figure

from ..html import Raw, count, esc, figure, grid, img, interval, kpis, num, pct, svg, swatch, table

#: colours of the categories of the disagreement (those of :mod:`segdata.analyses.consistency.plots`)
CATEGORY_NAMES = {"segmentation_quality": "segmentation quality", "naming": "naming", "quantity": "quantity"}


def _category_colors() -> dict:
    from segdata.analyses.consistency import NAMING, QUALITY, QUANTITY
    from segdata.analyses.consistency.plots import _CATEGORY_COLORS

    return {
        "segmentation_quality": _CATEGORY_COLORS[QUALITY],
        "naming": _CATEGORY_COLORS[NAMING],
        "quantity": _CATEGORY_COLORS[QUANTITY],
    }


def consistency_section(
    report: dict, overlays: list[dict] | None = None, note: str | None = None, top: int = 15
) -> str:
    """The section of a consistency report (the JSON of ``segdata analyze consistency --json``);
    ``overlays`` are :func:`disagreement_overlays`' images, ``note`` says why there are none."""
    a, b = report["a"], report["b"]
    ci = report.get("ci", {})
    bd = report["breakdown"]
    colors = _category_colors()
    out = [
        f'<p class="note">A (reference): layer {esc(a["layer"])} of {esc(a["dataset"])}; B: layer {esc(b["layer"])} '
        f"of {esc(b['dataset'])}; {report['images']:,} images. Agreement over the pixels labelled in at least one; "
        f"mIoU of B scored against A as a prediction. Intervals: {esc(ci.get('level', 0.95))} bootstrap over images "
        f"({esc(ci.get('bootstrap', 0))} resamples).</p>",
        kpis(
            [
                (pct(report["pixel_agreement"]), "pixel agreement"),
                (pct(report["pixel_agreement_excluding_void"]), "agreement, labelled in both, no void"),
                (num(report["miou"]), "mIoU of B against A (the ceiling)"),
                (num(report["miou_symmetric"]), "symmetric mIoU"),
                (num(report["kappa"]), "Cohen's kappa"),
                (pct(bd["disagreement"]), "disagreement"),
            ]
        ),
    ]
    rows = [
        (
            f,
            pct(report[k], 2) if k in report else "n/a",
            interval(ci.get(k)),
        )
        for f, k in (
            ("pixel agreement", "pixel_agreement"),
            ("agreement excluding void", "pixel_agreement_excluding_void"),
            ("pixel accuracy of B against A", "pixel_accuracy"),
        )
    ] + [
        (f, num(report[k]), interval(ci.get(k), num))
        for f, k in (("mIoU of B against A", "miou"), ("symmetric mIoU", "miou_symmetric"), ("kappa", "kappa"))
    ]
    figures_table = table(["figure", "value", "interval"], rows, caption="Agreement")
    pixels = bd.get("pixels", {})
    breakdown_rows = [
        (
            Raw(swatch(colors[c]) + esc(name)),
            pct(bd[c], 2),
            interval(ci.get(c), lambda x: pct(x, 2)),
            count(pixels.get(c)),
        )
        for c, name in CATEGORY_NAMES.items()
    ]
    breakdown_rows.append(
        ("all disagreement", pct(bd["disagreement"], 2), "", count(sum(pixels.values()) if pixels else None))
    )
    breakdown_table = table(
        ["category", "% of compared pixels", "interval", "pixels"],
        breakdown_rows,
        caption="Breakdown of the disagreement (as the ADE20K re-annotation study split it)",
        numeric=[False, True, True, True],
    )
    boundary = report.get("boundary") or {}
    plots = [figure(svg(_breakdown_figure(report, colors), "breakdown of the disagreement"))]
    boundary_table = ""
    if boundary:
        plots.append(
            figure(
                svg(_boundary_figure(report), "agreement in the boundary band and the interior"),
                f"Band: pixels within {boundary['k']} px (chessboard) of a segment boundary in A or B.",
            )
        )
        boundary_table = table(
            ["region", "share of compared pixels", "pixels", "agreement", "interval"],
            [
                (
                    name,
                    pct(boundary[key]["share"]),
                    count(boundary[key]["pixels"]),
                    pct(boundary[key]["agreement"]),
                    interval(ci.get(f"{key}_agreement")),
                )
                for key, name in (("band", f"boundary band (K = {boundary['k']} px)"), ("interior", "interior"))
            ],
            caption="Boundary band against the interior",
        )
    out.append(grid(figures_table, breakdown_table))
    out.append(grid(*plots))
    out.append(boundary_table)
    out.append(_ceiling_table(report))
    out.append(_class_table(report, top))
    out.append("<h3>Disagreement on the images that disagree most</h3>")
    legend = " ".join(f"{swatch(colors[c])}{esc(name)}" for c, name in CATEGORY_NAMES.items())
    if overlays:
        out.append(
            f'<p class="note">Left to right: A and B in class colours, the disagreement ({legend}; agreement '
            "grey, pixels unlabeled in both dark).</p>"
        )
        for o in overlays:
            caption = f"{o['image_id']}: {pct(o['disagreement'])} of the compared pixels disagree"
            row = "".join(
                figure(img(o[key], f"{o['image_id']} {label}"), label)
                for key, label in (("a", "A: " + a["layer"]), ("b", "B: " + b["layer"]), ("categories", "disagreement"))
            )
            out.append(
                f'<figure class="overlay"><div class="row3">{row}</div><figcaption>{esc(caption)}</figcaption></figure>'
            )
    else:
        out.append(f'<p class="note">{esc(note or "No image drawn.")}</p>')
    return "".join(out)


def _breakdown_figure(report: dict, colors: dict):
    fig, ax = new_figure((5.5, 3.8))
    bd = report["breakdown"]
    names = ["agreement"] + [CATEGORY_NAMES[c] for c in CATEGORY_NAMES]
    values = [100 * (report["pixel_agreement"] or 0)] + [100 * bd[c] for c in CATEGORY_NAMES]
    bars = ax.barh(names[::-1], values[::-1], color=[colors[c] for c in CATEGORY_NAMES][::-1] + [(0.6, 0.6, 0.6)])
    for bar, v in zip(bars, values[::-1]):
        ax.annotate(
            f"{v:.1f}%",
            (v, bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel("% of compared pixels")
    ax.set_xlim(0, 112)
    ax.set_title("agreement and the breakdown of the disagreement")
    return fig


def _boundary_figure(report: dict):
    fig, ax = new_figure((5.5, 3.8))
    boundary = report["boundary"]
    ci = report.get("ci", {})
    names, values, errs = [], [], []
    for key in ("band", "interior"):
        v = boundary[key]["agreement"]
        names.append(f"{key}\n{pct(boundary[key]['share'])} of pixels")
        values.append(100 * (v or 0))
        lo, hi = (ci.get(f"{key}_agreement") or [None, None])[:2]
        errs.append((100 * ((v or 0) - lo), 100 * (hi - (v or 0))) if lo is not None and hi is not None else (0, 0))
    ax.bar(names, values, yerr=np.array(errs).T, capsize=4, color=["tab:orange", "tab:blue"])
    overall = 100 * (report["pixel_agreement"] or 0)
    ax.axhline(overall, color="k", ls="--", lw=1, label=f"overall {overall:.1f}%")
    for i, v in enumerate(values):
        ax.annotate(f"{v:.1f}%", (i, v / 2), ha="center", va="center", fontsize=9, color="white", weight="bold")
    ax.set_ylim(0, 105)
    ax.set_ylabel("pixel agreement (%)")
    ax.set_title("boundary band against the interior")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _ceiling_table(report: dict) -> str:
    ceiling = report.get("ceiling") or {}
    buckets = ceiling.get("buckets") or {}
    values = buckets.get("values") or {}
    if not values:
        return ""
    rows = [
        (
            name,
            count(v["classes"]),
            count(v["classes_scored"]),
            pct(v["pixel_accuracy"]),
            num(v["miou"]),
            interval((v.get("ci") or {}).get("miou"), num),
        )
        for name, v in ((n, values[n]) for n in buckets.get("order", values))
        if name in values
    ]
    rows.append(
        (
            "all",
            "",
            "",
            pct(ceiling.get("pixel_accuracy")),
            num(ceiling.get("miou")),
            interval((ceiling.get("ci") or {}).get("miou"), num),
        )
    )
    return table(
        ["bucket of A", "classes", "scored", "pixel accuracy", "mIoU (ceiling)", "interval"],
        rows,
        caption=f"The annotator ceiling per frequency bucket ({buckets.get('rule', '')})",
    )


def _class_table(report: dict, top: int) -> str:
    classes = [c for c in report.get("per_class", []) if c.get("iou") is not None and c.get("pixels_a")]
    if not classes:
        return ""
    classes.sort(key=lambda c: (c["iou"], -c["pixels_a"]))
    return table(
        ["class", "id", "bucket", "pixels in A", "pixels in B", "IoU of B against A", "symmetric IoU"],
        [
            (
                c["name"],
                c["class_id"],
                c.get("bucket", ""),
                count(c["pixels_a"]),
                count(c["pixels_b"]),
                num(c["iou"]),
                num(c.get("iou_symmetric")),
            )
            for c in classes[:top]
        ],
        caption=f"The {min(top, len(classes))} classes the annotators agree on least",
    )


# --------------------------------------------------------------------------- overlays


def disagreement_overlays(source, top: int = 3, max_side: int = 480) -> tuple[list[dict], str | None]:
    """The ``top`` images with the most disagreement, drawn: A and B in class colours and the
    disagreement coloured by category (:func:`segdata.analyses.consistency.disagreement_map`).

    ``source`` is a :class:`~segdata.analyses.consistency.ConsistencyResult` (its lookup tables
    are used) or a report dict, whose datasets are reopened from the paths it names. Images are
    shrunk (nearest pixel) to at most ``max_side`` pixels a side.

    Returns
    -------
    overlays : list of dict
        ``image_id``, ``disagreement`` (fraction of compared pixels), ``a``, ``b``,
        ``categories``: (H, W, 3) uint8 images.
    note : str or None
        Why fewer than asked were drawn (datasets not found, an image that failed), else None.
    """
    from segdata.analyses import consistency as cons
    from segdata.errors import SegdataError

    if top <= 0:
        return [], "No image asked for."
    if isinstance(source, dict):
        report = source
        try:
            inputs = _inputs_from_report(report)
        except (SegdataError, OSError, ValueError) as exc:
            return [], f"The compared datasets could not be opened again to draw the disagreement ({exc})."
    else:
        report = source.report(per_image=True)
        a, b = source.annotations[:2]
        inputs = (
            a.dataset,
            a.layer,
            b.dataset,
            b.layer,
            source.space,
            lambda ids: {i: source.luts[i][:2] for i in ids},
            lambda ids: {i: source.whole.get(i, (None, None))[:2] for i in ids},
        )
    ds_a, layer_a, ds_b, layer_b, space, luts_of, whole_of = inputs
    per_image = [p for p in report.get("per_image") or [] if p.get("compared") and p.get("pixel_agreement") is not None]
    if not per_image:
        return [], "The consistency report lists no per-image figures (written without them), so no image is drawn."
    per_image.sort(key=lambda p: (p["pixel_agreement"], p["image_id"]))
    chosen = [p for p in per_image if p["pixel_agreement"] < 1][:top]
    ids = [p["image_id"] for p in chosen]
    luts, whole = luts_of(ids), whole_of(ids)
    palette = np.array([_rgb(c) for c in space.colors], dtype=np.uint8)
    colors = _category_colors()
    cat_colors = {
        cons.QUALITY: colors["segmentation_quality"],
        cons.NAMING: colors["naming"],
        cons.QUANTITY: colors["quantity"],
    }
    out, failed = [], []
    for p in chosen:
        iid = p["image_id"]
        try:
            seg_a = ds_a.segment_map(iid, layer_a)
            seg_b = ds_b.segment_map(iid, layer_b)
            lut_a, lut_b = luts[iid]
            whole_a, whole_b = whole[iid]
            (oa, la), (ob, lb) = cons.split_regions(seg_a, lut_a, whole_a), cons.split_regions(seg_b, lut_b, whole_b)
            cat = cons.disagreement_map(oa, ob, la, lb, space.unmapped)
        except (SegdataError, OSError, KeyError, ValueError) as exc:
            failed.append(f"{iid} ({exc})")
            continue
        shaded = np.full(cat.shape + (3,), 60, dtype=np.uint8)
        shaded[cat == cons.AGREE] = 200
        for code, color in cat_colors.items():
            shaded[cat == code] = np.round(np.asarray(color) * 255).astype(np.uint8)
        step = max(1, int(np.ceil(max(cat.shape) / max_side)))
        out.append(
            {
                "image_id": iid,
                "disagreement": 1 - p["pixel_agreement"],
                "a": palette[lut_a[seg_a]][::step, ::step],
                "b": palette[lut_b[seg_b]][::step, ::step],
                "categories": shaded[::step, ::step],
            }
        )
    note = f"Could not draw: {'; '.join(failed)}." if failed else None
    return out, note


def _rgb(color: str) -> tuple[int, int, int]:
    c = str(color).lstrip("#")
    try:
        return tuple(int(c[k : k + 2], 16) for k in (0, 2, 4))  # type: ignore[return-value]
    except ValueError:
        return (128, 128, 128)


def _inputs_from_report(report: dict):
    """Datasets, class space and per-image lookup tables rebuilt from what a report names: the
    same steps as :func:`segdata.analyses.consistency.compare` takes before counting."""
    from segdata.analyses import consistency as cons
    from segdata.analyses.consistency.comparison import Annotation, _whole_tables
    from segdata.format import Dataset

    pa_, pb_ = Path(report["a"]["path"]), Path(report["b"]["path"])
    ds_a = Dataset(pa_)
    two = pa_.resolve() != pb_.resolve()
    ds_b = Dataset(pb_) if two else ds_a
    layer_a, layer_b = report["a"]["layer"], report["b"]["layer"]
    map_file = (report.get("class_map") or {}).get("file")
    class_map = cons.read_class_map(map_file) if map_file else None
    unlabeled = (report.get("settings") or {}).get("unlabeled_classes") or None
    space, b_ids, b_index, _ = cons.build_class_space(ds_a, ds_b if two else None, class_map, unlabeled)

    def b_lookup(class_ids):
        pos = np.clip(np.searchsorted(b_ids, class_ids), 0, max(len(b_ids) - 1, 0))
        if not len(b_ids) or not np.array_equal(b_ids[pos], class_ids):
            raise ValueError(f"{ds_b.path}: class ids without a row in the class table")
        return b_index[pos]

    def luts_of(ids):
        la = ds_a.lookup_tables(layer_a, ids, partial(space.index_of, where=str(ds_a.path)))
        to_b = b_lookup if two else partial(space.index_of, where=str(ds_b.path))
        lb = ds_b.lookup_tables(layer_b, ids, to_b)
        return {i: (la[i], lb[i]) for i in ids}

    def whole_of(ids):
        wa = _whole_tables(Annotation(ds_a, layer_a), ids)
        wb = _whole_tables(Annotation(ds_b, layer_b), ids)
        return {i: (None if wa is None else wa[i], None if wb is None else wb[i]) for i in ids}

    return ds_a, layer_a, ds_b, layer_b, space, luts_of, whole_of

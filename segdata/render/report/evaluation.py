"""The report's evaluation section: one column per evaluation (``segdata eval --json``), per
bucket against the annotator ceiling, per class against training frequency, size recall."""

from __future__ import annotations

import numpy as np

from segdata.analyses.plotting import new_figure

from ..html import count, esc, figure, grid, interval, num, pct, svg, table

SIZES = ("small", "medium", "large")
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def evaluation_section(evals: list[tuple[str, dict]], top: int = 20) -> str:
    """The section of one or more evaluation reports, ``(label, report)`` pairs, in that order."""
    labels = [label for label, _ in evals]
    out = [
        '<p class="note">One column per evaluation: '
        + esc(", ".join(f"{label} ({_describe(r)})" for label, r in evals))
        + ". Absent classes (no ground truth, no prediction) are left out of every mean.</p>"
    ]
    out.append(_summary_table(evals))
    plots = [
        figure(
            svg(_bucket_figure(evals), "mIoU per frequency bucket against the annotator ceiling"),
            "mIoU per frequency bucket (bars, 95% intervals) and the annotator ceiling of the bucket "
            "(black line: mIoU of a second annotation scored against the first).",
        ),
        figure(
            svg(_class_figure(evals), "per-class IoU against training frequency"),
            "IoU of each class against the number of training images it appears in (log scale); "
            "grey crosses: the annotator ceiling of the class.",
        ),
    ]
    if any(r.get("size_recall") for _, r in evals):
        plots.append(
            figure(
                svg(_size_figure(evals), "recall by object size"),
                "Share of each object's pixels predicted as its class, over the objects of each COCO size bucket.",
            )
        )
    out.append(grid(*plots))
    out.append(_bucket_table(evals))
    if any(r.get("size_recall") for _, r in evals):
        out.append(
            table(
                ["object size", *(f"{label}: recall" for label in labels), "objects"],
                [
                    (
                        size,
                        *(pct(((r.get("size_recall") or {}).get(size) or {}).get("recall")) for _, r in evals),
                        count(((evals[0][1].get("size_recall") or {}).get(size) or {}).get("instances")),
                    )
                    for size in SIZES
                ],
                caption="Recall by object size",
            )
        )
    out.append(_class_table(evals, top))
    return "".join(out)


def _describe(r: dict) -> str:
    s = r.get("settings") or {}
    parts = [
        f"split {s['split']}" if s.get("split") else None,
        f"{s['images']:,} images" if s.get("images") else None,
        f"predictions {s['pred']}" if s.get("pred") else None,
    ]
    return ", ".join(p for p in parts if p) or "no settings recorded"


def _summary_table(evals) -> str:
    labels = [label for label, _ in evals]
    keys = [
        ("mIoU", "miou", num),
        ("pixel accuracy", "pixel_accuracy", pct),
        ("mean accuracy", "mean_accuracy", pct),
        ("fwIoU", "fw_iou", num),
    ]
    rows = []
    for name, key, fmt in keys:
        rows.append(
            (name, *(f"{fmt(r.get(key))} {interval((r.get('ci') or {}).get(key), fmt)}".strip() for _, r in evals))
        )
    if any("mean_iiou" in r for _, r in evals):
        rows.append(("mean iIoU", *(num(r.get("mean_iiou")) for _, r in evals)))
    if any(r.get("ceiling") for _, r in evals):
        rows.append(("annotator ceiling mIoU", *(num((r.get("ceiling") or {}).get("miou")) for _, r in evals)))
    rows.append(
        (
            "classes present",
            *(f"{sum(bool(c.get('present')) for c in r['per_class'])} of {len(r['per_class'])}" for _, r in evals),
        )
    )
    rows.append(("images", *(count((r.get("settings") or {}).get("images")) for _, r in evals)))
    rows.append(("convention", *((r.get("settings") or {}).get("convention") or "" for _, r in evals)))
    return table(["", *labels], rows, caption="Scores", numeric=[False] + [True] * len(labels))


def _bucket_names(evals, scored_only: bool = False) -> list[str]:
    """The buckets of the reports, in their order; with ``scored_only``, those with a class
    present in some report (a bucket of classes never seen has no mIoU to draw)."""
    names: dict[str, None] = {}
    for _, r in evals:
        for b in r.get("buckets") or []:
            if not scored_only or b.get("miou") is not None:
                names.setdefault(b["name"], None)
    return list(names)


def _bucket(r: dict, name: str) -> dict:
    return next((b for b in r.get("buckets") or [] if b["name"] == name), {})


def _bucket_figure(evals):
    fig, ax = new_figure((6.5, 4.5))
    names = _bucket_names(evals, scored_only=True)
    width = 0.8 / max(1, len(evals))
    x = np.arange(len(names))
    ceiling_drawn = False
    for k, (label, r) in enumerate(evals):
        pos = x - 0.4 + width * (k + 0.5)
        values = np.array([_value(_bucket(r, n).get("miou")) for n in names])
        lo_hi = [(_bucket(r, n).get("ci") or [None, None]) for n in names]
        err = np.array(
            [
                [v - lo if lo is not None else 0, hi - v if hi is not None else 0]
                for v, (lo, hi) in zip(np.nan_to_num(values), lo_hi)
            ]
        ).T.reshape(2, len(names))
        ax.bar(
            pos, np.nan_to_num(values), width * 0.92, yerr=err, capsize=3, color=_COLORS[k % len(_COLORS)], label=label
        )
        for p, n in zip(pos, names):
            c = _bucket(r, n).get("ceiling_miou")
            if c is not None:
                ax.hlines(
                    c,
                    p - width / 2,
                    p + width / 2,
                    colors="k",
                    lw=2.5,
                    label=None if ceiling_drawn else "annotator ceiling",
                )
                ceiling_drawn = True
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mIoU")
    ax.set_title("mIoU per frequency bucket")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return fig


def _value(v) -> float:
    return np.nan if v is None else float(v)


def _class_figure(evals):
    fig, ax = new_figure((6.5, 4.5))
    ceiling_drawn = False
    for k, (label, r) in enumerate(evals):
        rows = [c for c in r["per_class"] if c.get("iou") is not None and (c.get("train_images") or 0) > 0]
        if rows:
            ax.scatter(
                [c["train_images"] for c in rows],
                [c["iou"] for c in rows],
                s=12,
                alpha=0.75,
                color=_COLORS[k % len(_COLORS)],
                label=label,
            )
        ceil = [c for c in rows if c.get("ceiling_iou") is not None]
        if ceil and not ceiling_drawn:
            ax.scatter(
                [c["train_images"] for c in ceil],
                [c["ceiling_iou"] for c in ceil],
                s=14,
                marker="x",
                color="0.55",
                label="annotator ceiling",
            )
            ceiling_drawn = True
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("IoU")
    ax.set_title("per-class IoU against training frequency")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return fig


def _size_figure(evals):
    fig, ax = new_figure((6.5, 4.5))
    width = 0.8 / max(1, len(evals))
    x = np.arange(len(SIZES))
    for k, (label, r) in enumerate(evals):
        sr = r.get("size_recall") or {}
        values = [_value((sr.get(s) or {}).get("recall")) for s in SIZES]
        ax.bar(
            x - 0.4 + width * (k + 0.5),
            np.nan_to_num(values),
            width * 0.92,
            color=_COLORS[k % len(_COLORS)],
            label=label,
        )
    ax.set_xticks(
        x,
        [
            f"{s}\n{count(((evals[0][1].get('size_recall') or {}).get(s) or {}).get('instances'))} objects"
            for s in SIZES
        ],
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    ax.set_title("recall by object size")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return fig


def _bucket_table(evals) -> str:
    labels = [label for label, _ in evals]
    rows = []
    for name in _bucket_names(evals):
        first = next((_bucket(r, name) for _, r in evals if _bucket(r, name)), {})
        ceiling = next(
            (
                _bucket(r, name).get("ceiling_miou")
                for _, r in evals
                if _bucket(r, name).get("ceiling_miou") is not None
            ),
            None,
        )
        cells = []
        for _, r in evals:
            b = _bucket(r, name)
            cells.append(f"{num(b.get('miou'))} {interval(b.get('ci'), num)}".strip() if b else "")
            gap = b.get("difference")
            if gap is None and ceiling is not None and b.get("miou") is not None:
                gap = b["miou"] - ceiling
            cells.append(f"{num(gap)} {interval(b.get('difference_ci'), num)}".strip() if b else "")
        rows.append((name, f"{first.get('classes_present', '?')} of {first.get('classes', '?')}", num(ceiling), *cells))
    headers = ["bucket", "classes present", "ceiling mIoU"]
    for label in labels:
        headers += [f"{label}: mIoU", f"{label}: mIoU - ceiling"]
    return table(
        headers,
        rows,
        caption="mIoU per frequency bucket against the annotator ceiling",
        numeric=[False] + [True] * (len(headers) - 1),
    )


def _class_table(evals, top: int) -> str:
    labels = [label for label, _ in evals]
    by_class: dict = {}
    for k, (_, r) in enumerate(evals):
        for c in r["per_class"]:
            entry = by_class.setdefault(c["class_id"], {"row": c, "iou": [None] * len(evals)})
            entry["iou"][k] = c.get("iou")
    scored = [e for e in by_class.values() if any(v is not None for v in e["iou"])]
    scored.sort(key=lambda e: (np.mean([v for v in e["iou"] if v is not None]), e["row"]["class_id"]))
    rows = [
        (
            e["row"]["name"],
            e["row"].get("bucket", ""),
            count(e["row"].get("train_images")),
            pct(e["row"].get("train_pixel_share"), 3),
            num(e["row"].get("ceiling_iou")),
            *(num(v) for v in e["iou"]),
        )
        for e in scored[:top]
    ]
    return table(
        ["class", "bucket", "train images", "train pixel share", "ceiling IoU", *(f"{label}: IoU" for label in labels)],
        rows,
        caption=f"The {len(rows)} classes of lowest IoU (mean over the evaluations) of {len(scored)} scored",
        numeric=[False, False] + [True] * (3 + len(labels)),
    )

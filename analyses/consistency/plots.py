"""Plots of a :class:`ConsistencyResult`, drawn on :class:`matplotlib.figure.Figure` objects
(no pyplot: a notebook's backend is left alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .comparison import ConsistencyResult
from .counting import AGREE, CATEGORIES, NAMING, QUALITY, QUANTITY, disagreement_map, split_regions

_CATEGORY_COLORS = {
    AGREE: (0.82, 0.82, 0.82),
    QUALITY: (0.95, 0.65, 0.1),
    NAMING: (0.85, 0.1, 0.55),
    QUANTITY: (0.15, 0.45, 0.9),
}


def _hex(color: str) -> tuple[float, float, float]:
    c = color.lstrip("#")
    try:
        return tuple(int(c[k : k + 2], 16) / 255 for k in (0, 2, 4))  # type: ignore[return-value]
    except ValueError:
        return (0.5, 0.5, 0.5)


def plot_consistency(result: ConsistencyResult, directory: str | Path, top: int = 3, title: str = "") -> list[Path]:
    """Plots: for the ``top`` images with the most disagreement (fraction of compared pixels),
    the image (when its file exists), both annotations in class colours and the disagreement
    coloured by category; a bar chart of the breakdown; per-class IoU (B against A) against the
    class's pixels in A. PNG (and SVG for the charts). Returns the files written."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig, name, svg=True):
        for ext in ("png", "svg") if svg else ("png",):
            path = directory / f"{name}.{ext}"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            written.append(path)

    space = result.space
    palette = np.array([_hex(c) for c in space.colors])
    a, b = result.annotations[:2]
    pi = result.per_image
    frac = (pi["compared"] - pi["agree"]) / pi["compared"].clip(lower=1)
    worst = pi.assign(frac=frac).sort_values(["frac", "image_id"], ascending=[False, True]).head(top)
    for r in worst.itertuples(index=False):
        if r.frac <= 0:
            continue
        seg_a = a.dataset.segment_map(r.image_id, a.layer)
        seg_b = b.dataset.segment_map(r.image_id, b.layer)
        lut_a, lut_b = result.luts[r.image_id][:2]
        whole_a, whole_b = result.whole.get(r.image_id, (None, None))[:2]
        (obj_a, obj_lut_a), (obj_b, obj_lut_b) = (
            split_regions(seg_a, lut_a, whole_a),
            split_regions(seg_b, lut_b, whole_b),
        )
        cat = disagreement_map(obj_a, obj_b, obj_lut_a, obj_lut_b, space.unmapped)
        photo = None
        image_path = a.dataset.image_path(r.image_id)
        if image_path is not None and image_path.is_file():
            from PIL import Image

            try:
                with Image.open(image_path) as im:
                    photo = np.asarray(im.convert("RGB"))
            except OSError:
                photo = None
            if photo is not None and photo.shape[:2] != seg_a.shape:
                photo = None
        panels = ([("image", photo)] if photo is not None else []) + [
            (f"A: {a.layer}", palette[lut_a[seg_a]]),
            (f"B: {b.layer}", palette[lut_b[seg_b]]),
        ]
        overlay = np.zeros(cat.shape + (3,))
        base = (photo / 255.0 * 0.5 + 0.25) if photo is not None else np.full(cat.shape + (3,), 0.35)
        overlay[:] = base
        for code, color in _CATEGORY_COLORS.items():
            if code != AGREE:
                overlay[cat == code] = color
        panels.append(("disagreement", overlay))
        fig = Figure(figsize=(4.2 * len(panels), 4.2 * cat.shape[0] / max(cat.shape[1], 1) + 0.8))
        for ax, (name, arr) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
            ax.imshow(arr, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        handles = [
            Patch(color=_CATEGORY_COLORS[c], label=l)
            for c, l in ((QUALITY, "segmentation quality"), (NAMING, "naming"), (QUANTITY, "quantity"))
        ]
        fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8)
        fig.suptitle(f"{r.image_id}: {r.frac:.1%} of compared pixels disagree", fontsize=10)
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in r.image_id)
        save(fig, f"disagreement_{safe}", svg=False)

    bd = result.breakdown
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    names = ["segmentation\nquality", "naming", "quantity"]
    values = [bd[c] * 100 for c in CATEGORIES]
    ax.bar(names, values, color=[_CATEGORY_COLORS[QUALITY], _CATEGORY_COLORS[NAMING], _CATEGORY_COLORS[QUANTITY]])
    for i, v in enumerate(values):
        ax.annotate(f"{v:.2f}%", (i, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("% of compared pixels")
    agreement = result.figures["pixel_agreement"]
    ax.set_title(
        f"disagreement breakdown {title} (agreement {agreement:.1%})".strip()
        if agreement is not None
        else "disagreement breakdown"
    )
    save(fig, "breakdown")

    pc = result.per_class[~result.per_class["iou"].isna() & (result.per_class["pixels_a"] > 0)]
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    if len(pc):
        colors = {"rare": "tab:red", "common": "tab:orange", "frequent": "tab:green"}
        for bucket, group in pc.groupby("bucket"):
            ax.scatter(group["pixels_a"], group["iou"], s=10, color=colors.get(bucket, "tab:gray"), label=bucket)
        ax.set_xscale("log")
        ax.legend(fontsize=8, title="bucket (A)")
    ax.set_xlabel("pixels of the class in A")
    ax.set_ylabel("IoU of B against A")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"per-class agreement against frequency {title}".strip())
    save(fig, "class_iou_vs_frequency")
    return written

"""The report's dataset card: what the dataset is and what its conversion found."""

from __future__ import annotations

import re
from collections import Counter

from ..html import count, esc, kpis, pct, table


def dataset_section(ds, summary: dict) -> str:
    """Source family, layout and release, splits, images, classes, layers and the problems found
    at conversion, from the manifest and :func:`segdata.summary.summarize`."""
    m = ds.manifest
    source = m.get("source", {}) or {}
    out = [
        kpis(
            [
                (count(summary["images"]), "images"),
                (count(summary["classes"]), "classes in the class table"),
                (count(summary["classes_present"]), "classes with a segment"),
                (count(summary["segments"]), "segments"),
                (f"{summary['pixels'] / 1e6:,.1f} M", "pixels"),
                (count(len(summary["problems"])), "problems at conversion"),
            ]
        )
    ]
    rows = [
        ("name", summary["name"]),
        ("source family", source.get("family", "unknown")),
        ("layout", source.get("layout", "unknown")),
        ("release", source.get("release") or "not stated"),
        ("source root", source.get("root") or "not stated"),
        ("converted by", f"segdata {m.get('segdata_version', '?')} (format version {m.get('format_version')})"),
        ("dataset path", summary["path"]),
    ]
    out.append(table(["", ""], rows, caption="Source", numeric=[False, False]))
    split_rows = [
        (name, count(n), pct(n / summary["images"] if summary["images"] else None))
        for name, n in summary["splits"].items()
    ]
    out.append(table(["split", "images", "share"], split_rows, caption="Splits"))
    described = {layer["name"]: layer for layer in m.get("layers", [])}
    layer_rows = []
    for layer in summary["layers"]:
        info = described.get(layer["name"], {})
        layer_rows.append(
            (
                layer["name"],
                info.get("description") or "",
                info.get("parent") or "",
                count(layer["segments"]),
                count(layer["instances"]),
                pct(layer["labelled_fraction"]),
                pct(layer["ignore_fraction"]),
                pct(layer["unlabeled_fraction"]),
            )
        )
    out.append(
        table(
            ["layer", "description", "parent", "segments", "instances", "labelled px", "ignore px", "unlabeled px"],
            layer_rows,
            caption="Layers (pixel shares of all pixels of the images)",
        )
    )
    out.append(_problems(summary["problems"]))
    return "".join(out)


def _problems(problems: list[dict], limit: int = 25) -> str:
    if not problems:
        return "<h3>Problems found at conversion</h3><p>None: every image was converted as it ships.</p>"
    actions = Counter(p.get("action", "?") for p in problems)
    head = (
        "<h3>Problems found at conversion</h3><p>"
        + esc(
            f"{len(problems):,} recorded in segdata.json: " + ", ".join(f"{n:,} {a}" for a, n in actions.most_common())
        )
        + "</p>"
    )
    kinds = Counter(re.sub(r"\d+", "N", str(p.get("problem", ""))) for p in problems)
    parts = [head]
    if len(kinds) > 1 or len(problems) > limit:
        parts.append(
            table(["kind of problem (numbers as N)", "images"], [(k, count(n)) for k, n in kinds.most_common(15)])
        )
    rows = [
        (p.get("action", ""), p.get("image_id") or "", p.get("file", ""), p.get("problem", ""))
        for p in problems[:limit]
    ]
    caption = "Problems" if len(problems) <= limit else f"The first {limit} problems"
    parts.append(table(["action", "image", "file", "problem"], rows, caption=caption, numeric=[False] * 4))
    return "".join(parts)

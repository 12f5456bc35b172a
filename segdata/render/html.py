"""HTML views of segdata's results: the building blocks of the report (:mod:`segdata.render.report`)
and the compact cards a notebook shows (``_repr_html_`` of :class:`segdata.format.Dataset`, the
analyses' result records and :class:`segdata.metrics.Scores`).

Every function here reads a result record or its ``to_dict()`` and computes no figure. What it
writes is self-contained: styles inline, plots inline SVG (from :class:`matplotlib.figure.Figure`,
text kept as text, ids made unique per plot), rasters as ``data:`` PNG, no script and no URL, so a
page opens offline, prints, and can be sent as one file. matplotlib is imported only by
:func:`svg`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

#: the page's style sheet (inline); ``@media print`` keeps plots and tables whole on paper
CSS = """
:root { --ink: #1d2430; --muted: #5b6573; --rule: #d7dce3; --band: #f4f6f9; --accent: #2f6db5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
header.page { border-bottom: 3px solid var(--accent); margin-bottom: 12px; padding-bottom: 8px; }
header.page h1 { margin: 0 0 4px; font-size: 28px; }
header.page p { margin: 0; color: var(--muted); }
nav.toc { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 10px 0 6px; font-size: 14px; }
nav.toc a { color: var(--accent); text-decoration: none; }
section { margin-top: 34px; }
h2 { font-size: 22px; margin: 0 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--rule); }
h3 { font-size: 16px; margin: 18px 0 6px; }
p.note, .muted { color: var(--muted); font-size: 13px; }
.kpis { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0 14px; }
.kpi { border: 1px solid var(--rule); border-radius: 6px; padding: 8px 12px; min-width: 120px; background: var(--band); }
.kpi b { display: block; font-size: 20px; }
.kpi span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { padding: 3px 9px; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 2px 0 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 14px 22px; align-items: start; }
.row3 { display: grid; grid-template-columns: repeat(3, 1fr); gap: 10px; }
figure.overlay { border-top: 1px solid var(--rule); padding-top: 8px; }
figure { margin: 6px 0; break-inside: avoid; page-break-inside: avoid; }
figure svg.plot { display: block; width: 100%; height: auto; }
figure img { display: block; max-width: 100%; height: auto; image-rendering: pixelated; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 2px; }
.swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid #999; vertical-align: -1px; margin-right: 4px; }
.card { border: 1px solid var(--rule); border-radius: 6px; padding: 8px 12px; display: inline-block; }
.card h4 { margin: 0 0 4px; font-size: 15px; }
.card table { margin: 4px 0 0; }
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  section { break-before: page; page-break-before: always; margin-top: 0; }
  section:first-of-type { break-before: auto; page-break-before: auto; }
  .grid { display: block; }
  figure svg.plot, figure img { max-width: 16cm; }
  table, tr, .kpis { break-inside: avoid; page-break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


class Raw(str):
    """Text that is HTML already: :func:`table` and :func:`cell` insert it as it is."""


def esc(value) -> str:
    """``value`` as text, escaped for HTML (a :class:`Raw` goes through unchanged)."""
    if isinstance(value, Raw):
        return str(value)
    return html.escape("" if value is None else str(value), quote=True)


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x, digits: int = 1) -> str:
    """A fraction as a percentage (``0.824`` -> ``82.4%``); ``n/a`` for None or NaN."""
    return "n/a" if _missing(x) else f"{100 * float(x):.{digits}f}%"


def num(x, digits: int = 3) -> str:
    """A score with ``digits`` decimals; ``n/a`` for None or NaN."""
    return "n/a" if _missing(x) else f"{float(x):.{digits}f}"


def count(x) -> str:
    """An integer with thousands separators (``12,345``); ``n/a`` for None."""
    return "n/a" if _missing(x) else f"{int(x):,}"


def interval(ci, fmt=pct) -> str:
    """A confidence interval ``[lo, hi]`` as text (empty when absent)."""
    if not ci or len(ci) != 2 or any(_missing(v) for v in ci):
        return ""
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _is_number_text(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,.]+(%|e[-+]?\d+)?( \[.*\])?|n/a|\[.*\]|", text.strip()))


def table(
    headers: Sequence[str], rows: Iterable[Sequence], caption: str | None = None, numeric: Sequence[bool] | None = None
) -> str:
    """An HTML table; cells are escaped (pass :class:`Raw` for HTML). Columns are right-aligned
    where ``numeric`` says so (default: where every cell of the column reads as a number)."""
    rows = [[c if isinstance(c, Raw) else str("" if c is None else c) for c in r] for r in rows]
    if numeric is None:
        numeric = [
            bool(rows) and all(not isinstance(r[k], Raw) and _is_number_text(r[k]) for r in rows)
            for k in range(len(headers))
        ]
    cls = [' class="num"' if n else "" for n in numeric]
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    if any(headers):
        out.append("<thead><tr>" + "".join(f"<th{c}>{esc(h)}</th>" for h, c in zip(headers, cls)) + "</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td{c}>{esc(v)}</td>" for v, c in zip(r, cls)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def kpis(items: Iterable[tuple[str, str]]) -> str:
    """Headline figures as small boxes: ``(value, label)`` pairs."""
    return (
        '<div class="kpis">'
        + "".join(f'<div class="kpi"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for v, k in items)
        + "</div>"
    )


def svg(fig, label: str) -> str:
    """A matplotlib Figure as inline SVG markup for an HTML page.

    Text stays text (``svg.fonttype: none``: searchable, small); the XML prolog, the DOCTYPE, the
    metadata, comments and namespace declarations go (the HTML parser puts ``<svg>`` in the SVG
    namespace itself: the page holds no URL); every ``id`` gets a prefix unique to the page, so
    two plots' clip paths and markers never clash; the plot scales with its column, up to its
    natural width. ``label`` becomes its accessible name (``aria-label`` and ``<title>``).
    """
    from matplotlib import rc_context

    buf = io.StringIO()
    meta = {"Date": None, "Creator": None, "Format": None, "Type": None}
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "segdata"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata=meta)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = text.replace("xlink:href=", "href=")
    prefix = "p" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8] + "-"  # the same plot, the same ids
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
    head = re.match(r"<svg([^>]*)>", text)
    attrs = head.group(1)
    width = re.search(r'width="([\d.]+)pt"', attrs)
    max_width = f"max-width:{float(width.group(1)) * 4 / 3:.0f}px" if width else ""
    attrs = re.sub(r'\s(width|height)="[^"]*"', "", attrs)
    label_text = esc(label)
    new_head = (
        f'<svg{attrs} class="plot" role="img" aria-label="{label_text}" style="{max_width}"><title>{label_text}</title>'
    )
    return new_head + text[head.end() :].strip()


def png_data_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) uint8 (or float in [0, 1]) image as a ``data:image/png;base64,`` URI."""
    from PIL import Image

    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def img(rgb: np.ndarray, alt: str, width: int | None = None) -> str:
    """An ``<img>`` of an (H, W, 3) array, embedded as PNG."""
    w = f' width="{int(width)}"' if width else ""
    return f'<img src="{png_data_uri(rgb)}" alt="{esc(alt)}"{w}>'


def figure(content: str, caption: str | None = None) -> str:
    """``<figure>`` around a plot or image, with an optional caption (escaped)."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{content}{cap}</figure>"


def grid(*items: str) -> str:
    """Figures side by side (one column when printed or on a narrow screen)."""
    return '<div class="grid">' + "".join(items) + "</div>"


def section(key: str, title: str, body: str) -> str:
    """One section of the page, anchored at ``#key``."""
    return f'<section id="{esc(key)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: ``sections`` are ``(key, title, body html)``."""
    toc = "".join(f'<a href="#{esc(k)}">{esc(t)}</a>' for k, t, _ in sections)
    body = "".join(section(k, t, b) for k, t, b in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="segdata"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head>\n"
        f'<body><main><header class="page"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p>'
        f'<nav class="toc">{toc}</nav></header>\n{body}</main></body></html>\n'
    )


def swatch(color) -> Raw:
    """A small square of ``color`` (``#rrggbb`` or an RGB triple in [0, 1])."""
    if not isinstance(color, str):
        color = "#" + "".join(f"{round(255 * float(c)):02x}" for c in color[:3])
    return Raw(f'<span class="swatch" style="background:{esc(color)}"></span>')


# --------------------------------------------------------------------------- notebook cards


_CELL = "padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #e3e6ea"


def _card(title: str, rows: Sequence[tuple[str, str]]) -> str:
    """A titled two-column table with inline styles (a notebook applies no style sheet of ours)."""
    body = "".join(
        f'<tr><th style="{_CELL};font-weight:600">{esc(k)}</th><td style="{_CELL}">{esc(v)}</td></tr>' for k, v in rows
    )
    return (
        '<div class="card" style="border:1px solid #d7dce3;border-radius:6px;padding:6px 10px;display:inline-block">'
        f'<div style="font-weight:600;margin-bottom:4px">{esc(title)}</div>'
        f'<table style="border-collapse:collapse;font-size:13px">{body}</table></div>'
    )


def dataset_card(ds) -> str:
    """A compact card of a :class:`segdata.format.Dataset`: name, family and layout, splits,
    images, classes, layers (from the manifest and the image and class tables)."""
    source = ds.manifest.get("source", {}) or {}
    family = " ".join(str(source[k]) for k in ("family", "layout", "release") if source.get(k)) or "unknown"
    splits = ds.images["split"].value_counts().sort_index()
    rows = [
        ("source", family),
        ("images", count(len(ds.images))),
        ("splits", ", ".join(f"{k} {v:,}" for k, v in splits.items()) or "none"),
        ("classes", count(len(ds.classes))),
        ("layers", ", ".join(ds.layers) or "none"),
        ("path", str(ds.path)),
    ]
    problems = ds.manifest.get("problems", [])
    if problems:
        rows.append(("problems at conversion", count(len(problems))))
    return _card(f"segdata dataset {ds.name}", rows)


def longtail_card(result) -> str:
    """A compact card of a :class:`segdata.analyses.longtail.LongtailResult`."""
    report = result.to_dict()
    cov = report["classes_for_coverage"]
    fit = report["powerlaw"]
    counts = report["buckets"]["counts"]
    rows = [
        ("layer / split", f"{report['layer']} / {report['split'] or 'all'}"),
        ("classes present", f"{report['n_classes_present']:,} of {report['n_classes']:,}"),
        ("top-k for 90 / 95 / 99% of pixels", f"{cov['0.9']} / {cov['0.95']} / {cov['0.99']}"),
        ("power law alpha", num(fit.get("alpha"), 2) if "alpha" in fit else fit.get("error", "n/a")),
        ("Gini (pixels)", num(report["gini"])),
        ("buckets", ", ".join(f"{k} {v}" for k, v in counts.items())),
    ]
    return _card(f"long tail of {report['dataset']}", rows)


def sizes_card(result) -> str:
    """A compact card of a :class:`segdata.analyses.small_objects.SizeResult`."""
    o = result.overall
    b = o["size_buckets"]
    rows = [
        ("layer / split", f"{result.layer} / {result.split or 'all'}"),
        (result.unit, count(o["objects"])),
        ("small / medium / large", f"{b['small']:,} / {b['medium']:,} / {b['large']:,}"),
        ("below one stride-8 / 16 / 32 cell", " / ".join(pct(o["below_stride"][s]) for s in ("8", "16", "32"))),
        ("median area (px)", num(o["area_quantiles"].get("q50"), 0)),
    ]
    return _card(f"object sizes of {result.dataset}", rows)


def consistency_card(result) -> str:
    """A compact card of a consistency comparison: a
    :class:`segdata.analyses.consistency.ConsistencyResult` or its report dict."""
    report = result if isinstance(result, dict) else result.report(per_image=False)
    bd = report["breakdown"]
    band = (report.get("boundary") or {}).get("band") or {}
    interior = (report.get("boundary") or {}).get("interior") or {}
    rows = [
        (
            "A / B",
            f"{report['a']['layer']} of {report['a']['dataset']} / {report['b']['layer']} of {report['b']['dataset']}",
        ),
        ("images", count(report["images"])),
        (
            "pixel agreement",
            f"{pct(report['pixel_agreement'])} {interval(report['ci'].get('pixel_agreement'))}".strip(),
        ),
        ("mIoU of B against A", num(report["miou"])),
        ("quality / naming / quantity", " / ".join(pct(bd[c]) for c in ("segmentation_quality", "naming", "quantity"))),
        ("boundary band / interior", f"{pct(band.get('agreement'))} / {pct(interior.get('agreement'))}"),
    ]
    return _card("annotation consistency", rows)


def scores_card(scores, names: Sequence[str] | None = None, top: int = 10) -> str:
    """A compact card of :class:`segdata.metrics.Scores`: the means and the classes of lowest
    IoU among those present (``names`` labels the class indices)."""
    rows = [
        ("mIoU", num(scores.miou)),
        ("pixel accuracy", pct(scores.pixel_accuracy)),
        ("mean accuracy", pct(scores.mean_accuracy)),
        ("fwIoU", num(scores.fw_iou)),
        ("classes present", f"{int(np.count_nonzero(scores.present))} of {len(scores.present)}"),
    ]
    iou = np.asarray(scores.iou, dtype=np.float64)
    present = np.flatnonzero(~np.isnan(iou))
    worst = present[np.argsort(iou[present], kind="stable")][:top]
    if len(worst):
        label = (lambda k: names[k]) if names is not None else (lambda k: f"class {k}")
        rows.append(("lowest IoU", ", ".join(f"{label(k)} {iou[k]:.2f}" for k in worst)))
    return _card("scores", rows)


def evaluation_card(result) -> str:
    """A compact card of an evaluation: a ``segdata.eval`` result (its ``to_dict()``) or the dict
    of ``segdata eval --json``: the means with their intervals, and each bucket's mIoU next to its
    annotator ceiling."""
    r = result if isinstance(result, dict) else result.to_dict()
    ci = r.get("ci") or {}
    rows = [
        ("mIoU", f"{num(r.get('miou'))} {interval(ci.get('miou'), num)}".strip()),
        ("pixel accuracy", f"{pct(r.get('pixel_accuracy'))} {interval(ci.get('pixel_accuracy'))}".strip()),
        ("mean accuracy", pct(r.get("mean_accuracy"))),
    ]
    if "mean_iiou" in r:
        rows.append(("mean iIoU", num(r["mean_iiou"])))
    for b in r.get("buckets") or []:
        ceiling = f" (ceiling {num(b['ceiling_miou'])})" if b.get("ceiling_miou") is not None else ""
        rows.append((f"{b['name']} ({b.get('classes_present', '?')} classes)", f"{num(b.get('miou'))}{ceiling}"))
    settings = r.get("settings") or {}
    title = "evaluation" + (f" of {settings['name']}" if settings.get("name") else "")
    return _card(title, rows)


def build_report(*args, **kwargs) -> str:
    """See :func:`segdata.render.report.build_report`."""
    from .report import build_report as build

    return build(*args, **kwargs)


def write_report(*args, **kwargs):
    """See :func:`segdata.render.report.write_report`."""
    from .report import write_report as write

    return write(*args, **kwargs)

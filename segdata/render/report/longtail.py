"""The report's long-tail section: rank-frequency with the power-law fit, coverage, head and
tail, buckets (the plots are :mod:`segdata.analyses.longtail`'s own)."""

from __future__ import annotations

from segdata.analyses import longtail as lt

from ..html import count, esc, figure, grid, kpis, num, pct, svg, table

COVERAGE_FRACTIONS = (0.9, 0.95, 0.99)


def longtail_section(result: lt.LongtailResult, top: int = 15) -> str:
    """The section of a :class:`~segdata.analyses.longtail.LongtailResult`; every figure read
    from ``result`` or its ``to_dict()``."""
    report = result.to_dict()
    freq = result.frequencies
    cov = report["classes_for_coverage"]
    fit = report["powerlaw"]
    acc = report["accounting"]
    where = esc(f"layer {report['layer']}" + (f", split {report['split']}" if report["split"] else ", all splits"))
    out = [
        f'<p class="note">{where}; shares are of the labelled pixels (classes not flagged ignore). '
        f"Rule of the buckets: {esc(report['buckets']['rule'])}.</p>",
        kpis(
            [
                (f"{report['n_classes_present']:,} / {report['n_classes']:,}", "classes present / in the table"),
                *((str(cov[f"{f:g}"]), f"classes for {f:.0%} of the pixels") for f in COVERAGE_FRACTIONS),
                (_alpha(fit), "power-law alpha (pixels per class)"),
                (num(report["gini"]), "Gini of pixels per class"),
                (pct(acc["labelled_fraction"]), "pixels labelled"),
            ]
        ),
    ]
    fits = result.fits
    out.append(
        grid(
            figure(
                svg(lt.rank_frequency_figure(freq, fits=fits, title=report["dataset"]), "rank-frequency plot"),
                "Pixels and instances per class against rank, log-log; lines: the fitted discrete power laws "
                "over their tails (x >= xmin).",
            ),
            figure(
                svg(
                    lt.coverage_figure(freq, title=report["dataset"], fractions=COVERAGE_FRACTIONS, legend=True),
                    "coverage curve",
                ),
                "Share of the labelled pixels held by the top-k classes; dashed: the k reaching "
                + ", ".join(f"{f:.0%}" for f in COVERAGE_FRACTIONS)
                + ".",
            ),
            figure(
                svg(
                    lt.buckets_figure(freq, result.buckets, result.rule, title=report["dataset"]), "classes per bucket"
                ),
                "Classes per frequency bucket and the pixel share each holds.",
            ),
        )
    )
    out.append(_fit_table(fit))
    out.append(
        table(
            ["share of labelled pixels", "top-k classes"],
            [(pct(float(f), 2), count(k)) for f, k in cov.items()],
            caption="Coverage",
        )
    )
    present = freq[freq["pixels"] > 0]
    total = max(1, int(present["pixels"].sum()))
    cumulative = present["pixels"].cumsum() / total
    head = present.head(top)
    out.append(_class_table(head, cumulative, f"Head: the {len(head)} classes with most pixels"))
    tail = present.tail(top).iloc[::-1]
    out.append(_class_table(tail, cumulative, f"Tail: the {len(tail)} present classes with fewest pixels"))
    absent = len(freq) - len(present)
    if absent:
        names = ", ".join(freq.loc[freq["pixels"] == 0, "name"].astype(str).head(12))
        more = " ..." if absent > 12 else ""
        out.append(f'<p class="note">{absent:,} classes of the table have no pixel here ({names}{more}).</p>')
    buckets = lt.bucket_table(freq, result.buckets, result.rule)
    out.append(
        table(
            ["bucket", "classes", "pixels", "share of pixels"],
            [(name, count(r.classes), count(r.pixels), pct(r.pixel_share, 2)) for name, r in buckets.iterrows()],
            caption=f"Buckets ({report['buckets']['rule']})",
        )
    )
    return "".join(out)


def _alpha(fit: dict) -> str:
    if "alpha" not in fit:
        return "n/a"
    return f"{fit['alpha']:.2f} ± {fit['sigma']:.2f}"


def _fit_table(fit: dict) -> str:
    rows = []
    for name, f in (("pixels", fit), ("instances", fit.get("instances", {}))):
        if "alpha" in f:
            rows.append(
                (
                    name,
                    num(f["alpha"], 3),
                    num(f["sigma"], 3),
                    count(f["xmin"]),
                    f"{f['n_tail']:,} of {f['n']:,}",
                    num(f["rank_exponent"], 3),
                    num(f["ks"], 3),
                    num(f["p_value"], 2) if f.get("p_value") is not None else "not computed",
                )
            )
        else:
            rows.append((name, f.get("error", "no fit"), "", "", "", "", "", ""))
    return table(
        ["per class", "alpha", "sigma", "xmin", "classes in the tail", "rank exponent s", "KS", "p (bootstrap)"],
        rows,
        caption="Power-law fits (Clauset, Shalizi and Newman 2009; p > 0.1: plausible)",
    )


def _class_table(rows, cumulative, caption: str) -> str:
    return table(
        ["rank", "class", "id", "pixels", "share", "cumulative", "images", "train images", "instances", "bucket"],
        [
            (
                r.rank,
                r.name,
                r.class_id,
                count(r.pixels),
                pct(r.pixel_share, 2),
                pct(cumulative.loc[i], 2),
                count(r.images),
                count(r.train_images),
                count(r.instances),
                r.bucket,
            )
            for i, r in zip(rows.index, rows.itertuples(index=False))
        ],
        caption=caption,
    )

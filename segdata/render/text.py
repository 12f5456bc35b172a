"""Terminal views of segdata's results (rich text), for the command line.

Each function takes a ``rich.console.Console`` and the JSON-ready dict of a result record (its
``to_dict()`` or ``report()``) and prints it; nothing here computes a figure. The HTML report
will sit next to this module, reading the same dicts.
"""

from __future__ import annotations

import re
from collections import Counter

from rich.table import Table


def pct(x) -> str:
    """A fraction as a percentage with two decimals; ``n/a`` for None."""
    return "n/a" if x is None else f"{x:.2%}"


def num(x) -> str:
    """A score with three decimals; ``n/a`` for None."""
    return "n/a" if x is None else f"{x:.3f}"


def problems(console, found: list[dict], limit: int = 20) -> None:
    """Every skipped image, and the other findings one per line up to ``limit``; beyond that,
    one line per kind of finding with its count (the full list is in segdata.json)."""
    notes = [p for p in found if p["action"] != "skipped"]
    for p in found:
        if p["action"] == "skipped" or len(notes) <= limit:
            label = "skipped" if p["action"] == "skipped" else "note"
            console.print(f"  {label}: {p['file']}: {p['problem']}", soft_wrap=True, markup=False)
    if len(notes) > limit:
        kinds = Counter(re.sub(r"\d+", "N", p["problem"]) for p in notes)
        for kind, count in kinds.most_common():
            console.print(f"  note ({count} images): {kind}", soft_wrap=True, markup=False)


def summary(console, summary: dict) -> None:
    console.print(
        f"[bold]{summary['name']}[/] ({summary['source']['family']} {summary['source']['layout']}): "
        f"{summary['images']} images, {summary['classes']} classes, {summary['segments']} segments"
    )
    console.print("splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    # pixels in the words of `analyze longtail`: labelled (classes not flagged ignore), ignore, unlabeled
    table = Table("layer", "segments", "instances", "labelled", "ignore", "unlabeled", title="layers (pixels)")
    for layer in summary["layers"]:
        table.add_row(
            layer["name"],
            str(layer["segments"]),
            str(layer["instances"]),
            pct(layer["labelled_fraction"]),
            pct(layer.get("ignore_fraction")),
            pct(layer.get("unlabeled_fraction")),
        )
    console.print(table)
    top = Table(
        "class",
        "name",
        "pixels",
        "share",
        "images",
        title=f"top {len(summary['top_classes'])} classes by pixels (share of labelled pixels)",
    )
    for c in summary["top_classes"]:
        top.add_row(str(c["class_id"]), c["name"], str(c["pixels"]), f"{c['pixel_share']:.2%}", str(c["images"]))
    console.print(top)
    if summary["problems"]:
        console.print(f"{len(summary['problems'])} problem(s) recorded at conversion:")
        for p in summary["problems"][:20]:
            console.print(f"  {p['action']}: {p['file']}: {p['problem']}", soft_wrap=True, markup=False)


def longtail(console, report: dict, top: int = 15) -> None:
    acc = report["accounting"]
    console.print(
        f"[bold]{report['dataset']}[/] layer {report['layer']}"
        + (f", split {report['split']}" if report["split"] else "")
        + f": {report['n_classes_present']} of {report['n_classes']} classes present"
    )
    console.print(
        f"pixels: {acc['labelled_fraction']:.2%} labelled, {acc['ignore_fraction']:.2%} ignore, "
        f"{acc['unlabeled_fraction']:.2%} unlabeled (of {acc['total']:,})"
    )
    cover = report["classes_for_coverage"]
    console.print(
        f"coverage: top {cover['0.5']} classes hold 50% of labelled pixels, {cover['0.9']} hold 90%, "
        f"{cover['0.95']} hold 95%"
    )
    pl = report["powerlaw"]
    if "alpha" in pl:
        p = "n/a" if pl["p_value"] is None else f"{pl['p_value']:.2f}"
        console.print(
            f"power law (pixels per class, CSN): alpha {pl['alpha']:.3f} ± {pl['sigma']:.3f} above xmin "
            f"{pl['xmin']:,} ({pl['n_tail']} classes), rank exponent {pl['rank_exponent']:.3f}, KS {pl['ks']:.3f}, "
            f"p {p}; Gini {report['gini']:.3f}"
        )
    console.print(
        "buckets ("
        + report["buckets"]["rule"]
        + "): "
        + ", ".join(f"{k} {v}" for k, v in report["buckets"]["counts"].items())
    )
    table = Table("rank", "class", "name", "pixels", "share", "images", "instances", "bucket")
    for c in report["classes"][:top]:
        table.add_row(
            str(c["rank"]),
            str(c["class_id"]),
            c["name"],
            f"{c['pixels']:,}",
            f"{c['pixel_share']:.2%}",
            str(c["images"]),
            str(c["instances"]),
            c["bucket"],
        )
    console.print(table)
    if report.get("plots"):
        console.print("plots: " + ", ".join(report["plots"]))


def consistency(console, report: dict) -> None:
    def interval(key, fmt=pct):
        lo_hi = report["ci"].get(key)
        return f" ({fmt(lo_hi[0])}..{fmt(lo_hi[1])})" if lo_hi and lo_hi[0] is not None else ""

    a, b = report["a"], report["b"]
    console.print(
        f"[bold]{b['dataset']}:{b['layer']}[/] against [bold]{a['dataset']}:{a['layer']}[/]: "
        f"{report['images']} images compared",
        soft_wrap=True,
    )
    unmatched = report["unmatched"]
    left = {k: len(v) for k, v in unmatched.items() if v}
    if left:
        console.print("not compared: " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in left.items()))
    level = report["ci"].get("level", 0.95)
    console.print(
        f"pixel agreement {pct(report['pixel_agreement'])}{interval('pixel_agreement')}, leaving out void "
        f"{pct(report['pixel_agreement_excluding_void'])}{interval('pixel_agreement_excluding_void')}"
        + (f"  [{level:.0%} bootstrap intervals]" if report["ci"].get("bootstrap") else ""),
        soft_wrap=True,
    )
    console.print(
        f"B against A: pixel accuracy {pct(report['pixel_accuracy'])}{interval('pixel_accuracy')}, mIoU "
        f"{num(report['miou'])}{interval('miou', num)}; symmetric mIoU {num(report['miou_symmetric'])}"
        f"{interval('miou_symmetric', num)}; kappa {num(report['kappa'])}{interval('kappa', num)}",
        soft_wrap=True,
    )
    bd = report["breakdown"]
    console.print(
        f"disagreement {pct(bd['disagreement'])}: segmentation quality {pct(bd['segmentation_quality'])}, "
        f"naming {pct(bd['naming'])}, quantity {pct(bd['quantity'])}",
        soft_wrap=True,
    )
    if report["boundary"]:
        bnd = report["boundary"]
        console.print(
            f"boundary band (K = {bnd['k']} px, {pct(bnd['band']['share'])} of pixels): agreement "
            f"{pct(bnd['band']['agreement'])}; interior {pct(bnd['interior']['agreement'])}"
        )
    ceiling = report["ceiling"]
    table = Table(
        "bucket (of A)", "classes", "pixel accuracy", "mIoU", title="human ceiling for a model scored against A"
    )
    table.add_row("all", str(len(ceiling["classes"])), pct(ceiling["pixel_accuracy"]), num(ceiling["miou"]))
    for name in ceiling["buckets"]["order"]:
        v = ceiling["buckets"]["values"][name]
        table.add_row(name, str(v["classes"]), pct(v["pixel_accuracy"]), num(v["miou"]))
    console.print(table)
    if report.get("pairwise"):
        pw = report["pairwise"]
        t = Table("", *pw["annotations"], title="pairwise pixel agreement")
        for name, row in zip(pw["annotations"], pw["pixel_agreement"]):
            t.add_row(name, *[pct(x) for x in row])
        console.print(t)
        console.print(
            "agreement with the majority-vote consensus: "
            + ", ".join(f"{c['annotation']} {pct(c['pixel_agreement'])}" for c in report["consensus"])
        )
    if report.get("ceiling_file"):
        console.print(f"ceiling written to {report['ceiling_file']}")
    if report.get("plots"):
        console.print("plots: " + ", ".join(report["plots"]), soft_wrap=True)


def small_objects(console, report: dict, top: int = 15) -> None:
    """``analyze small-objects``: COCO size buckets, stride shares, the per-class table."""
    b = report["size_buckets"]
    n = max(1, report["objects"])
    console.print(
        f"[bold]{report['dataset']}[/] layer {report['layer']}: {report['objects']:,} {report['unit']}"
        + (f" ({report['zero_area']} listed without visible pixels, left out)" if report["zero_area"] else "")
    )
    console.print(
        f"COCO sizes: small {b['small']:,} ({b['small'] / n:.1%}), medium {b['medium']:,} "
        f"({b['medium'] / n:.1%}), large {b['large']:,} ({b['large'] / n:.1%})"
    )
    console.print("below one cell of stride " + ", ".join(f"{s}: {v:.1%}" for s, v in report["below_stride"].items()))
    table = Table("class", "name", report["unit"], "small", "medium", "large", "median px", "< 16² px")
    for c in report["classes"][:top]:
        table.add_row(
            str(c["class_id"]),
            c["name"],
            str(c["instances"]),
            str(c["small"]),
            str(c["medium"]),
            str(c["large"]),
            f"{c['median_area']:,.0f}",
            f"{c['below_stride']['16']:.0%}",
        )
    console.print(table)
    if report.get("plots"):
        console.print("plots: " + ", ".join(report["plots"]))


def conversion(console, report: dict) -> None:
    """``convert``: what was written, and every skipped image or note."""
    console.print(
        f"{report['path']}: {report['images']} images, {report['segments']} segments, {report['classes']} classes "
        f"(layout {report['layout']}, layers {', '.join(report['layers'])}) in {report['seconds']:.1f} s"
        + (f"; {report['resumed_images']} images kept from the interrupted run" if report.get("resumed_images") else "")
    )
    skipped = [p for p in report["problems"] if p["action"] == "skipped"]
    problems(console, report["problems"])
    if skipped:
        console.print(f"{len(skipped)} image(s) skipped; listed under 'problems' in {report['path']}/segdata.json")


def export(console, out, report: dict) -> None:
    """``export``: the report's scalar fields on one line, then what is missing."""
    console.print(
        f"{out}: "
        + ", ".join(f"{k} {v}" for k, v in report.items() if isinstance(v, (int, float, str)) and k != "path"),
        soft_wrap=True,
        markup=False,
    )
    for key in ("missing_images", "problems"):
        if report.get(key):
            console.print(f"{key}: {report[key]}", soft_wrap=True, markup=False)


def findings(console, path, found: list[dict]) -> None:
    """``validate``: one line per finding, then the verdict."""
    for f in found:
        console.print(f"{f['where']}: {f['problem']}", soft_wrap=True, markup=False)
    console.print(f"{path}: {'valid' if not found else f'{len(found)} problem(s)'}")


def vocabulary(console, report: dict) -> None:
    """``vocab``: what the vocabulary covers and what it drops."""
    console.print(
        f"{report['file']}: {report['classes']} classes covering {report['pixel_coverage']:.2%} of labelled pixels; "
        f"{report['classes_dropped']} classes dropped holding {report['pixels_dropped_share']:.2%}",
        soft_wrap=True,
    )
    if report["largest_dropped"]:
        console.print(
            "largest dropped: " + ", ".join(f"{d['name']} ({d['pixel_share']:.3%})" for d in report["largest_dropped"]),
            soft_wrap=True,
            markup=False,
        )


def demo(console, result: dict, n_images: int) -> None:
    """``demo``: each step's headline figures, and what to run next."""
    console.print(f"generated {result['source']} ({n_images} learnable images, ADE20K 2021_17_01 layout)")
    console.print(
        f"converted to {result['dataset']} in {result['convert_seconds']:.1f} s; "
        f"validate: {'valid' if not result['validation'] else result['validation']}"
    )
    summary(console, result["summary"])
    tail, sizes = result["longtail"], result["small_objects"]
    cover, pl = tail["classes_for_coverage"], tail["powerlaw"]
    law = (
        f"power law alpha {pl['alpha']:.2f} (rank exponent {pl['rank_exponent']:.2f}, p {num(pl['p_value'])})"
        if pl.get("alpha") is not None
        else f"no power-law fit ({pl.get('error', 'too few classes')})"
    )
    console.print(
        f"long tail: {cover['0.9']} classes cover 90% of labelled pixels, {cover['0.95']} cover 95%; {law}; "
        f"Gini {tail['gini']:.2f}; buckets " + ", ".join(f"{k} {v}" for k, v in tail["buckets"]["counts"].items()),
        markup=False,
    )
    b, n = sizes["size_buckets"], max(1, sizes["objects"])
    console.print(
        f"object sizes: {b['small'] / n:.0%} small, {b['medium'] / n:.0%} medium, {b['large'] / n:.0%} large "
        f"(COCO buckets); {sizes['below_stride']['16']:.0%} below one cell of a stride-16 network"
    )
    c = result["consistency"]
    if c:
        gen, pub, br = c["generator"], c["published"], c["breakdown"]
        console.print(
            f"annotation ceiling (a simulated re-annotation of {c['images']} images): pixel agreement "
            f"{c['pixel_agreement']:.1%} (generated {gen['pixel_agreement']:.1%}, ADE20K's annotator "
            f"{pub['pixel_agreement']:.1%}); disagreement "
            + ", ".join(f"{k.replace('_', ' ')} {br[k]:.1%} ({gen[k]:.1%}; {pub[k]:.1%})" for k in br)
            + f"; mIoU {c['miou']:.3f}; ceiling written to {c['ceiling']}",
            markup=False,
        )
    training = result.get("training") or {}
    if "skipped" in training:
        console.print(f"skipped the training and the evaluation: {training['skipped']}", markup=False)
    evaluation = result.get("evaluation") or {}
    if evaluation:
        table = Table("sampling", "mIoU", *[f"{b} mIoU" for b in _bucket_names(evaluation)], title="baselines on val")
        ceiling_row = None
        for sampler, e in evaluation.items():
            run = training.get(sampler, {})
            label = f"{sampler}, {run.get('loss', 'ce')} loss ({run.get('loss_first', float('nan')):.2f} -> {run.get('loss_last', float('nan')):.2f})"
            cells = [
                _with_ci(e["buckets"].get(b, {}).get("miou"), e["buckets"].get(b, {}).get("ci"))
                for b in _bucket_names(evaluation)
            ]
            table.add_row(label, _with_ci(e["miou"], e.get("ci")), *cells)
            if e.get("ceiling_miou") is not None:
                ceiling_row = ["annotators (ceiling)", num(e["ceiling_miou"])] + [
                    num(e["buckets"].get(b, {}).get("ceiling_miou")) for b in _bucket_names(evaluation)
                ]
        if ceiling_row:
            table.add_row(*ceiling_row)
        console.print(table)
        rare = {s: e["buckets"].get("rare", {}).get("miou") for s, e in evaluation.items()}
        human = next((e["buckets"].get("rare", {}).get("ceiling_miou") for e in evaluation.values()), None)
        if any(v is not None for v in rare.values()):
            console.print(
                "the tail: rare-class mIoU "
                + ", ".join(f"{s} {num(v)}" for s, v in rare.items())
                + (f"; the annotators reach {num(human)} on the same classes" if human is not None else ""),
                markup=False,
            )
    if result.get("report"):
        console.print(f"report: {result['report']}", markup=False)
    console.print("next: segdata analyze longtail " + result["dataset"] + " --plots plots/", markup=False)
    if c:
        console.print(
            "      segdata analyze consistency " + c["dataset"] + " --layers objects,reannotation --plots plots/",
            markup=False,
        )


def _bucket_names(evaluation: dict) -> list[str]:
    names: list[str] = []
    for e in evaluation.values():
        names += [b for b in e["buckets"] if b not in names]
    return names


def _with_ci(value, ci) -> str:
    return num(value) + (f" ({num(ci[0])}..{num(ci[1])})" if ci else "")


def _interval(ci) -> str:
    return "" if not ci else f"{num(ci[0])}..{num(ci[1])}"


def evaluation(console, report: dict, top: int = 10) -> None:
    """``segdata eval``: the overall figures, the buckets next to the ceiling, size recall, the
    classes, what was ignored and skipped."""
    s = report["settings"]
    ceiling = report.get("ceiling")
    level = report.get("ci", {}).get("level", 0.95)
    console.print(
        f"[bold]{s.get('name', s['dataset'])}[/] split {s['split']}: {s['images']} images, {s['classes']} classes, "
        f"predictions in {s['pred_ids']} ids, convention {s['convention']}"
    )
    console.print(s["ignore"], soft_wrap=True, markup=False)
    overall = Table("figure", "model", f"{level:.0%} interval", "ceiling", title="overall")
    ci = report.get("ci", {})
    rows = [("mIoU", "miou"), ("pixel accuracy", "pixel_accuracy"), ("mean accuracy", "mean_accuracy")]
    rows += [("fwIoU", "fw_iou")] + ([("mean iIoU", "mean_iiou")] if "mean_iiou" in report else [])
    for label, key in rows:
        human = ""
        if ceiling and key in ("miou", "pixel_accuracy"):
            human = num(ceiling.get(key))
        overall.add_row(label, num(report.get(key)), _interval(ci.get(key)), human)
    console.print(overall)
    if report.get("buckets"):
        columns = ["bucket", "classes", "present", "mIoU", f"{level:.0%} interval"]
        if ceiling:
            columns += ["ceiling", "covered", "model - ceiling"]
        table = Table(*columns, title=f"by training frequency ({s.get('buckets')}, on {s.get('freq_split')})")
        for b in report["buckets"]:
            row = [b["name"], str(b["classes"]), str(b["classes_present"]), num(b["miou"]), _interval(b.get("ci"))]
            if ceiling:
                diff = b.get("difference")
                row += [
                    num(b.get("ceiling_miou")),
                    f"{b.get('ceiling_classes', 0)}/{b['classes']}",
                    ("n/a" if diff is None else f"{diff:+.3f}")
                    + (f" ({_interval(b.get('difference_ci'))})" if b.get("difference_ci") else ""),
                ]
            table.add_row(*row)
        console.print(table)
    if report.get("size_recall"):
        table = Table("size", "instances", "recall", title="instances found (>= half their pixels predicted)")
        for name, v in report["size_recall"].items():
            table.add_row(name, str(v["instances"]), pct(v["recall"]))
        console.print(table)
    scored = [c for c in report["per_class"] if c["iou"] is not None]
    if scored:
        worst = sorted(scored, key=lambda c: c["iou"])[:top]
        table = Table("train id", "class", "IoU", "accuracy", "bucket", "ceiling", title=f"lowest {len(worst)} IoU")
        for c in worst:
            table.add_row(
                str(c["train_id"]),
                c["name"],
                num(c["iou"]),
                pct(c["accuracy"]),
                c["bucket"] or "",
                num(c["ceiling_iou"]),
            )
        console.print(table)
    absent = [c["name"] for c in report["per_class"] if not c["present"]]
    if absent:
        console.print(f"absent (no ground truth, no prediction; left out of the means): {len(absent)} classes")
    printed = report.get("convention", {}).get("printed")
    if printed and s["convention"] != "segdata":
        console.print(f"as {s['convention']} prints it: " + ", ".join(f"{k} {v}" for k, v in printed.items()))
    if s.get("skipped"):
        shown = ", ".join(s["skipped"][:10]) + (", ..." if len(s["skipped"]) > 10 else "")
        console.print(f"skipped (no prediction): {len(s['skipped'])} images: {shown}", soft_wrap=True, markup=False)

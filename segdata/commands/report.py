"""``segdata report``: the HTML report of a dataset, its annotators' agreement and evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cliutil import CONTEXT, Progress, atomic_file, console, errors, fail, printing


@click.command(context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--consistency",
    type=click.Path(path_type=Path),
    help="The annotators' agreement: the JSON that `segdata analyze consistency --json` printed.",
)
@click.option(
    "--eval",
    "evals",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An evaluation: the JSON of `segdata eval --json`. Repeat for several (one column each, "
    "labelled by the file's name).",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="The HTML file to write (one file)."
)
@click.option("--split", help="Long tail and object sizes of this split only  [default: all images]")
@click.option("--layer", default="objects", show_default=True, help="Annotation layer analysed.")
@click.option(
    "--buckets",
    "bucket_rule",
    default="lvis",
    show_default=True,
    help="Frequency buckets (as in `analyze longtail`): lvis, terciles, images:E1,E2,... or share:E1,E2,...",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Synthetic data sets for the power-law goodness-of-fit p-value (0: skip).",
)
@click.option(
    "--images",
    "overlays",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Images drawn with their disagreement (those that disagree most; needs the compared datasets).",
)
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Rows of the class tables.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: all cores]")
@click.option("--json", "as_json", is_flag=True, help='Print {"report": PATH, "sections": [...]} as JSON.')
def report(dataset, consistency, evals, output, split, layer, bucket_rule, bootstrap, overlays, top, workers, as_json):
    """Write one self-contained HTML page about DATASET: the dataset card, the long tail, small
    objects, and, when given, the annotators' agreement and evaluations against the annotator
    ceiling. Plots are embedded, the page needs no network and prints.

    \b
    Examples:
      segdata report ade-full -o report.html
      segdata analyze consistency ade-consistency --json > consistency.json
      segdata report ade-full --consistency consistency.json \\
          --eval uniform.json --eval repeat-factor.json -o report.html
    """
    from ..analyses import longtail as lt
    from ..format import Dataset
    from ..render.report import build_page, read_consistency, read_eval

    try:
        rule = lt.parse_bucket_rule(bucket_rule)
    except ValueError as exc:
        fail(str(exc), code=2)
    if not output.parent.is_dir():  # said before the analyses run, not after
        fail(f"{output.parent}: no such folder (the folder of --output must exist)")
    with errors(dataset):
        ds = Dataset(dataset)
    cons = None
    if consistency is not None:
        with errors(consistency):
            cons = read_consistency(consistency)
    reports = []
    for path in evals:
        with errors(path):
            reports.append((path, read_eval(path)))
    labelled = _labels(reports)
    with errors(dataset), Progress("report", enabled=not as_json) as progress:
        built = build_page(
            ds,
            cons,
            labelled,
            split=split,
            layer=layer,
            rule=rule,
            bootstrap=bootstrap,
            workers=workers,
            overlays=overlays,
            top=top,
            progress=progress,
        )
    with errors(output), atomic_file(output) as tmp:
        Path(tmp).write_text(built.html, encoding="utf-8")
    with printing():
        if as_json:
            click.echo(json.dumps({"report": str(output), "sections": built.sections}))
        else:
            console().print(f"report written to {output} (sections: {', '.join(built.sections)})", soft_wrap=True)


def _labels(reports: list[tuple[Path, dict]]) -> list[tuple[str, dict]]:
    """Each evaluation labelled by its file's stem; stems that repeat (run1/eval.json,
    run2/eval.json) by their folder too."""
    stems = [p.stem for p, _ in reports]
    return [
        (f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 and p.parent.name else p.stem, r) for p, r in reports
    ]

"""The ``segdata`` command line: a thin layer that parses options, calls the library, and turns
its exceptions into messages and exit codes (1: the data is bad or a check failed; 2: usage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .cliutil import CONTEXT
from .cliutil import Progress as _Progress
from .cliutil import atomic_file as _atomic_file
from .cliutil import console as _console
from .cliutil import errors as _errors
from .cliutil import fail as _fail
from .cliutil import moved as _moved
from .cliutil import printing as _stdout
from .cliutil import scheduler_option as _scheduler_option
from .cliutil import staged_directory as _staged_directory

FAMILIES = ("ade20k", "coco", "voc", "cityscapes", "label-png")
#: which family takes which of convert's family options
FAMILY_OPTIONS = {
    "ade20k": {"check_instance_masks"},
    "coco": {"kind", "annotations", "categories", "images", "stuff"},
    "voc": {"sbd", "aug"},
    "cityscapes": {"coarse", "check_labelids"},
    "label-png": {"vocab"},
}


def _converters() -> dict:
    # one plain dict from family name to module; imported lazily so `segdata --help` stays fast
    from .converters import ade20k, cityscapes, coco, label_png, voc

    return {"ade20k": ade20k, "coco": coco, "voc": voc, "cityscapes": cityscapes, "label-png": label_png}


def _family_options(family: str, given: dict) -> dict:
    """The family options the user set, refusing those that do not apply to ``family``."""
    options = {k: v for k, v in given.items() if v not in (None, False, ())}
    wrong = sorted(set(options) - FAMILY_OPTIONS.get(family, set()))
    if wrong:
        flags = ", ".join("--" + w.replace("_", "-") for w in wrong)
        _fail(f"{flags} does not apply to {family}", code=2)
    return options


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="segdata")
def main() -> None:
    """segdata: read segmentation datasets as they ship, put them in one format, measure their labels.

    \b
    Examples:
      segdata demo
      segdata convert ade20k /data/ADE20K_2021_17_01 --to unified ade-unified
      segdata validate ade-unified
      segdata info ade-unified --json

    SIGTERM (a scheduler's timeout) is handled like Ctrl-C: convert stops, keeps the finished
    images for --resume, says so and exits with status 130.
    """
    import signal
    import threading

    def terminated(signum, frame):
        raise KeyboardInterrupt  # the commands' Ctrl-C path: clean up, say how to resume

    if threading.current_thread() is threading.main_thread():  # only there can Python set one
        previous = signal.signal(signal.SIGTERM, terminated)
        click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


@main.command(context_settings=CONTEXT)
@click.argument("family", type=click.Choice(FAMILIES))
@click.argument("root", type=click.Path(path_type=Path))
@click.option(
    "--to", "target", type=click.Choice(["unified"]), default="unified", show_default=True, help="Output format."
)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--split", help="Convert only this split (train, val; ADE folder names training/validation work too).")
@click.option("--limit", type=click.IntRange(min=1), help="Convert only the first N images (sorted by split, id).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: all cores]")
@click.option("--copy-images", is_flag=True, help="Copy image files into OUT/images instead of referencing them.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (only once the new one is complete).")
@click.option("--resume", is_flag=True, help="Continue an interrupted conversion into OUT.")
@click.option(
    "--on-error",
    type=click.Choice(["fail", "skip"]),
    default="fail",
    show_default=True,
    help="On a bad image: stop and leave nothing behind, or skip it and list it under problems.",
)
@click.option("--name", help="Dataset name stored in the manifest  [default: OUT's name]")
@click.option("--json", "as_json", is_flag=True, help="Print the conversion report as JSON.")
@click.option(
    "--kind",
    type=click.Choice(["instances", "panoptic", "stuffthingmaps", "stuff"]),
    help="coco: which annotation to read when several are present.",
)
@click.option(
    "--annotations",
    type=click.Path(path_type=Path),
    multiple=True,
    help="coco: read exactly this JSON file (repeatable).",
)
@click.option(
    "--categories",
    type=click.Path(path_type=Path),
    help="coco: panoptic categories file for JSONs without 'categories'.",
)
@click.option("--images", type=click.Path(path_type=Path), help="coco: where the image files are.")
@click.option(
    "--stuff/--no-stuff",
    default=None,
    help="coco: merge the stuff JSON into the instances layer  [default: when present]",
)
@click.option("--sbd", type=click.Path(path_type=Path), help="voc: SBD root; its annotation becomes layer 'sbd'.")
@click.option("--aug", is_flag=True, help="voc: read SegmentationClassAug.")
@click.option("--coarse", is_flag=True, help="cityscapes: add gtCoarse as layer 'coarse' next to gtFine.")
@click.option(
    "--check-labelids",
    is_flag=True,
    help="cityscapes: also decode labelIds and check it against instanceIds (which holds every labelId).",
)
@click.option(
    "--check-instance-masks",
    is_flag=True,
    help="ade20k 2021: also read each object's instance mask and check it against the object's region.",
)
@click.option("--vocab", type=click.Path(path_type=Path), help="label-png: vocabulary file  [default: ROOT/vocab.json]")
@_scheduler_option
def convert(
    family,
    root,
    target,
    out,
    split,
    limit,
    workers,
    copy_images,
    overwrite,
    resume,
    on_error,
    name,
    as_json,
    kind,
    annotations,
    categories,
    images,
    stuff,
    sbd,
    aug,
    coarse,
    check_labelids,
    check_instance_masks,
    vocab,
    scheduler,
):
    """Convert the dataset at ROOT, read as it ships, into a unified-format directory OUT.

    The layout is detected: ADE20K full (2021_17_01 or 2016_07_26), ADEChallengeData2016, the
    2017 consistency set; COCO instances (+stuff), panoptic, stuffthingmaps; VOC2012 (+SBD,
    SegmentationClassAug), SBD; Cityscapes gtFine/gtCoarse; label-PNG directories written by
    `segdata export --to label-png`. Output is written to OUT.segdata-partial and renamed at the end.

    \b
    Examples:
      segdata convert ade20k /data/ADE20K_2021_17_01 --to unified ade-full
      segdata convert ade20k /data/ADEChallengeData2016 ade150 --split val --workers 8
      segdata convert ade20k /data/ADE20K_2021_17_01 ade-full --resume
      segdata convert coco /data/coco coco-panoptic --kind panoptic
      segdata convert voc /data/VOCdevkit voc --sbd /data/benchmark_RELEASE
      segdata convert cityscapes /data/cityscapes cs --coarse
    """
    from .convert import convert as run_convert
    from .render import text
    from .runner import executor_for

    options = _family_options(
        family,
        {
            "kind": kind,
            "annotations": annotations,
            "categories": categories,
            "images": images,
            "stuff": stuff,
            "sbd": sbd,
            "aug": aug,
            "coarse": coarse,
            "check_labelids": check_labelids,
            "check_instance_masks": check_instance_masks,
            "vocab": vocab,
        },
    )
    if "annotations" in options:
        options["annotations"] = list(options["annotations"])
    if family == "coco" and stuff is False:
        options["stuff"] = False
    module = _converters()[family]
    try:
        with _errors(out), executor_for(scheduler, workers) as (executor, workers):
            with _Progress(f"converting {root.name}", enabled=not as_json) as progress:
                report = run_convert(
                    module,
                    root,
                    out,
                    split=split,
                    limit=limit,
                    workers=workers,
                    executor=executor,
                    copy_images=copy_images,
                    overwrite=overwrite,
                    resume=resume,
                    on_error=on_error,
                    name=name,
                    progress=progress,
                    options=options,
                )
    except KeyboardInterrupt:
        _fail(f"interrupted; rerun with --resume to continue into {out}", code=130)
    with _stdout():
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=1))
        else:
            text.conversion(_console(), report.as_dict())


EXPORTERS = {"coco-panoptic": "coco", "label-png": "label-png", "cityscapes": "cityscapes"}


@main.command(context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--to", "target", type=click.Choice(sorted(EXPORTERS)), required=True, help="Target layout.")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--vocab",
    type=click.Path(path_type=Path),
    help="label-png: class vocabulary file (from `segdata vocab`)  [default: every class]",
)
@click.option("--layer", default="objects", show_default=True, help="label-png: layer to export.")
@click.option(
    "--images",
    "images_mode",
    type=click.Choice(["link", "copy", "none"]),
    default="link",
    show_default=True,
    help="label-png: how image files reach img_dir/.",
)
@click.option(
    "--convention",
    type=click.Choice(["segdata", "cityscapes"]),
    default="segdata",
    show_default=True,
    help="coco-panoptic: segdata's class ids and segments, or the official Cityscapes flavour "
    "(cityscapesScripts' csCreatePanopticImgs: labelIds, ignoreInEval void, string image ids).",
)
@click.option("--use-train-id", is_flag=True, help="coco-panoptic --convention cityscapes: category ids are trainIds.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (only once the new one is complete).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: all cores]")
@click.option("--json", "as_json", is_flag=True, help="Print the export report as JSON.")
def export(dataset, target, out, vocab, layer, images_mode, convention, use_train_id, overwrite, workers, as_json):
    """Export a unified-format DATASET into a layout that training code reads.

    \b
    coco-panoptic  panoptic JSON + RGB PNGs (id = R + 256 G + 256^2 B), as panopticapi and detectron2 read;
                   --convention cityscapes: as cityscapesScripts' csCreatePanopticImgs writes them
    label-png      one label PNG per image in a class vocabulary, 255 = ignore (mmsegmentation's
                   img_dir/ann_dir layout, detectron2's sem_seg), plus vocab.json
    cityscapes     gtFine/<split>/<city>/*_labelIds.png and *_instanceIds.png

    \b
    Examples:
      segdata export ade-full --to coco-panoptic ade-panoptic
      segdata vocab ade-full --top 150 -o ade150.json && segdata export ade-full --to label-png ade150 --vocab ade150.json
    """
    module = _converters()[EXPORTERS[target]]
    options = {}
    if target == "label-png":
        options = {"vocab": vocab, "layer": layer, "images": images_mode}
    elif vocab is not None or layer != "objects" or images_mode != "link":
        _fail("--vocab, --layer and --images apply to --to label-png only", code=2)
    if target == "coco-panoptic":
        options = {"convention": convention, "use_train_id": use_train_id}
    elif convention != "segdata" or use_train_id:
        _fail("--convention and --use-train-id apply to --to coco-panoptic only", code=2)
    if use_train_id and convention != "cityscapes":
        _fail("--use-train-id applies to --convention cityscapes only", code=2)
    with _errors(out), _Progress(f"exporting {dataset.name}", enabled=not as_json) as progress:
        report = module.write(dataset, out, overwrite=overwrite, workers=workers, progress=progress, **options)
    from .render import text

    with _stdout():
        if as_json:
            click.echo(json.dumps(report, indent=1, default=str))
        else:
            text.export(_console(), out, report)


@main.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: all cores]")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as a JSON list.")
@_scheduler_option
def validate(path, workers, as_json, scheduler):
    """Check the unified-format dataset at PATH against the specification.

    Checks tables and columns, that every mask exists and has its image's size, that every id in
    a mask has a segment row whose area equals its pixel count, and that part parents exist.
    Exit code 1 when anything is wrong.

    \b
    Example:
      segdata validate ade-unified
    """
    from .render import text
    from .runner import executor_for
    from .validate import validate as run_validate

    with _errors(path), executor_for(scheduler, workers) as (executor, workers):
        with _Progress(f"validating {path.name}", enabled=not as_json) as progress:
            findings = run_validate(path, workers=workers, executor=executor, progress=progress)
    with _stdout():
        if as_json:
            click.echo(json.dumps([f.as_dict() for f in findings], indent=1))
        else:
            text.findings(_console(), path, [f.as_dict() for f in findings])
    sys.exit(1 if findings else 0)


@main.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(path, as_json):
    """Summarise a unified-format dataset: images per split, classes, segments per layer, problems.

    \b
    Example:
      segdata info ade-unified --json
    """
    from .render import text
    from .summary import summarize

    with _errors(path):
        summary = summarize(path)
    with _stdout():
        if as_json:
            click.echo(json.dumps(summary, indent=1))
        else:
            text.summary(_console(), summary)


@main.group(context_settings=CONTEXT)
def analyze() -> None:
    """Measure the labels of a unified-format dataset.

    \b
    Examples:
      segdata analyze longtail ade-full --plots plots/
      segdata analyze longtail ade-full --split train --json > longtail.json
    """


def _open_dataset(path: Path):
    from .format import Dataset

    with _errors(path):
        return Dataset(path)


@analyze.command(context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--split", help="Only this split  [default: all images]")
@click.option("--layer", default="objects", show_default=True, help="Annotation layer.")
@click.option(
    "--buckets",
    "bucket_rule",
    default="lvis",
    show_default=True,
    help="Frequency buckets: lvis (rare 1-10 / common 11-100 / frequent >100 training images), "
    "terciles (of pixel share), images:E1,E2,... or share:E1,E2,...",
)
@click.option("--buckets-out", type=click.Path(path_type=Path), help="Write class_id,name,bucket as CSV here.")
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Synthetic data sets for the power-law goodness-of-fit p-value (0: skip).",
)
@click.option("--plots", type=click.Path(path_type=Path), help="Write PNG and SVG plots into this directory.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Classes listed in the table.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def longtail(dataset, split, layer, bucket_rule, buckets_out, bootstrap, plots, top, as_json):
    """Class frequencies, coverage, power-law fit and frequency buckets, from the segment table
    alone (no mask is decoded).

    Pixels of classes flagged ignore and unlabeled pixels are reported separately, never mixed
    into shares.

    \b
    Example:
      segdata analyze longtail ade-full --split train --plots plots/ --buckets-out buckets.csv
    """
    from .analyses import longtail as lt
    from .render import text

    ds = _open_dataset(dataset)
    try:
        rule = lt.parse_bucket_rule(bucket_rule)
    except ValueError as exc:
        _fail(str(exc), code=2)
    with _errors(dataset):
        result = lt.analyze(ds, split=split, layer=layer, rule=rule, bootstrap=bootstrap)
    report = result.to_dict()
    if buckets_out:
        with _errors(buckets_out), _atomic_file(buckets_out) as tmp:
            lt.write_buckets(tmp, result.frequencies, result.buckets)
    if plots:
        with _errors(plots), _staged_directory(plots) as tmp:
            written = lt.plot_longtail(result.frequencies, result.buckets, tmp, title=ds.name, rule=rule)
        report["plots"] = _moved(written, plots)
    with _stdout():
        if as_json:
            click.echo(json.dumps(report))  # compact: thousands of classes, read by scripts
        else:
            text.longtail(_console(), report, top)


@analyze.command("small-objects", context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--split", help="Only this split  [default: all images]")
@click.option("--layer", default="objects", show_default=True, help="Annotation layer.")
@click.option(
    "--workers", type=click.IntRange(min=1), help="Worker processes for connected components  [default: all cores]"
)
@click.option("--plots", type=click.Path(path_type=Path), help="Write PNG and SVG plots into this directory.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Classes listed in the table.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@_scheduler_option
def small_objects(dataset, split, layer, workers, plots, top, as_json, scheduler):
    """Object sizes: COCO size buckets overall and per class, size quantiles, and the share of
    objects smaller than one cell of a stride-8/16/32 network (area below stride²).

    Sources without instances use connected components of each class region instead, and say so.

    \b
    Example:
      segdata analyze small-objects ade-full --plots plots/ --json > sizes.json
    """
    from .analyses import small_objects as so
    from .render import text
    from .runner import executor_for

    ds = _open_dataset(dataset)
    with _errors(dataset), executor_for(scheduler, workers) as (executor, workers):
        with _Progress("connected components", enabled=not as_json) as progress:
            result = so.analyze(ds, split=split, layer=layer, workers=workers, executor=executor, progress=progress)
    report = result.to_dict()
    if plots:
        with _errors(plots), _staged_directory(plots) as tmp:
            written = so.plot_sizes(result.objects, result.per_class, tmp, title=ds.name)
        report["plots"] = _moved(written, plots)
    with _stdout():
        if as_json:
            click.echo(json.dumps(report, indent=1))
        else:
            text.small_objects(_console(), report, top)


@analyze.command(context_settings=CONTEXT)
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path), required=False)
@click.option(
    "--layers",
    help="One dataset: the layers to compare, reference first (L1,L2[,L3...]; default: its "
    "top-level layers). Two datasets: LA,LB or one layer for both  [default: objects]",
)
@click.option(
    "--class-map",
    type=click.Path(path_type=Path),
    help="CSV b_class_id,a_class_id mapping B's classes onto A's (two datasets with different vocabularies).",
)
@click.option(
    "--boundary-px",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Half-width K of the boundary band, in pixels.",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples of the images for the 95% intervals (0: none).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--split", help="Only images of this split  [default: all images]")
@click.option(
    "--buckets",
    "bucket_rule",
    default="lvis",
    show_default=True,
    help="Frequency buckets of A's classes for the ceiling (as in `analyze longtail`).",
)
@click.option(
    "--ceiling-out",
    type=click.Path(path_type=Path),
    help="Write the human ceiling (B scored against A, overall and per bucket) as JSON here.",
)
@click.option(
    "--unlabeled",
    metavar="IDS",
    help="Class ids (comma-separated) that mean 'no annotation' and count as unlabeled  "
    "[default: the classes named unlabeled]",
)
@click.option("--plots", type=click.Path(path_type=Path), help="Write plots into this directory.")
@click.option(
    "--top-images",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Images with the most disagreement drawn with --plots.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: all cores]")
@_scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def consistency(
    a,
    b,
    layers,
    class_map,
    boundary_px,
    bootstrap,
    seed,
    split,
    bucket_rule,
    ceiling_out,
    unlabeled,
    plots,
    top_images,
    workers,
    scheduler,
    as_json,
):
    """Compare two (or more) annotations of the same images: two layers of dataset A
    (re-annotation, SBD next to VOC, coarse next to fine) or datasets A and B matched by image id.

    Reports pixel agreement (with and without void), mIoU of B against A and symmetric, Cohen's
    kappa, agreement in the boundary band against the interior, the ADE20K breakdown of the
    disagreement (segmentation quality, naming, quantity), bootstrap intervals, and the ceiling
    that B's agreement with A puts on a model scored against A. Definitions: docs/consistency.md.

    \b
    Examples:
      segdata analyze consistency ade-consistency --layers objects,reannotation
      segdata analyze consistency cityscapes --layers objects,coarse --json
      segdata analyze consistency voc-a voc-b --class-map b_to_a.csv --ceiling-out ceiling.json
    """
    from .analyses import consistency as cons
    from .analyses import longtail as lt
    from .render import text
    from .runner import executor_for

    ds_a = _open_dataset(a)
    ds_b = _open_dataset(b) if b is not None else None
    try:
        rule = lt.parse_bucket_rule(bucket_rule)
    except ValueError as exc:
        _fail(str(exc), code=2)
    unlabeled_ids = None
    if unlabeled is not None:
        try:
            unlabeled_ids = [int(x) for x in unlabeled.split(",") if x.strip()]
        except ValueError:
            _fail(f"--unlabeled takes class ids separated by commas (1,8), got {unlabeled!r}", code=2)
    try:
        with _errors(a), executor_for(scheduler, workers) as (executor, workers):
            with _Progress("comparing", enabled=not as_json) as progress:
                result = cons.compare(
                    ds_a,
                    ds_b,
                    layers=layers,
                    class_map=class_map,
                    split=split,
                    boundary_px=boundary_px,
                    bootstrap=bootstrap,
                    seed=seed,
                    bucket_rule=rule,
                    unlabeled=unlabeled_ids,
                    workers=workers,
                    executor=executor,
                    progress=progress,
                )
    except ValueError as exc:
        _fail(str(exc), code=2)
    report = result.report()
    if ceiling_out:
        with _errors(ceiling_out), _atomic_file(ceiling_out) as tmp:
            cons.write_ceiling(tmp, result)
        report["ceiling_file"] = str(ceiling_out)
    if plots:
        with _errors(plots), _staged_directory(plots) as tmp:
            written = cons.plot_consistency(result, tmp, top=top_images, title=ds_a.name)
        report["plots"] = _moved(written, plots)
    with _stdout():
        if as_json:
            click.echo(json.dumps(report, indent=1))
        else:
            text.consistency(_console(), report)


@main.command(context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), help="Keep the K classes with most pixels.")
@click.option(
    "--coverage",
    type=click.FloatRange(0, 1, min_open=True),
    help="Keep the fewest classes covering this fraction of labelled pixels.",
)
@click.option(
    "--from-train-ids",
    is_flag=True,
    help="The dataset's own train ids (classes.parquet train_id: Cityscapes trainId, ADE20K-150, VOC).",
)
@click.option(
    "--min-images", type=click.IntRange(min=0), default=0, show_default=True, help="Only classes in at least N images."
)
@click.option("--split", help="Count pixels in this split only  [default: all images]")
@click.option("--layer", default="objects", show_default=True, help="Annotation layer.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Vocabulary file to write (JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def vocab(dataset, top, coverage, from_train_ids, min_images, split, layer, output, as_json):
    """Build a class vocabulary by pixel share, the way ADE20K's 150 benchmark classes were chosen,
    or from the dataset's own train ids; report what it covers and drops, and write it for
    `segdata export --to label-png --vocab` (label PNGs hold at most 255 classes; the vocabulary
    itself any number, ignore_index 255 up to 255 classes, 65535 above).

    \b
    Examples:
      segdata vocab ade-full --top 150 -o ade150.json
      segdata vocab ade-full --coverage 0.95 --min-images 10 -o ade95.json
      segdata vocab cityscapes --from-train-ids -o cityscapes19.json
    """
    from .analyses.vocabulary import build_vocabulary
    from .vocab import write_vocab

    if sum([top is not None, coverage is not None, from_train_ids]) != 1:
        _fail("give exactly one of --top, --coverage or --from-train-ids", code=2)
    if from_train_ids and min_images:
        _fail("--min-images applies to --top and --coverage only", code=2)
    ds = _open_dataset(dataset)
    try:
        with _errors(dataset):
            vocabulary, report = build_vocabulary(
                ds,
                top=top,
                coverage=coverage,
                min_images=min_images,
                split=split,
                layer=layer,
                from_train_ids=from_train_ids,
            )
    except ValueError as exc:
        _fail(str(exc), code=2)
    with _errors(output):
        write_vocab(output, vocabulary)
    report["file"] = str(output)
    from .render import text

    with _stdout():
        if as_json:
            click.echo(json.dumps(report, indent=1))
        else:
            text.vocabulary(_console(), report)


# the commands that live in their own modules (segdata/commands/)
from .commands.demo import demo  # noqa: E402
from .commands.eval import eval_command  # noqa: E402
from .commands.report import report  # noqa: E402
from .commands.synthesize import synthesize  # noqa: E402
from .commands.train import train  # noqa: E402

for _command in (demo, eval_command, report, synthesize, train):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()

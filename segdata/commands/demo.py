"""``segdata demo``: the whole story on a generated sample (segdata/demo.py does the work)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cliutil import CONTEXT, Progress, console, errors, fail, printing


def _size(text: str) -> tuple[int, int]:
    try:
        w, _, h = text.lower().partition("x")
        size = (int(h or w), int(w))
    except ValueError:
        fail(f"--size takes WxH in pixels (128x128), got {text!r}", code=2)
    if min(size) < 16:
        fail(f"--size must be at least 16x16, got {text!r}", code=2)
    return size


@click.command(context_settings=CONTEXT)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("segdata-demo"),
    show_default=True,
    help="Folder for everything the demo writes.",
)
@click.option(
    "--images",
    "n_images",
    type=click.IntRange(min=8),
    default=240,
    show_default=True,
    help="Synthetic images (a fifth for validation).",
)
@click.option(
    "--classes",
    "n_classes",
    type=click.IntRange(min=2),
    default=30,
    show_default=True,
    help="Classes of the power law.",
)
@click.option("--size", default="128x128", show_default=True, help="Image size, WxH pixels.")
@click.option(
    "--consistency-images",
    "n_consistency",
    type=click.IntRange(min=0),
    default=24,
    show_default=True,
    help="Training images re-annotated (the annotators' ceiling); 0 skips it.",
)
@click.option(
    "--iters", type=click.IntRange(min=1), default=150, show_default=True, help="Training iterations of each baseline."
)
@click.option("--no-train", is_flag=True, help="Skip the training and the evaluation (they need PyTorch).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: all cores]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the demo's entries under --out even when an earlier demo did not write them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(out, n_images, n_classes, size, n_consistency, iters, no_train, workers, seed, overwrite, as_json):
    """Run the whole story on a generated sample: a learnable ADE20K-layout dataset with
    power-law classes and a simulated re-annotation (calibrated on ADE20K's 82.4% agreement);
    conversion; the long tail, object sizes and the annotators' ceiling; a short training of the
    baseline with uniform sampling and with repeat-factor sampling and a class-balanced loss; evaluation by training frequency
    against the ceiling; the HTML report. Prints the tail's mIoU next to the ceiling.

    Everything lands under --out (source/, ade20k-unified/, consistency-unified/, ceiling.json,
    consistency.json, runs/, eval/, report.html and a .segdata-demo marker); a rerun replaces
    what an earlier demo wrote there, and nothing else without --overwrite. Without PyTorch the
    training is skipped, and the demo says how to install it.

    \b
    Example:
      segdata demo --out /tmp/segdata-demo
      segdata demo --images 60 --no-train --json
    """
    from ..demo import run_demo
    from ..render import text

    image_size = _size(size)
    try:
        result = _run(
            run_demo,
            out,
            n_images,
            n_classes,
            image_size,
            n_consistency,
            iters,
            no_train,
            workers,
            seed,
            overwrite,
            as_json,
        )
    except ValueError as exc:  # arguments that do not fit together (more re-annotated images than training ones)
        fail(str(exc), code=2)
    with printing():
        if as_json:
            click.echo(json.dumps(result, indent=1))
        else:
            text.demo(console(), result, n_images)


def _run(
    run_demo, out, n_images, n_classes, image_size, n_consistency, iters, no_train, workers, seed, overwrite, as_json
) -> dict:
    with errors(out), Progress("demo", enabled=not as_json) as progress:
        return run_demo(
            out,
            n_images=n_images,
            n_classes=n_classes,
            image_size=image_size,
            n_consistency=n_consistency,
            iters=iters,
            train=not no_train,
            workers=workers,
            seed=seed,
            progress=progress,
            step=progress.stage,
            overwrite=overwrite,
        )

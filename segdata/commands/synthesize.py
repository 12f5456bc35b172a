"""``segdata synthesize``: write generated datasets in the on-disk layouts of the real ones. One subcommand per
family (``ade20k`` for now); the library (:mod:`segdata.synthetic`) generates, this module parses and renders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from ..cliutil import CONTEXT, Progress, console, errors, fail, printing

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def _parse_size(ctx, param, value: str) -> tuple[int, int]:
    """``WxH`` (width first, as image tools write it) -> ``(height, width)``."""
    m = _SIZE.match(value)
    if not m:
        raise click.BadParameter(f"expected WIDTHxHEIGHT in pixels such as 256x256, got {value!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise click.BadParameter(f"each side must be 16..4096 pixels, got {value!r}")
    return h, w


@click.group(context_settings=CONTEXT)
def synthesize() -> None:
    """Generate a dataset in the on-disk layout of a real one, for testing a pipeline end to end.

    \b
    Example:
      segdata synthesize ade20k synth-ade --images 300 --classes 40 --size 256x256
    """


@synthesize.command("ade20k", context_settings=CONTEXT)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--images", "n_images", type=click.IntRange(min=2), default=300, show_default=True, help="Images in all.")
@click.option("--classes", "n_classes", type=click.IntRange(min=1), default=40, show_default=True, help="Classes.")
@click.option(
    "--size",
    default="256x256",
    show_default=True,
    callback=_parse_size,
    help="Image size WIDTHxHEIGHT in pixels (every image).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same options and seed, same bytes.")
@click.option(
    "--consistency",
    "n_consistency",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also re-annotate the first N training images (ADE20K consistency-set layout, 82.4% pixel agreement).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of validation images.",
)
@click.option(
    "--zipf",
    "zipf_exponent",
    type=click.FloatRange(min=0.0),
    default=1.7,
    show_default=True,
    help="Class frequency by rank (objects) follows rank^-ZIPF.",
)
@click.option("--parts", is_flag=True, help="Also draw parts (_parts_N.png); the images do not show them.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: all cores]")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (only once the new one is complete).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def ade20k(
    out, n_images, n_classes, size, seed, n_consistency, val_fraction, zipf_exponent, parts, workers, overwrite, as_json
):
    """Write a learnable synthetic ADE20K dataset (2021_17_01 layout) into the new folder OUT.

    OUT/ADE20K_2021_17_01/images/ADE/{training,validation}/ holds JPEGs, JSON annotations and
    _seg.png label maps. Each class has its own colour and texture (with pixel noise, overlapping
    objects from a few pixels to bands across the image), so a small network trained from scratch
    learns them; class frequencies follow a power law (a few classes in most images, a tail in a
    handful), and every class is in at least one training image. With --consistency N,
    OUT/ADE20K_2017_05_30_consistency holds the first N training images and a simulated
    re-annotation calibrated on ADE20K's (82.4% pixel agreement). OUT is written whole or not at
    all (OUT.segdata-partial, renamed at the end).

    \b
    Examples:
      segdata synthesize ade20k synth-ade
      segdata synthesize ade20k synth-ade --images 300 --classes 40 --size 256x256 --consistency 20
      segdata convert ade20k synth-ade/ADE20K_2021_17_01 --to unified synth-unified
      segdata convert ade20k synth-ade/ADE20K_2017_05_30_consistency synth-consistency
      segdata analyze consistency synth-consistency --layers objects,reannotation
    """
    from ..synthetic.ade20k import synthesize_ade20k

    n_val = min(n_images - 1, max(1, int(round(n_images * val_fraction))))
    if n_consistency > n_images - n_val:
        fail(f"--consistency {n_consistency}: at most the {n_images - n_val} training images can be re-annotated", 2)
    try:
        with errors(out), Progress(f"synthesizing {out.name}", enabled=not as_json) as progress:
            result = synthesize_ade20k(
                out,
                n_images,
                n_classes=n_classes,
                image_size=size,
                seed=seed,
                n_consistency=n_consistency,
                zipf_exponent=zipf_exponent,
                val_fraction=val_fraction,
                parts=parts,
                workers=workers,
                overwrite=overwrite,
                progress=progress,
            )
    except ValueError as exc:
        fail(str(exc), code=2)
    except KeyboardInterrupt:
        fail(f"interrupted; nothing was written to {out}", code=130)
    summary = result.as_dict()
    with printing():
        if as_json:
            click.echo(json.dumps(summary, indent=1))
            return
        con = console()
        h, w = result.image_size
        con.print(
            f"wrote {result.path}: {result.images['training']} training + {result.images['validation']} validation "
            f"images of {w}x{h}, {result.classes} classes, seed {result.seed} ({result.seconds:.1f} s)"
        )
        con.print(f"  convert: segdata convert ade20k {result.release} --to unified UNIFIED")
        if result.consistency is not None:
            c = result.consistency
            con.print(
                f"  re-annotation of {len(c.images)} training images: {c.path} "
                f"(pixel agreement {100 * c.agreement:.1f}%)"
            )

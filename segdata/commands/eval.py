"""``segdata eval``: score predictions (PNG files, or a model run on the fly) per class, per
frequency bucket and per object size, next to the annotator ceiling."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cliutil import CONTEXT, Progress, atomic_file, console, errors, fail, printing, scheduler_option
from ..eval.conventions import NAMES as CONVENTIONS
from ..eval.space import PRED_IDS


def _window(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, _, w = text.lower().partition("x")
        size = (int(h), int(w or h))
    except ValueError:
        fail(f"--window takes HxW in pixels (512x512), got {text!r}", code=2)
    if min(size) < 1:
        fail(f"--window must be positive, got {text!r}", code=2)
    return size


@click.command("eval", context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--pred", "pred_dir", type=click.Path(path_type=Path), help="Folder of prediction PNGs, <image_id>.png.")
@click.option(
    "--model",
    "model_spec",
    help="Run a model instead: a `segdata train` checkpoint, a TorchScript file, or module:factory.",
)
@click.option(
    "--pred-ids", type=click.Choice(PRED_IDS), default="train", show_default=True, help="Id space of the predictions."
)
@click.option("--vocab", type=click.Path(path_type=Path), help="Evaluate in this vocabulary's id space (vocab.json).")
@click.option("--split", default="val", show_default=True, help="Split to evaluate.")
@click.option("--by-frequency", is_flag=True, help="Score each frequency bucket of the training split.")
@click.option("--buckets", default="lvis", show_default=True, help="lvis, pixel-terciles, or a bucket file (JSON/CSV).")
@click.option("--freq-split", default="train", show_default=True, help="Split whose images define the buckets.")
@click.option("--ceiling", type=click.Path(path_type=Path), help="Ceiling file of `analyze consistency --ceiling-out`.")
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Resamples for the BCa intervals (0: none).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True, help="Interval level."
)
@click.option(
    "--convention",
    type=click.Choice(CONVENTIONS),
    default="segdata",
    show_default=True,
    help="Whose rules the figures follow.",
)
@click.option(
    "--missing",
    type=click.Choice(["error", "skip"]),
    default="error",
    show_default=True,
    help="An image without a prediction: stop, or skip it (listed).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, or cuda (a torch device) to count on the GPU.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: all cores]")
@scheduler_option
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="--model: images per batch."
)
@click.option("--window", help="--model: sliding-window inference with windows of HxW pixels.")
@click.option(
    "--stride", type=click.IntRange(min=1), help="--model: window stride in pixels  [default: 2/3 of the window]"
)
@click.option("--amp", is_flag=True, help="--model: mixed precision.")
@click.option("--save-pred", type=click.Path(path_type=Path), help="--model: also write the predictions as PNGs here.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the JSON to this file (for `segdata report`).")
def eval_command(
    dataset,
    pred_dir,
    model_spec,
    pred_ids,
    vocab,
    split,
    by_frequency,
    buckets,
    freq_split,
    ceiling,
    bootstrap,
    seed,
    confidence,
    convention,
    missing,
    device,
    workers,
    scheduler,
    batch_size,
    window,
    stride,
    amp,
    save_pred,
    as_json,
    out,
):
    """Score predictions of DATASET (a unified dataset) per class, per training-frequency bucket
    and per object size, with BCa intervals over images and the annotator ceiling beside them.

    Predictions are grey PNGs named <image_id>.png anywhere under --pred (Cityscapes'
    <image_id>_*.png too), in the dataset's training ids by default (Cityscapes trainIds with
    255 = no prediction; SceneParsing 0..149 as mmsegmentation writes them; VOC 0..20). The
    dataset's own ignore rule applies and is printed. Or --model runs a network over the split.

    \b
    Examples:
      segdata eval cityscapes-u --pred preds/ --by-frequency
      segdata eval ade-u --pred preds/ --pred-ids source --ceiling ceiling.json --by-frequency --out eval.json
      segdata eval ade-u --model run/checkpoint.pt --device cuda --by-frequency --json
    """
    from ..eval import evaluate, evaluate_model
    from ..format import open_dataset
    from ..render import text
    from ..runner import executor_for

    if (pred_dir is None) == (model_spec is None):
        fail("give exactly one of --pred DIR and --model SPEC", code=2)
    model_only = {"--window": window, "--stride": stride, "--save-pred": save_pred}
    if pred_dir is not None:
        used = [k for k, v in model_only.items() if v is not None] + (["--amp"] if amp else [])
        if used:
            fail(f"{', '.join(used)} applies to --model only", code=2)
    if not by_frequency:
        source = click.get_current_context().get_parameter_source
        given = [f"--{n.replace('_', '-')}" for n in ("buckets", "freq_split") if source(n).name == "COMMANDLINE"]
        if given:
            fail(f"{', '.join(given)} applies with --by-frequency only", code=2)
    size = _window(window)
    if out is not None and out.exists() and not out.is_file():
        fail(f"{out}: --out must be a file", code=2)
    with errors(dataset):
        ds = open_dataset(dataset)
        for option, name in (("--split", split), ("--freq-split", freq_split if by_frequency else None)):
            if name is not None and name not in ds.splits:  # said before any prediction is read
                fail(f"{option}: {ds.path}: no split {name!r}; splits: {', '.join(ds.splits) or 'none'}", code=2)
        ceiling_obj = None
        if ceiling is not None:
            from ..analyses.consistency.ceiling import read_ceiling

            ceiling_obj = read_ceiling(ceiling)
        # what both paths score the same way
        scoring = {
            "vocab": vocab,
            "split": split,
            "by_frequency": by_frequency,
            "buckets": buckets,
            "freq_split": freq_split,
            "ceiling": ceiling_obj,
            "bootstrap": bootstrap,
            "seed": seed,
            "confidence": confidence,
            "convention": convention,
        }
        if pred_dir is not None:
            with executor_for(scheduler, workers) as (executor, n_workers):
                with Progress("evaluating", enabled=not as_json) as progress:
                    result = evaluate(
                        ds,
                        pred_dir,
                        pred_ids=pred_ids,
                        **scoring,
                        missing=missing,
                        workers=n_workers,
                        executor=executor,
                        device=device,
                        progress=progress,
                    )
        else:
            try:
                import torch  # noqa: F401
            except ImportError:
                fail("--model needs PyTorch: pip install 'segdata[torch]'", code=2)
            with Progress("running the model", enabled=not as_json) as progress:
                result = evaluate_model(
                    ds,
                    model_spec,
                    **scoring,
                    batch_size=batch_size,
                    workers=workers,
                    device=device,
                    window=size,
                    stride=stride,
                    amp=amp,
                    save_pred=save_pred,
                    progress=progress,
                )
    report = result.to_dict()
    if out is not None:
        with errors(out), atomic_file(out) as tmp:
            tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    with printing():
        if as_json:
            click.echo(json.dumps(report, indent=1))
        else:
            text.evaluation(console(), report)
            if out is not None:
                console().print(f"wrote {out}")

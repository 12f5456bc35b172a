"""``segdata train``: train a baseline segmentation network on a unified dataset
(:func:`segdata.torch.train.train`); torch is imported only when the command runs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cliutil import CONTEXT, errors, fail, printing
from ..cliutil import Progress as _Progress

TORCH_MISSING = "segdata train needs PyTorch: pip install 'segdata[torch]'"


class LossProgress(_Progress):
    """The progress bar of training: iterations done, the time left and the last loss."""

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            from ..cliutil import console

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeRemainingColumn(),
                console=console(stderr=True),
                transient=False,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=None, loss="-")
        return self

    def __call__(self, done: int, total: int, loss: float | None = None) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, loss="-" if loss is None else f"{loss:.4f}")


def _render(result) -> None:
    from ..cliutil import console

    out = console()
    r = result
    out.print(
        f"trained {r.args['model']} for {r.iters} iterations ({r.iters - r.start_iter} in this run) on "
        f"{r.args['dataset']} ({r.device}, {r.world_size} process{'es' if r.world_size > 1 else ''}): "
        f"{r.images_per_second:.1f} images/s"
    )
    if not (r.loss_first != r.loss_first):  # not NaN
        out.print(f"training loss {r.loss_first:.4f} (first tenth) -> {r.loss_last:.4f} (last tenth)")
    if r.miou is None:
        out.print(f"not evaluated: no {r.args['val_split']!r} split with a present class")
    else:
        parts = [
            f"{b['name']} {'-' if b['miou'] is None else format(b['miou'], '.3f')} ({b['classes_present']}/{b['classes']})"
            for b in r.buckets or []
        ]
        out.print(f"{r.args['val_split']} mIoU {r.miou:.4f}; by bucket: " + ", ".join(parts))
    out.print(f"checkpoint: {r.checkpoint}\nmetrics: {r.metrics}")


@click.command(context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--model",
    "model",
    default="deeplab-small",
    show_default=True,
    help="deeplab-small, unet-small, or tv-NAME (torchvision, when it imports).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder: checkpoint.pt and metrics.jsonl go there.",
)
@click.option(
    "--vocab",
    "vocab",
    type=click.Path(path_type=Path),
    help="Vocabulary file (segdata vocab); default: the dataset's train ids, else every class.",
)
@click.option(
    "--sampler",
    type=click.Choice(["uniform", "repeat-factor"]),
    default="uniform",
    show_default=True,
    help="Image sampling: uniform, or LVIS repeat factors (rare classes' images repeated).",
)
@click.option(
    "--repeat-threshold",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="--sampler repeat-factor: t in r(c) = max(1, sqrt(t / f(c))), f(c) the share of training images holding "
    "class c. Only classes in fewer than a share t of the images are repeated: on a small dataset raise it "
    "(0.1 for a few hundred images).",
)
@click.option(
    "--loss",
    type=click.Choice(["ce", "class-balanced", "ohem"]),
    default="ce",
    show_default=True,
    help="Cross-entropy, class-balanced (effective number) or OHEM.",
)
@click.option("--iters", type=click.IntRange(min=1), default=1000, show_default=True, help="Training iterations.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Images per iteration (per process)."
)
@click.option(
    "--crop", type=click.IntRange(min=1), default=512, show_default=True, help="Square training crop side, pixels."
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=0.01,
    show_default=True,
    help="Base learning rate (SGD, momentum 0.9, poly schedule).",
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--amp", is_flag=True, help="Mixed precision (float16 on CUDA, bfloat16 on the CPU).")
@click.option(
    "--workers", type=click.IntRange(min=0), default=0, show_default=True, help="DataLoader worker processes."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option(
    "--overwrite", is_flag=True, help="Start over in a non-empty --out (its checkpoint and metrics are replaced)."
)
@click.option(
    "--eval-every",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Evaluate on val and checkpoint every N iterations (0: at the end only).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train(
    dataset,
    model,
    out,
    vocab,
    sampler,
    repeat_threshold,
    loss,
    iters,
    batch_size,
    crop,
    lr,
    device,
    amp,
    workers,
    seed,
    resume,
    overwrite,
    eval_every,
    as_json,
):
    """Train a segmentation network from scratch on DATASET (a unified dataset with train and val
    splits) and evaluate it per frequency bucket on val.

    Writes OUT/checkpoint.pt (architecture, vocabulary, weights, optimiser state; what
    `segdata eval --model` and --resume read) and OUT/metrics.jsonl (iter, loss, lr; miou and
    buckets at each evaluation). Deterministic for a seed on the CPU. Under torchrun every process
    trains on its shard (DistributedDataParallel); only the first writes. Ctrl-C writes the
    checkpoint and exits 130: --resume continues.

    \b
    Example:
      segdata synthesize ade20k /tmp/synth --images 400 --classes 40
      segdata convert ade20k /tmp/synth/ADE20K_2021_17_01 --to unified /tmp/synth-unified
      segdata train /tmp/synth-unified --model deeplab-small --out /tmp/run --iters 2000 --crop 256 --sampler repeat-factor
      torchrun --nproc-per-node 2 -m segdata train /tmp/synth-unified --out /tmp/run2 --device cuda --amp
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        from rich.markup import escape

        fail(escape(TORCH_MISSING), code=2)
    from ..torch.train import TrainingInterrupted
    from ..torch.train import train as run

    show = not as_json and _is_main()
    with errors(out), LossProgress(f"training {model}", enabled=show) as progress:
        try:
            result = run(
                dataset,
                out,
                model=model,
                vocab=vocab,
                sampler=sampler,
                repeat_threshold=repeat_threshold,
                loss=loss,
                iters=iters,
                batch_size=batch_size,
                crop=crop,
                lr=lr,
                device=device,
                amp=amp,
                workers=workers,
                seed=seed,
                resume=resume,
                overwrite=overwrite,
                eval_every=eval_every,
                progress=progress,
            )
        except TrainingInterrupted as exc:
            from rich.markup import escape

            fail(escape(f"{exc}: rerun with --resume"), code=130)
    if not _is_main():
        return
    with printing():
        if as_json:
            click.echo(json.dumps(result.to_dict(), indent=1))
        else:
            _render(result)


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"

"""The baseline trainer behind ``segdata train``: a network of :mod:`segdata.torch.models` trained
from scratch on a unified dataset, with uniform or repeat-factor sampling and a plain,
class-balanced or OHEM cross-entropy, evaluated per frequency bucket on the validation split.

What a run writes in its folder ``RUN`` (only process 0 writes):

- ``checkpoint.pt``: a ``torch.save`` dict written by
  :func:`segdata.torch.checkpoint.save_checkpoint` (see :data:`CHECKPOINT_KEYS`): ``format``
  (``"segdata-checkpoint"``), ``format_version`` (1), ``arch``, ``arch_args``, ``num_classes``,
  ``vocab`` (``Vocabulary.to_dict()``), ``normalize`` (``mean``, ``std`` of RGB in [0, 1]),
  ``state_dict``, ``optimizer``, ``scheduler``, ``iter`` (iterations done), ``seed``, ``args``
  (the options of :func:`train`), ``rng`` (for ``resume``: torch's generator states, and
  ``grad_scaler``, the AMP gradient scaler's state on CUDA). Tensors and plain Python values
  only: it loads with ``torch.load(path, weights_only=True)``. Written atomically (a temporary
  sibling renamed onto it) at every evaluation, at the end, and when training is interrupted
  (Ctrl-C).
  ``build(ckpt["arch"], ckpt["num_classes"], **ckpt["arch_args"])`` with ``load_state_dict``
  rebuilds the model.
- ``metrics.jsonl``: one JSON object a line: ``iter`` (1-based, iterations done), ``loss`` (mean
  training loss over the iterations since the previous line, over all processes), ``lr`` (the
  learning rate of the iteration), and at each evaluation ``miou`` (over the classes present in
  the validation split, NaN-free: null when none) and ``buckets`` (per-frequency-bucket mIoU as
  ``segdata eval --json`` writes them).

Optimiser: SGD with momentum 0.9, weight decay 1e-4 and the "poly" schedule ``lr * (1 -
iter / iters) ** 0.9`` (DeepLab's, mmsegmentation's and torchvision's segmentation recipes): the
recipe these compact networks are known to train well with from scratch, and with fewer knobs
than AdamW's (whose advantage, faster early progress, matters little once the budget is fixed).
``optimizer="adamw"`` (weight decay 0.01, same schedule) is there for comparison.

Determinism: the model is initialised after ``torch.manual_seed(seed)``; the sample order comes
from the sampler's per-epoch generator (``seed + epoch``); each sample's random scale, crop and
flip from a generator seeded by ``(seed, position in the sample stream, image)``
(:class:`segdata.torch.data.SegmentationDataset`'s ``seed``), so the tensors do not depend on
the number of DataLoader workers; deterministic algorithms are asked of torch while training
on the CPU. Two runs with the same seed on the CPU give identical weights, and a run resumed
from its checkpoint gives the weights of the uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..errors import InputError, OutputExistsError, SegdataError, SelectionError
from ..format import Dataset
from ..vocab import Vocabulary
from .batching import BatchLoader, WorkerBatches, collate
from .losses import LOSSES, build_loss
from .models import build

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEYS",
    "METRICS_FILE",
    "SAMPLERS",
    "TrainResult",
    "train",
]

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FORMAT = "segdata-checkpoint"
CHECKPOINT_VERSION = 1
#: the keys of a checkpoint dict
CHECKPOINT_KEYS = (
    "format",
    "format_version",
    "arch",
    "arch_args",
    "num_classes",
    "vocab",
    "normalize",
    "state_dict",
    "optimizer",
    "scheduler",
    "iter",
    "seed",
    "args",
    "rng",
)
SAMPLERS = ("uniform", "repeat-factor")
OPTIMIZERS = ("sgd", "adamw")
POLY_POWER = 0.9
#: options that must match the checkpoint's for ``resume`` (``iters`` may grow)
_RESUME_FIXED = (
    "model",
    "arch_args",
    "sampler",
    "loss",
    "batch_size",
    "crop",
    "lr",
    "seed",
    "optimizer",
    "weight_decay",
    "amp",
    "scale",
    "repeat_threshold",
    "cb_beta",
    "train_split",
)


class TrainingInterrupted(SegdataError):
    """Training stopped (Ctrl-C, SIGTERM) after ``iter`` iterations; the checkpoint holds them."""

    def __init__(self, out: Path, iteration: int):
        self.out = Path(out)
        self.iteration = iteration
        super().__init__(f"{out}: interrupted after {iteration} iterations; continue with resume")


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    out, checkpoint, metrics : Path
        The run folder and its two files.
    iters : int
        Iterations done in total (a resumed run counts those before it).
    start_iter : int
        The iteration it started from (0, or the checkpoint's when resumed).
    loss_first, loss_last : float
        Mean training loss over the first and the last tenth of this run's iterations (at least
        one each); NaN when it ran none.
    miou : float or None
        The last evaluation's mIoU on the validation split (None: not evaluated).
    buckets : list of dict or None
        The last evaluation's per-bucket mIoU (``eval --json``'s ``buckets``).
    seconds : float
        Wall time of this run's training iterations (evaluations excluded).
    images_per_second : float
        Training images per second over all processes.
    device : str
    world_size : int
        Processes that trained (``torchrun``).
    """

    out: Path
    checkpoint: Path
    metrics: Path
    iters: int
    start_iter: int
    loss_first: float
    loss_last: float
    miou: float | None
    buckets: list | None
    seconds: float
    images_per_second: float
    device: str
    world_size: int = 1
    args: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("out", "checkpoint", "metrics"):
            out[key] = str(out[key])
        for key in ("loss_first", "loss_last"):
            out[key] = None if math.isnan(out[key]) else round(out[key], 6)
        out["seconds"] = round(self.seconds, 3)
        out["images_per_second"] = round(self.images_per_second, 2)
        return out


# ---------------------------------------------------------------------------------- processes


@dataclass
class _World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    created: bool = False  # this call initialised the process group (and destroys it)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _world(device: str) -> _World:
    """The processes of this run: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is
    initialised here (nccl on CUDA, gloo on the CPU) unless the caller did."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        created = True
    else:
        created = False
    return _World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), created)


def _device(name: str, world: _World) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("cuda", "no CUDA device here (torch.cuda.is_available() is False); use --device cpu")
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    raise SelectionError(f"device must be cpu or cuda, got {name!r}")


# ---------------------------------------------------------------------------------- data


class _Positioned(torch.utils.data.Dataset):
    """Index with ``(image index, stream position)``: the sample's random transforms are seeded by
    its position in the run's stream of samples, so they do not depend on the workers and a
    resumed run draws what the uninterrupted one drew."""

    def __init__(self, data):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key):
        index, position = key
        self.data.set_epoch(position)
        return self.data[index]

    def __getitems__(self, keys) -> list:
        """The batch's samples; in a worker of the trainer's loader copied into one batch in
        shared memory (:meth:`segdata.torch.batching.WorkerBatches.stacked`)."""
        samples = [self[key] for key in keys]
        batches = getattr(self.data, "_batches", None)
        return samples if batches is None else batches.stacked(samples)


def _batches(sampler, batch_size: int, start: int, world: _World):
    """Batches ``[(image index, stream position), ...]`` of this process from iteration ``start``
    on, forever: the sampler's epochs one after the other (``set_epoch(0)``, 1, ...), cut into
    batches across epoch ends; the first ``start * batch_size`` samples are skipped without
    being read."""
    skip = start * batch_size
    position = 0
    batch: list[tuple[int, int]] = []
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        indices = list(sampler)
        if not indices:
            raise InputError("sampler", f"epoch {epoch} draws no image (every repeat factor is 0)")
        if position + len(indices) <= skip:  # a whole epoch before the start: skipped at once
            position += len(indices)
            epoch += 1
            continue
        for index in indices:
            if position >= skip:
                # per-process positions: process r of n takes stream keys r, r + n, ...
                batch.append((int(index), position * world.size + world.rank))
                if len(batch) == batch_size:
                    yield batch
                    batch = []
            position += 1
        epoch += 1


def _worker_init(worker_id: int) -> None:
    # random transforms draw from per-sample generators; numpy and random are seeded anyway for
    # user transforms that use them
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# ---------------------------------------------------------------------------------- checkpoint


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError, IndexError):
            torch.cuda.set_rng_state_all(state["cuda"])


def _load_checkpoint(path: Path) -> dict:
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.get("optimizer") is None or ckpt.get("rng") is None:
        raise InputError(path, "the checkpoint holds no optimiser state: it was not written by segdata train")
    return ckpt


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


# ---------------------------------------------------------------------------------- run folder


def _prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless resuming (it must hold a checkpoint) or overwriting (the
    files of an earlier run are removed; other files are left alone)."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if resume:
        if not (out / CHECKPOINT_FILE).is_file():
            raise InputError(out / CHECKPOINT_FILE, "no checkpoint to resume from")
        return
    if entries and not overwrite:
        raise OutputExistsError(f"{out}: not empty; pass resume to continue its run or overwrite to start over")


def _clear_run(out: Path) -> None:
    for name in (CHECKPOINT_FILE, METRICS_FILE):
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Keep the lines of ``metrics.jsonl`` up to ``iteration`` (what the checkpoint holds): a
    resumed run writes the later ones again, as the uninterrupted run did."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the interruption
            break
        if record.get("iter", 0) > iteration:
            break
        kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------- evaluation


def _evaluate(checkpoint: Path, vocab: Vocabulary, ds: Dataset, options: dict) -> dict:
    """``{"miou", "buckets"}`` of the model in ``checkpoint`` on the validation split, exactly as
    ``segdata eval --model RUN/checkpoint.pt --by-frequency --json`` reports them
    (:func:`segdata.eval.evaluate_model`: whole images, the confusion counted on the device,
    LVIS buckets of the training split, BCa intervals of 1,000 resamples with seed 0). Under
    ``torchrun`` every process evaluates its share of the images and the counts are
    all-reduced."""
    from ..eval import evaluate_model

    result = evaluate_model(ds, str(checkpoint), vocab=vocab, by_frequency=True, **options).to_dict()
    return {"miou": result.get("miou"), "buckets": result.get("buckets")}


# ---------------------------------------------------------------------------------- training


def _optimizer(name: str, model: torch.nn.Module, lr: float, weight_decay: float | None):
    if name == "sgd":
        wd = 1e-4 if weight_decay is None else weight_decay
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    if name == "adamw":
        wd = 0.01 if weight_decay is None else weight_decay
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    raise SelectionError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def _autocast(device: torch.device, amp: bool):
    if not amp:
        return contextlib.nullcontext()
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _check_options(model, sampler, loss, iters, batch_size, crop, lr, eval_every, workers):
    if sampler not in SAMPLERS:
        raise SelectionError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if loss not in LOSSES:
        raise SelectionError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    for name, value in (("iters", iters), ("batch_size", batch_size), ("crop", crop)):
        if int(value) < 1:
            raise SelectionError(f"{name} must be >= 1, got {value}")
    if not lr > 0:
        raise SelectionError(f"lr must be > 0, got {lr}")
    if eval_every < 0 or workers < 0:
        raise SelectionError("eval_every and workers must be >= 0")


def train(
    ds: Dataset | str | Path,
    out: str | Path,
    model: str = "deeplab-small",
    vocab: Vocabulary | str | Path | None = None,
    sampler: str = "uniform",
    loss: str = "ce",
    iters: int = 1000,
    batch_size: int = 8,
    crop: int = 512,
    lr: float = 0.01,
    device: str = "cpu",
    amp: bool = False,
    workers: int = 0,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    eval_every: int = 0,
    *,
    arch_args: dict | None = None,
    optimizer: str = "sgd",
    weight_decay: float | None = None,
    scale: tuple[float, float] = (0.5, 2.0),
    repeat_threshold: float = 0.01,
    cb_beta: float = 0.999,
    train_split: str = "train",
    val_split: str = "val",
    log_every: int = 1,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` on the ``train_split`` of ``ds`` and write the run folder ``out``.

    Parameters
    ----------
    ds : Dataset or path
        A unified dataset with a ``train`` split (and a ``val`` split to be evaluated).
    out : path
        The run folder: created; an existing non-empty one is refused unless ``resume`` or
        ``overwrite``.
    model : str
        An architecture of :func:`segdata.torch.models.build`; ``arch_args`` its arguments.
    vocab : Vocabulary or path, optional
        Unified class ids -> train ids ``0..K-1`` (the model's K channels). Default: the source's
        own train ids when it defines them, else every class not flagged ignore.
    sampler : {"uniform", "repeat-factor"}
        Every training image once an epoch in shuffled order, or LVIS repeat-factor sampling
        (:func:`segdata.torch.samplers.repeat_factors`, threshold ``repeat_threshold`` over the
        share of images holding each class).
    loss : {"ce", "class-balanced", "ohem"}
        Cross-entropy; weighted by the effective number of training images holding each class
        (``cb_beta``; :func:`segdata.torch.samplers.class_weights` ``by="images"``); or OHEM.
    iters, batch_size, crop, lr :
        Iterations, images per iteration and process, square crop side in pixels (after a random
        rescale by a factor in ``scale`` and with ignore padding), base learning rate.
    device : {"cpu", "cuda"}
        Under ``torchrun`` each process takes ``cuda:LOCAL_RANK``.
    amp : bool
        Mixed precision: float16 with a gradient scaler on CUDA, bfloat16 on the CPU.
    workers : int
        DataLoader worker processes (0: load in this process).
    seed : int
    resume : bool
        Continue the run in ``out`` from its checkpoint; the options must match its own
        (``iters`` may differ: the schedule then runs to the new count).
    eval_every : int
        Evaluate (and write the checkpoint) every this many iterations; 0: at the end only. The
        end of training is always evaluated when the dataset has ``val_split``.
    overwrite : bool
        Start over in a non-empty ``out``: its ``checkpoint.pt`` and ``metrics.jsonl`` are
        replaced, other files left alone.
    arch_args : dict, optional
        Keyword arguments of the architecture (``width``, ``output_stride``, ``base``...).
    optimizer : {"sgd", "adamw"}
        SGD (momentum 0.9, weight decay 1e-4) or AdamW (weight decay 0.01), both with the poly
        schedule; ``weight_decay`` overrides the decay.
    scale : (float, float)
        Range of the random rescale before cropping.
    repeat_threshold : float
        ``t`` of the repeat factors ``max(1, sqrt(t / f(c)))``: only classes held by fewer than a
        share ``t`` of the training images are repeated (LVIS: 0.001 over 100k images; a few
        hundred images need about 0.1).
    cb_beta : float
        ``beta`` of the class-balanced weights over image counts, in [0, 1): 0.999 distinguishes
        classes held by tens to thousands of images.
    train_split, val_split : str
        The splits trained on and evaluated on.
    log_every : int
        Iterations per line of ``metrics.jsonl`` (evaluations always get their line).
    progress : callable, optional
        ``progress(iterations_done, iters, loss)`` after each iteration (``loss``: this
        iteration's, on this process).

    Returns
    -------
    TrainResult

    Raises
    ------
    OutputExistsError
        ``out`` is not empty and neither ``resume`` nor ``overwrite`` was given.
    InputError
        The checkpoint to resume is missing, unreadable or from other options; an image or mask
        is unreadable (naming it); CUDA asked for and absent.
    SelectionError
        A split the dataset lacks, an unknown sampler, loss or model, a bad number.
    TrainingInterrupted
        Ctrl-C (KeyboardInterrupt) during training: the checkpoint was written first.
    """
    from .checkpoint import save_checkpoint
    from .data import SegmentationDataset
    from .samplers import RepeatFactorSampler, class_weights, repeat_factors
    from .transforms import IMAGENET_MEAN, IMAGENET_STD, train_transform

    _check_options(model, sampler, loss, iters, batch_size, crop, lr, eval_every, workers)
    out = Path(out)
    ds = ds if isinstance(ds, Dataset) else Dataset(ds)
    arch_args = dict(arch_args or {})
    args = {
        "dataset": str(ds.path),
        "model": model,
        "arch_args": arch_args,
        "sampler": sampler,
        "loss": loss,
        "iters": int(iters),
        "batch_size": int(batch_size),
        "crop": int(crop),
        "lr": float(lr),
        "device": device,
        "amp": bool(amp),
        "workers": int(workers),
        "seed": int(seed),
        "eval_every": int(eval_every),
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "scale": [float(s) for s in scale],
        "repeat_threshold": float(repeat_threshold),
        "cb_beta": float(cb_beta),
        "train_split": train_split,
        "val_split": val_split,
    }
    _prepare_out(out, resume, overwrite)
    ckpt = None
    if resume:
        ckpt = _load_checkpoint(out / CHECKPOINT_FILE)
        saved = ckpt.get("args", {})
        changed = [k for k in _RESUME_FIXED if k in saved and saved[k] != args[k]]
        if changed:
            diff = ", ".join(f"{k} {saved[k]!r} there, {args[k]!r} here" for k in changed)
            raise InputError(out / CHECKPOINT_FILE, f"the run was started with other options: {diff}")
        vocab = Vocabulary.from_dict(ckpt["vocab"], str(out / CHECKPOINT_FILE))

    world = _world(device)
    try:
        torch_device = _device(device, world)
        train_data = SegmentationDataset(
            ds, train_split, vocab, transform=train_transform(int(crop), tuple(scale)), seed=int(seed)
        )
        vocab = train_data.vocab
        num_classes = vocab.num_classes
        if len(train_data) == 0:
            raise InputError(ds.path, f"split {train_split!r} has no image annotated in layer objects")
        if num_classes == 0:
            raise InputError(ds.path, "the vocabulary has no class to train")
        has_val = val_split in set(ds.images["split"])
        if eval_every and not has_val:
            raise SelectionError(f"{ds.path}: no split {val_split!r} to evaluate on; splits: {', '.join(ds.splits)}")
        normalize = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}

        factors = (
            repeat_factors(ds, train_split, vocab, threshold=repeat_threshold)
            if sampler == "repeat-factor"
            else np.ones(len(train_data))
        )
        order = RepeatFactorSampler(factors, seed=int(seed), shuffle=True, num_replicas=world.size, rank=world.rank)
        weights = class_weights(ds, train_split, vocab, beta=cb_beta, by="images") if loss == "class-balanced" else None
        criterion = build_loss(loss, vocab.ignore_index, weights).to(torch_device)

        torch.manual_seed(int(seed))
        try:
            net = build(model, num_classes, **arch_args).to(torch_device)
        except ValueError as exc:  # an unknown model or argument: the caller's choice
            raise SelectionError(str(exc)) from None
        opt = _optimizer(optimizer, net, float(lr), weight_decay)
        total = int(iters)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: max(0.0, 1.0 - min(i, total) / total) ** POLY_POWER
        )
        scaler = torch.amp.GradScaler("cuda") if amp and torch_device.type == "cuda" else None
        start = 0
        if ckpt is not None:
            net.load_state_dict(ckpt["state_dict"])
            opt.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if scaler is not None and ckpt["rng"].get("grad_scaler"):
                scaler.load_state_dict(ckpt["rng"]["grad_scaler"])
            _set_rng_state(ckpt["rng"])
            start = int(ckpt["iter"])
        if world.size > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[world.local_rank] if torch_device.type == "cuda" else None
            )

        if world.main:
            out.mkdir(parents=True, exist_ok=True)
            if resume:
                _truncate_metrics(out / METRICS_FILE, start)
            else:
                _clear_run(out)
        if world.size > 1:
            dist.barrier()

        def checkpoint(iteration: int) -> None:
            if not world.main:
                return
            rng = _rng_state()
            if scaler is not None:
                rng["grad_scaler"] = scaler.state_dict()
            save_checkpoint(
                out / CHECKPOINT_FILE,
                arch=model,
                arch_args=arch_args,
                num_classes=num_classes,
                state_dict=_unwrap(net).state_dict(),
                vocab=vocab,
                normalize=normalize,
                optimizer=opt.state_dict(),
                scheduler=scheduler.state_dict(),
                iter=iteration,
                seed=int(seed),
                args=args,
                rng=rng,
            )

        def evaluate() -> dict:
            options = {"split": val_split, "freq_split": train_split, "workers": workers, "amp": amp}
            if world.size > 1:
                dist.barrier()  # process 0 has written the checkpoint
            return _evaluate(out / CHECKPOINT_FILE, vocab, ds, {**options, "device": str(torch_device)})

        run_data = copy.copy(train_data)
        if int(workers) > 0:  # batches written once into shared memory each worker reuses
            run_data._batches = WorkerBatches(slots=4)
        loader = BatchLoader(
            torch.utils.data.DataLoader(
                _Positioned(run_data),
                batch_sampler=_batches(order, int(batch_size), start, world),
                num_workers=int(workers),
                collate_fn=collate,
                worker_init_fn=_worker_init,
                generator=torch.Generator().manual_seed(int(seed)),
            ),
            pin_memory=torch_device.type == "cuda",
        )
        losses: list[float] = []
        pending: list[float] = []
        evaluation: dict = {}
        seconds = 0.0
        done = start
        deterministic = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        if torch_device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        metrics_file = open(out / METRICS_FILE, "a", encoding="utf-8") if world.main else None
        try:
            net.train()
            batches = iter(loader)
            tick = time.perf_counter()
            for iteration in range(start, total):
                batch = next(batches)
                image = batch["image"].to(torch_device, non_blocking=True)
                label = batch["label"].to(torch_device, non_blocking=True)
                lr_now = scheduler.get_last_lr()[0]
                with _autocast(torch_device, amp):
                    logits = net(image)
                value = criterion(logits.float(), label)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(value).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    value.backward()
                    opt.step()
                scheduler.step()
                value = value.detach()
                if world.size > 1:
                    dist.all_reduce(value)
                    value /= world.size
                loss_value = float(value)
                losses.append(loss_value)
                pending.append(loss_value)
                done = iteration + 1
                evaluating = (eval_every and done % eval_every == 0) or (done == total and has_val)
                if evaluating or done % max(1, log_every) == 0 or done == total:
                    record = {"iter": done, "loss": round(float(np.mean(pending)), 6), "lr": lr_now}
                    pending = []
                    if evaluating or done == total:
                        checkpoint(done)
                    if evaluating:  # the checkpoint just written, as `segdata eval --model` scores it
                        seconds += time.perf_counter() - tick
                        evaluation = evaluate()
                        record.update(evaluation)
                        tick = time.perf_counter()
                    if metrics_file is not None:
                        metrics_file.write(json.dumps(record, allow_nan=False) + "\n")
                        metrics_file.flush()
                if progress is not None:
                    progress(done, total, loss_value)
            seconds += time.perf_counter() - tick
        except KeyboardInterrupt:
            if done > start and world.main:
                checkpoint(done)
            raise TrainingInterrupted(out, done) from None
        finally:
            if metrics_file is not None:
                metrics_file.close()
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        if start >= total and world.main and not (out / CHECKPOINT_FILE).is_file():
            checkpoint(start)
    finally:
        if world.created:
            dist.destroy_process_group()

    n = len(losses)
    tenth = max(1, n // 10)
    return TrainResult(
        out=out,
        checkpoint=out / CHECKPOINT_FILE,
        metrics=out / METRICS_FILE,
        iters=done,
        start_iter=start,
        loss_first=float(np.mean(losses[:tenth])) if n else math.nan,
        loss_last=float(np.mean(losses[-tenth:])) if n else math.nan,
        miou=evaluation.get("miou"),
        buckets=evaluation.get("buckets"),
        seconds=seconds,
        images_per_second=(n * int(batch_size) * world.size / seconds) if seconds > 0 else 0.0,
        device=str(torch_device),
        world_size=world.size,
        args=args,
    )

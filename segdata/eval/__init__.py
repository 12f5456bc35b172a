"""Evaluating predictions against a unified dataset: ``segdata eval``.

- :mod:`~segdata.eval.space`: the evaluated classes and what a prediction value means;
- :mod:`~segdata.eval.predictions`: finding and reading prediction PNGs;
- :mod:`~segdata.eval.counting`: per-image counting into :class:`Counts`;
- :mod:`~segdata.eval.buckets`: frequency buckets on the training split;
- :mod:`~segdata.eval.instances`: size recall and Cityscapes' iIoU;
- :mod:`~segdata.eval.conventions`: the figures of mmsegmentation, detectron2, cityscapesScripts
  and the ADE20K devkit;
- :mod:`~segdata.eval.scoring`: counts -> :class:`EvalResult` (buckets, ceiling, BCa intervals).

:func:`evaluate` runs the whole of it on a folder of prediction PNGs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DeviceError, InputError, SelectionError
from ..format import Dataset, open_dataset
from .counting import Counts, count_files
from .predictions import find_predictions, read_prediction
from .scoring import EvalResult, score
from .space import EvalSpace

__all__ = [
    "Counts",
    "EvalResult",
    "EvalSpace",
    "count_files",
    "evaluate",
    "evaluate_model",
    "find_predictions",
    "prediction_items",
    "read_prediction",
    "score",
]

MISSING = ("error", "skip")


def prediction_items(
    ds: Dataset, space: EvalSpace, pred_dir: str | Path, split: str = "val", missing: str = "error", layer="objects"
) -> tuple[list[tuple], list[str]]:
    """The work of evaluating ``pred_dir``: per image of ``split`` with a prediction,
    ``(image_id, mask path or None, prediction path, (H, W), segment lut)``, and the image ids
    skipped for want of a prediction.

    Raises
    ------
    SelectionError
        ``split`` is not in the dataset, or ``missing`` is not ``error``/``skip``.
    InputError
        A prediction is missing and ``missing`` is ``error`` (naming the file expected), or none
        of the split's images has one.
    """
    if missing not in MISSING:
        raise SelectionError(f"--missing must be error or skip, got {missing!r}")
    images = ds.select_images(split)
    ids = images["image_id"].tolist()
    found, absent = find_predictions(pred_dir, ids)
    pred_dir = Path(pred_dir)
    if absent and missing == "error":
        raise InputError(
            pred_dir / f"{absent[0]}.png",
            f"no prediction for image {absent[0]} ({len(absent)} of {len(ids)} images of split {split} have none)",
            "use --missing skip to evaluate the images that have one",
        )
    if not found:
        raise InputError(pred_dir, f"no prediction for any of the {len(ids)} images of split {split}")
    has = ds.has_layer(layer)
    keep = images[[i in found for i in ids]]
    flags = has[ds.images.index.get_indexer(keep.index)]
    gt_lut = space.gt_lut

    def to_index(cids: np.ndarray) -> np.ndarray:
        cids = np.asarray(cids, dtype=np.int64)
        return np.where(cids < len(gt_lut), gt_lut[np.minimum(cids, len(gt_lut) - 1)], -1)

    luts = ds.lookup_tables(layer, keep["image_id"], to_index, dtype=np.int32, fill=-1)
    items = []
    for j, row in enumerate(keep.itertuples(index=False)):
        annotated = bool(flags[j])
        mask = ds.path / f"masks/{layer}/{row.split}/{row.image_id}.png" if annotated else None
        items.append((row.image_id, mask, found[row.image_id], (int(row.height), int(row.width)), luts[row.image_id]))
    return items, absent


def evaluate(
    dataset: Dataset | str | Path,
    pred_dir: str | Path,
    *,
    pred_ids: str = "train",
    vocab=None,
    split: str = "val",
    by_frequency: bool = False,
    buckets: str = "lvis",
    freq_split: str = "train",
    ceiling=None,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    convention: str = "segdata",
    missing: str = "error",
    workers: int | None = None,
    executor=None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate the prediction PNGs under ``pred_dir`` against ``split`` of ``dataset``.

    See ``segdata eval --help`` for the options; ``ceiling`` is a ceiling file path or a read
    :class:`~segdata.analyses.consistency.ceiling.Ceiling`; ``device`` ``cpu`` counts with numpy
    and the C kernel in the process pool, ``cuda`` (or another torch device) on the device with
    :mod:`segdata.torch`.
    """
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    if device != "cpu":
        check_device(device)
    space = EvalSpace.build(ds, pred_ids, vocab)
    if ceiling is not None and not hasattr(ceiling, "classes"):
        from ..analyses.consistency.ceiling import read_ceiling

        ceiling = read_ceiling(ceiling)
    items, skipped = prediction_items(ds, space, pred_dir, split, missing)
    if device == "cpu":
        counts = count_files(space, items, workers=workers, executor=executor, progress=progress)
    else:
        from ..torch.confusion import count_files_torch

        counts = count_files_torch(space, items, device=device, workers=workers, progress=progress)
    settings = _settings(
        ds,
        space,
        split,
        pred=str(pred_dir),
        pred_ids=pred_ids,
        vocab=vocab,
        by_frequency=by_frequency,
        buckets=buckets,
        freq_split=freq_split,
        bootstrap=bootstrap,
        seed=seed,
        convention=convention,
        device=device,
        images=len(items),
        missing=missing,
        skipped=skipped,
    )
    return score(
        ds,
        space,
        counts,
        by_frequency=by_frequency,
        bucket_rule=buckets,
        freq_split=freq_split,
        ceiling=ceiling,
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
        convention=convention,
        settings=settings,
    )


def _settings(
    ds: Dataset, space: EvalSpace, split: str, *, vocab, by_frequency, buckets, freq_split, images, **more
) -> dict:
    """The ``settings`` block of a report: what was evaluated, how, and what was ignored."""
    return {
        "dataset": str(ds.path),
        "name": ds.name,
        "split": split,
        "images": int(images),
        "vocab": None if vocab is None else getattr(vocab, "source", str(vocab)),
        "classes": space.num_classes,
        "ignore": space.ignore,
        "no_prediction_values": list(space.miss_values),
        "by_frequency": bool(by_frequency),
        "buckets": str(buckets) if by_frequency else None,
        "freq_split": freq_split if by_frequency else None,
        **more,
        "skipped": more.get("skipped", []),
    }


def evaluate_model(
    dataset: Dataset | str | Path,
    spec: str,
    *,
    vocab=None,
    split: str = "val",
    by_frequency: bool = False,
    buckets: str = "lvis",
    freq_split: str = "train",
    ceiling=None,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    convention: str = "segdata",
    batch_size: int = 4,
    workers: int | None = None,
    device: str = "cpu",
    window: tuple[int, int] | None = None,
    stride: int | None = None,
    amp: bool = False,
    save_pred: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Run a model over ``split`` of ``dataset`` and score it like :func:`evaluate` (the same
    report). ``spec``: a ``segdata train`` checkpoint, a TorchScript file or ``module:factory``
    (:func:`segdata.torch.checkpoint.load_model`); needs PyTorch (``segdata[torch]``). The
    confusion matrix is accumulated on ``device``; ``save_pred`` also writes the predictions as
    PNGs in train ids, which :func:`evaluate` scores to the same figures."""
    check_device(device)
    from ..torch.checkpoint import load_model
    from ..torch.inference import evaluate_model as run_model

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    loaded = load_model(spec, device)
    # the model's own vocabulary (a segdata checkpoint carries it) unless one is asked for
    space = EvalSpace.build(ds, "train", vocab if vocab is not None or loaded.vocab is None else loaded.vocab)
    if ceiling is not None and not hasattr(ceiling, "classes"):
        from ..analyses.consistency.ceiling import read_ceiling

        ceiling = read_ceiling(ceiling)
    counts = run_model(
        ds,
        loaded,
        split=split,
        space=space,
        batch_size=batch_size,
        workers=workers,
        device=device,
        window=window,
        stride=stride,
        amp=amp,
        save_pred=save_pred,
        progress=progress,
    )
    settings = _settings(
        ds,
        space,
        split,
        model=str(spec),
        pred_ids="train",
        vocab=vocab,
        by_frequency=by_frequency,
        buckets=buckets,
        freq_split=freq_split,
        bootstrap=bootstrap,
        seed=seed,
        convention=convention,
        device=device,
        images=len(counts.image_ids),
        window=list(window) if window else None,
        stride=stride,
        amp=bool(amp),
    )
    return score(
        ds,
        space,
        counts,
        by_frequency=by_frequency,
        bucket_rule=buckets,
        freq_split=freq_split,
        ceiling=ceiling,
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
        convention=convention,
        settings=settings,
    )


def check_device(device: str) -> None:
    """Raise :class:`DeviceError` (one line) unless PyTorch is installed and ``device`` is usable
    here: a device string torch parses, and for CUDA a visible GPU of that index."""
    try:
        import torch
    except ImportError:
        raise DeviceError(f"--device {device} needs PyTorch: pip install 'segdata[torch]'") from None
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise SelectionError(f"--device {device}: not a torch device ({exc})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise DeviceError(f"--device {device}: CUDA is not available (torch {torch.__version__}, {build})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")

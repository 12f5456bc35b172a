"""Running a model over a dataset and counting its predictions on the device: ``segdata eval --model``.

:func:`predict` runs a network on a batch, over the whole image or by sliding windows
(mmsegmentation's ``slide`` mode); :func:`evaluate_model` runs it over a split of a unified dataset
and returns the same :class:`segdata.eval.counting.Counts` as scoring prediction files does
(``segdata eval --pred``), so that every figure of the report (buckets, ceiling, size recall,
bootstrap intervals) follows from it unchanged.

Pipeline: DataLoader workers read each image (uint8 RGB) and its ``objects`` segment-id map with
segdata's decoders; on the device the image is normalised, the model gives logits (upsampled to the
image's size when the network outputs fewer pixels), ``argmax`` picks a channel, a table maps the
channel to the eval index, and :class:`~segdata.torch.confusion.DeviceConfusion` counts it against
the ground truth (``segment -> eval index`` per image, from the segment table) with one bincount per
batch. Nothing goes back to the host per image, except the predicted PNGs when ``save_pred`` asks
for them. Under ``torchrun`` each process evaluates every ``WORLD_SIZE``-th image and the counts are
all-reduced: every process returns the counts of all the images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..maskio import encode_png, read_segment_map
from .checkpoint import LoadedModel, load_model
from .confusion import DeviceConfusion

__all__ = [
    "channel_table",
    "evaluate_model",
    "parse_size",
    "predict",
    "slide_windows",
    "write_prediction",
]


def parse_size(text, name: str = "size") -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"512x1024"`` -> (512, 1024) (height x width); an int or a pair
    passes through. ValueError on anything else."""
    if isinstance(text, int):
        pair = (text, text)
    elif isinstance(text, (tuple, list)):
        pair = tuple(int(v) for v in text)
    else:
        parts = str(text).lower().replace(" ", "").split("x")
        try:
            pair = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"{name} must be N or HxW (pixels), got {text!r}") from None
        if len(pair) == 1:
            pair = (pair[0], pair[0])
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be N or HxW with positive sizes, got {text!r}")
    return int(pair[0]), int(pair[1])


# --------------------------------------------------------------------------- prediction


def _logits_of(output) -> torch.Tensor:
    """The logits of a model's output: a tensor, a dict's ``"out"`` (torchvision), or a tuple's first."""
    if isinstance(output, dict):
        output = output["out"]
    elif isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.ndim != 4:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"the model returned {shape}; expected logits (B, C, h, w)")
    return output


def _forward(model, x: torch.Tensor, amp: bool) -> torch.Tensor:
    """One forward pass; logits as float32 at the input's size (bilinear upsampling when smaller)."""
    if amp:
        dtype = torch.float16 if x.device.type == "cuda" else torch.bfloat16
        context = torch.autocast(device_type=x.device.type, dtype=dtype)
    else:
        context = nullcontext()
    with context:
        logits = _logits_of(model(x))
    logits = logits.float()
    if tuple(logits.shape[-2:]) != tuple(x.shape[-2:]):
        logits = F.interpolate(logits, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return logits


def slide_windows(height: int, width: int, window, stride) -> list[tuple[int, int, int, int]]:
    """The windows ``(y1, y2, x1, x2)`` (half-open, pixels) of mmsegmentation's slide inference:
    a grid of ``window`` steps ``stride`` apart, the last row and column shifted back to end at the
    border; an image smaller than the window is one window (padded when predicted).

    >>> slide_windows(5, 4, (3, 3), (2, 2))
    [(0, 3, 0, 3), (0, 3, 1, 4), (2, 5, 0, 3), (2, 5, 1, 4)]
    """
    wh, ww = parse_size(window, "window")
    sh, sw = parse_size(stride, "stride")
    rows = max(height - wh + sh - 1, 0) // sh + 1
    cols = max(width - ww + sw - 1, 0) // sw + 1
    out = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + wh, height), min(c * sw + ww, width)
            out.append((max(y2 - wh, 0), y2, max(x2 - ww, 0), x2))
    return out


@torch.inference_mode()
def predict(model, images: torch.Tensor, window=None, stride=None, amp: bool = False) -> torch.Tensor:
    """Logits of ``model`` on a batch of normalised images.

    Parameters
    ----------
    model : callable
        ``model(x)`` on ``(B, 3, h, w)`` gives logits ``(B, C, h', w')`` (a dict with ``"out"`` or a
        tuple whose first item is the logits also do); ``h', w'`` smaller than ``h, w`` are
        upsampled bilinearly.
    images : tensor of float, shape (B, 3, H, W)
        Normalised images, on the model's device.
    window : int or (h, w) or "HxW", optional
        Sliding-window inference with windows of this size (pixels); default the whole image.
    stride : int or (h, w) or "HxW", optional
        Step between windows; default two thirds of the window (mmsegmentation's usual ratio).
    amp : bool
        Autocast (float16 on CUDA, bfloat16 on CPU); the logits come back as float32.

    Returns
    -------
    tensor of float32, shape (B, C, H, W)
        Whole image: the model's logits. Sliding windows: every window's logits summed where they
        overlap and divided by the number of windows covering each pixel; a window larger than the
        image is predicted on the image padded with zeros (the mean colour, after normalisation)
        at the bottom and right, and cropped back.
    """
    if images.ndim != 4:
        raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(images.shape)}")
    if window is None:
        return _forward(model, images, amp)
    wh, ww = parse_size(window, "window")
    stride = parse_size(stride, "stride") if stride is not None else (max(1, wh * 2 // 3), max(1, ww * 2 // 3))
    b, _, h, w = images.shape
    total = None
    count = torch.zeros((1, 1, h, w), dtype=torch.float32, device=images.device)
    for y1, y2, x1, x2 in slide_windows(h, w, (wh, ww), stride):
        crop = images[:, :, y1:y2, x1:x2]
        ph, pw = wh - (y2 - y1), ww - (x2 - x1)
        if ph or pw:
            crop = F.pad(crop, (0, pw, 0, ph))
        logits = _forward(model, crop, amp)[:, :, : y2 - y1, : x2 - x1]
        if total is None:
            total = torch.zeros((b, logits.shape[1], h, w), dtype=torch.float32, device=images.device)
        total[:, :, y1:y2, x1:x2] += logits
        count[:, :, y1:y2, x1:x2] += 1
    return total / count


# --------------------------------------------------------------------------- model -> eval index


def channel_table(vocab, space, num_channels: int, where: str) -> torch.Tensor | None:
    """Output channel -> eval index, or None when channel c is eval index c.

    ``vocab`` is the model's (its train id c = channel c), or None when the model does not say:
    then it must output exactly K channels, taken as the eval space's train ids. With a
    vocabulary, each channel's unified class ids must be those of one evaluated class (in any
    order); anything else is an InputError naming ``where`` (the model).
    """
    k = space.num_classes
    if vocab is None:
        if num_channels != k:
            raise InputError(
                where,
                f"the model outputs {num_channels} channels, the evaluation has {k} classes "
                f"({', '.join(space.names[:5])}{', ...' if k > 5 else ''})",
                "evaluate with the vocabulary the model was trained on (--vocab FILE)",
            )
        return None
    if vocab.num_classes != num_channels:
        raise InputError(
            where, f"the model's vocabulary has {vocab.num_classes} classes, its output {num_channels} channels"
        )
    theirs = [tuple(sorted(e.class_ids)) for e in vocab.entries]
    ours = {tuple(sorted(ids)): i for i, ids in enumerate(space.class_ids)}
    if len(theirs) != k or set(theirs) != set(ours):
        diff = next(
            (f"train id {c} ({vocab.entries[c].name})" for c, ids in enumerate(theirs) if ids not in ours), None
        )
        detail = f"; {diff} is not an evaluated class" if diff else ""
        raise InputError(
            where,
            f"the model's vocabulary ({vocab.num_classes} classes) is not the evaluated one ({k} classes){detail}",
            "evaluate with --vocab set to the vocabulary the model was trained on",
        )
    table = [ours[ids] for ids in theirs]
    if table == list(range(k)):
        return None
    return torch.tensor(table, dtype=torch.int32)


# --------------------------------------------------------------------------- data


def _read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file, with the training data's decoder when it is there."""
    try:
        from .data import _decode_rgb
    except ImportError:  # pragma: no cover - the data module of the bridge is missing
        _decode_rgb = None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "image file not found", "the source images must stay where the manifest says") from None
    except OSError as exc:
        raise InputError(path, f"cannot read image file ({exc.strerror})") from None
    if _decode_rgb is not None:
        rgb = _decode_rgb(data, path)
        return rgb if rgb.flags.writeable else rgb.copy()
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.array(im.convert("RGB"))
    except Exception as exc:
        raise InputError(path, f"cannot decode image ({exc})") from None


class _EvalItems(torch.utils.data.Dataset):
    """(position, image uint8 (3, H, W), segment map (H, W), segment lut) per evaluated image."""

    def __init__(self, items: Sequence[tuple]):
        self.items = list(items)  # (position, image_id, image path, mask path or None, (H, W), lut)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        try:
            return self._read(i)
        except InputError as exc:  # re-raised as itself by the main process (DataLoader would wrap it)
            return {"error": exc}

    def _read(self, i: int) -> dict:
        pos, image_id, image_path, mask_path, shape, lut = self.items[i]
        rgb = _read_rgb(Path(image_path))
        if rgb.shape[:2] != tuple(shape):
            raise InputError(
                image_path, f"image is {rgb.shape[1]}x{rgb.shape[0]}, its annotation {shape[1]}x{shape[0]}"
            )
        if mask_path is None:
            seg = np.zeros(shape, dtype=np.uint8)
        else:
            seg = read_segment_map(mask_path)
            if seg.shape != tuple(shape):
                raise InputError(
                    mask_path, f"mask is {seg.shape[1]}x{seg.shape[0]}, the image is {shape[1]}x{shape[0]}"
                )
            top = int(seg.max()) if seg.size else 0
            if top >= len(lut):
                raise InputError(mask_path, f"segment id {top} has no row in segments.parquet")
        if seg.dtype != np.uint8:
            seg = seg.astype(np.int32)
        return {
            "index": pos,
            "image": torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1),
            "segments": torch.from_numpy(seg),
            "lut": torch.from_numpy(np.asarray(lut, dtype=np.int64)),
        }


def _collate(samples: list[dict]) -> dict:
    for s in samples:
        if "error" in s:
            return {"error": s["error"]}
    segs = [s["segments"] for s in samples]
    if any(s.dtype != segs[0].dtype for s in segs):
        segs = [s.to(torch.int32) for s in segs]
    return {
        "index": torch.tensor([s["index"] for s in samples], dtype=torch.int64),
        "image": torch.stack([s["image"] for s in samples]),
        "segments": torch.stack(segs),
        "luts": [s["lut"] for s in samples],
    }


def _size_batches(shapes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Consecutive images of one size, at most ``batch_size`` a batch (the order kept)."""
    batches: list[list[int]] = []
    for i, shape in enumerate(shapes):
        if batches and len(batches[-1]) < batch_size and shapes[batches[-1][0]] == shape:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _eval_items(ds, space, image_ids: Sequence[str], layer: str = "objects") -> list[tuple]:
    """(position, image id, image path, mask path or None, (H, W), segment -> eval index lut)."""
    gt_lut = np.asarray(space.gt_lut, dtype=np.int64)

    def to_eval(cids: np.ndarray) -> np.ndarray:
        inside = (cids >= 0) & (cids < len(gt_lut))
        return np.where(inside, gt_lut[np.clip(cids, 0, len(gt_lut) - 1)], -1)

    luts = ds.lookup_tables(layer, image_ids, to_eval, dtype=np.int64, fill=-1) if layer in ds.layers else {}
    table = ds.images
    flags = ds.has_layer(layer) if layer in ds.layers else np.zeros(len(table), bool)
    rows = {
        iid: (int(h), int(w), bool(f))
        for iid, h, w, f in zip(table["image_id"], table["height"], table["width"], flags)
    }
    items = []
    for pos, iid in enumerate(image_ids):
        if iid not in rows:
            raise InputError(ds.path / "images.parquet", f"no image {iid!r}")
        h, w, annotated = rows[iid]
        image_path = ds.image_path(iid)
        if image_path is None:
            raise InputError(
                ds.path / "images.parquet",
                f"image {iid} has no image file (images.file is null: it was missing when converted)",
            )
        mask = ds.mask_path(iid, layer) if annotated else None
        lut = luts.get(iid, np.full(1, -1, dtype=np.int64))
        items.append((pos, iid, image_path, mask, (h, w), lut))
    return items


# --------------------------------------------------------------------------- predictions out


def write_prediction(folder: str | Path, image_id: str, values: np.ndarray, num_classes: int) -> Path:
    """Write ``folder/<image_id>.png``: predicted train ids as a grey PNG, 8-bit when
    ``num_classes`` <= 255 (255 stays free for "no prediction"), else 16-bit; atomically."""
    path = Path(folder) / f"{image_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint8 if num_classes <= 255 else np.uint16
    data = encode_png(np.ascontiguousarray(values, dtype=dtype))
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- distributed


def _process_group(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the group): the group torchrun asks for
    (``WORLD_SIZE`` > 1) is started with NCCL on CUDA, gloo otherwise."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), True


def _resolve_device(device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device", "CUDA is not available (this torch build or machine has no GPU)")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


# --------------------------------------------------------------------------- evaluation


def evaluate_model(
    ds,
    spec,
    split: str | None,
    space,
    batch_size: int = 1,
    workers: int | None = 0,
    device="cpu",
    window=None,
    stride=None,
    amp: bool = False,
    save_pred: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    image_ids: Sequence[str] | None = None,
):
    """Run a model over a split and count its predictions on the device.

    Parameters
    ----------
    ds : segdata.Dataset
    spec : str, Path or LoadedModel
        What :func:`segdata.torch.checkpoint.load_model` takes (a segdata checkpoint, a
        TorchScript file, ``module:factory``), or what it returned.
    split : str or None
        The images evaluated (``ds.select_images(split)``, in the dataset's order), unless
        ``image_ids`` names them.
    space : segdata.eval.space.EvalSpace
        The evaluated classes. The model's output channel c is its vocabulary's train id c; that
        vocabulary must hold the evaluated classes (see :func:`channel_table`).
    batch_size : int
        Images per forward pass; only images of one size share a batch.
    workers : int, optional
        DataLoader worker processes reading images and masks (0: in this process; None: as many
        as the cores, at most 8).
    device : str or torch.device
        ``cpu``, ``cuda`` (under torchrun: ``cuda:LOCAL_RANK``) or ``cuda:N``.
    window, stride : optional
        Sliding-window inference (see :func:`predict`); default whole images. Images are run
        at their own size (no test-time resizing); the logits come out at that size.
    amp : bool
        Autocast (see :func:`predict`).
    save_pred : path, optional
        Also write ``save_pred/<image_id>.png``, the predicted train ids (8-bit, 16-bit above 255
        classes): ``segdata eval DATASET --pred save_pred --pred-ids train`` scores the same figures.
    progress : callable, optional
        ``progress(done, total)`` after each batch: images done by this process, of its total.

    Returns
    -------
    segdata.eval.counting.Counts
        Over all the images (all processes' under torchrun), in the order evaluated.

    Raises
    ------
    InputError
        The model cannot be loaded or does not fit the evaluated classes; an image or mask is
        missing or of another size (naming the file).
    """
    device = _resolve_device(device)
    rank, world, started = _process_group(device)
    try:
        loaded = spec if isinstance(spec, LoadedModel) else load_model(spec, device)
        model = loaded.model.to(device)
        if image_ids is None:
            image_ids = ds.select_images(split)["image_id"].tolist()
        image_ids = list(image_ids)
        items = _eval_items(ds, space, image_ids)
        mine = items[rank::world]
        k = space.num_classes
        confusion = DeviceConfusion(k, device)
        mean = torch.tensor(loaded.normalize["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255.0
        inv_std = 1.0 / (
            torch.tensor(loaded.normalize["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255.0
        )
        batches = _size_batches([item[4] for item in mine], max(1, int(batch_size)))
        loader = torch.utils.data.DataLoader(
            _EvalItems(mine),
            batch_sampler=batches,
            num_workers=min(os.cpu_count() or 1, 8) if workers is None else int(workers),
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        table = None
        checked = False
        done = 0
        for batch in loader:
            if "error" in batch:
                raise batch["error"]
            images = batch["image"].to(device, non_blocking=True).float().sub_(mean).mul_(inv_std)
            logits = predict(model, images, window=window, stride=stride, amp=amp)
            if not checked:
                table = channel_table(loaded.vocab, space, logits.shape[1], loaded.source)
                table = table.to(device) if table is not None else None
                checked = True
            pred = logits.max(1).indices  # argmax's first maximum; 3x faster than argmax(1) on CPU
            del logits
            pred = table[pred] if table is not None else pred.int()
            segs = batch["segments"].to(device, non_blocking=True)
            confusion.update_segments(segs, batch["luts"], pred, index=batch["index"])
            if save_pred is not None:
                host = pred.cpu().numpy()
                for j, pos in enumerate(batch["index"].tolist()):
                    write_prediction(save_pred, image_ids[pos], host[j], k)
            done += len(batch["index"])
            if progress is not None:
                progress(done, len(mine))
        confusion.all_reduce()
        lengths = {item[1]: len(item[5]) for item in items}
        return confusion.to_counts(image_ids, segment_lengths=lengths)
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()

"""The confusion matrix accumulated on a torch device: one ``bincount`` per batch, no host copy per image.

:class:`DeviceConfusion` is the device twin of :class:`segdata.metrics.ConfusionMatrix` and of the
file path's counting in :mod:`segdata.eval.counting`: it gives the same ``(K, K + 1)`` int64
matrix, the same per-image sums and the same per-segment hits, as a
:class:`segdata.eval.counting.Counts`.

Conventions (those of :mod:`segdata.eval`)
-----------------------------------------
- Ground truth and prediction are **eval indices**: ``0 .. K-1`` a class; a negative ground-truth
  value (``-1``) is ignored (the pixel is dropped before counting, whatever was predicted there);
  a prediction outside ``0 .. K-1`` (``K`` by convention: "no prediction", or a class the
  evaluation ignores) is a **miss**, counted in column ``K``: a false negative of the ground-truth
  class and nobody's false positive.
- Per image (rows in the order of :meth:`DeviceConfusion.update` calls, or of the ``index`` given
  there): ``tp[i, k]`` pixels of class ``k`` predicted ``k``; ``gt[i, k]`` non-ignored ground-truth
  pixels of class ``k``; ``pred[i, k]`` pixels predicted ``k`` on non-ignored ground-truth pixels.
- Per segment (when ``segments`` are given: the segment-id map of the unified mask, ``0`` = no
  segment): ``hits[s]`` pixels of segment ``s`` predicted as their own (non-ignored) ground-truth
  class; an array of ``S + 1`` values, ``S`` the largest segment id of the image (or the length
  asked for in :meth:`DeviceConfusion.to_counts`).

Everything stays on the device until :meth:`DeviceConfusion.to_counts` (or
:meth:`DeviceConfusion.all_reduce`), which copies it to the host once. Under
``torch.distributed`` each process counts its shard of the images and :meth:`all_reduce` sums the
matrices and gathers the per-image rows, so that every process ends with the counts of one process
over all the images.

>>> import torch
>>> c = DeviceConfusion(2)
>>> c.update(torch.tensor([[0, 0, 1, -1]]), torch.tensor([[0, 1, 2, 0]]))
>>> c.matrix.tolist()
[[1, 1, 0], [0, 0, 1]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..eval.counting import Counts

__all__ = ["DeviceConfusion", "count_arrays_torch", "count_files_torch"]

#: above this many bins (batch x K x (K + 1)) a batch is counted with one matrix bincount plus
#: three per-image bincounts instead of one bincount of per-image matrices
_PER_IMAGE_MATRIX_BINS = 1 << 22
#: above this many bins (batch x segments x (K + 2)) update_segments counts pixel by pixel
_PAIR_BINS = 1 << 25
#: table value of a segment id beyond an image's own table (update_segments' padding)
_BEYOND = -3


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.dtype.is_floating_point or x.dtype == torch.bool or x.dtype.is_complex:
        raise ValueError(f"{name}: expected integer eval indices, got {x.dtype}")
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(f"{name}: expected a (H, W) or (B, H, W) tensor, got shape {tuple(x.shape)}")
    return x


class DeviceConfusion:
    """Accumulate the (K, K + 1) confusion matrix, per-image sums and per-segment hits on a device.

    Parameters
    ----------
    num_classes : int
        K: eval indices ``0 .. K-1``.
    device : str or torch.device
        Where the counts live (``"cpu"``, ``"cuda"``, ``"cuda:1"``); inputs are moved there.
    """

    def __init__(self, num_classes: int, device: str | torch.device = "cpu"):
        k = int(num_classes)
        if k < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = k
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        k = self.num_classes
        self._matrix = torch.zeros((k, k + 1), dtype=torch.int64, device=self.device)
        self._bad = torch.zeros((), dtype=torch.int64, device=self.device)
        self._rows: list[torch.Tensor] = []  # (B, 3K) tp | gt | pred, on the device
        self._index: list[torch.Tensor] = []  # (B,) int64 image positions
        self._hits: list[tuple[torch.Tensor, torch.Tensor]] = []  # ((B, S+1) hits, (B,) lengths)
        self._problems: list[torch.Tensor] = []  # (B, 2): invalid predictions, segments beyond the table
        self._count = 0
        self._gathered: tuple | None = None  # host arrays after all_reduce

    # -- counting ---------------------------------------------------------------------------

    def update(self, gt, pred, segments=None, index=None) -> None:
        """Count a batch.

        Parameters
        ----------
        gt : tensor of int, shape (B, H, W) or (H, W)
            Ground-truth eval indices; negative = ignored.
        pred : tensor of int, same shape
            Predicted eval indices; outside ``0 .. K-1`` = miss (column K).
        segments : tensor of int, same shape, optional
            Segment ids (>= 0; 0 = no segment) for the per-segment hits.
        index : sequence of int, optional
            The images' positions in the evaluated list (what :meth:`to_counts` orders rows by);
            default: one after the other, in the order of the calls.
        """
        if self._gathered is not None:
            raise RuntimeError("DeviceConfusion: update after all_reduce; reset() first")
        gt = _as_batch(gt, "gt").to(self.device, non_blocking=True)
        pred = _as_batch(pred, "pred").to(self.device, non_blocking=True)
        if gt.shape != pred.shape:
            raise ValueError(f"ground truth and prediction differ in shape: {tuple(gt.shape)} vs {tuple(pred.shape)}")
        b = gt.shape[0]
        if index is None:
            index = torch.arange(self._count, self._count + b, dtype=torch.int64)
        index = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        if index.numel() != b:
            raise ValueError(f"index: expected {b} positions, got {index.numel()}")
        self._count += b
        k = self.num_classes
        g = gt.reshape(b, -1).long()
        p = pred.reshape(b, -1).long()
        valid = g >= 0
        self._bad += (g >= k).sum()
        valid &= g < k
        p = torch.where((p >= 0) & (p < k), p, k)
        image = torch.arange(b, device=self.device, dtype=torch.int64).unsqueeze(1)
        cells = k * (k + 1)
        if b * cells <= _PER_IMAGE_MATRIX_BINS:
            # one bincount of per-image matrices; ignored pixels go to one extra bin, dropped
            flat = torch.where(valid, image * cells + g * (k + 1) + p, b * cells)
            per_image = torch.bincount(flat.reshape(-1), minlength=b * cells + 1)[: b * cells].reshape(b, k, k + 1)
            self._add_rows(per_image, index)
        else:  # many classes: the matrix and three (B, K) bincounts
            dump = cells
            flat = torch.where(valid, g * (k + 1) + p, dump)
            self._matrix += torch.bincount(flat.reshape(-1), minlength=cells + 1)[:cells].reshape(k, k + 1)
            n = b * k

            def per_image_sum(where, values):
                idx = torch.where(where, image * k + values.clamp(0, k - 1), n)
                return torch.bincount(idx.reshape(-1), minlength=n + 1)[:n].reshape(b, k)

            rows = torch.cat(
                [per_image_sum(valid & (p == g), g), per_image_sum(valid, g), per_image_sum(valid & (p < k), p)], dim=1
            )
            self._rows.append(rows)
            self._index.append(index)
            self._problems.append(torch.zeros((b, 2), dtype=torch.int64, device=self.device))
        if segments is not None:
            s = _as_batch(segments, "segments").to(self.device, non_blocking=True)
            if s.shape != gt.shape:
                raise ValueError(
                    f"segments differ in shape from the ground truth: {tuple(s.shape)} vs {tuple(gt.shape)}"
                )
            s = s.reshape(b, -1).long()
            lengths = s.amax(dim=1) + 1  # (B,) S + 1 per image, on the device
            width = int(lengths.max())  # one sync per batch, no copy of pixels
            hit = valid & (p == g)
            idx = torch.where(hit, image * width + s, b * width)
            hits = torch.bincount(idx.reshape(-1), minlength=b * width + 1)[: b * width].reshape(b, width)
            self._hits.append((hits, lengths))

    def update_segments(self, segments, luts, pred, index=None) -> None:
        """Count a batch given as segment maps and per-image tables segment id -> eval index.

        The same counts as :meth:`update` with ``gt = luts[b][segments[b]]``, in fewer passes over
        the pixels: one bincount of (image, segment, predicted value) triples, then the matrix,
        the per-image sums and the segment hits (as long as each image's table) from that small
        table. Two problems are counted per image instead of raised, for the caller to name the
        file (:meth:`problems`): pixels predicted ``K + 1`` (a value outside the id space) and
        pixels of a segment id beyond the image's table.

        Parameters
        ----------
        segments : tensor of int, shape (B, H, W)
            Segment ids (0 = none).
        luts : sequence of B 1-D int arrays or tensors
            Per image, segment id -> eval index, -1 = not evaluated.
        pred : tensor of int, shape (B, H, W)
            Predicted eval indices ``0 .. K - 1``, ``K`` = miss, ``K + 1`` = invalid; nothing
            else (the caller guarantees the range: an argmax, a lookup table).
        index : sequence of int, optional
            As in :meth:`update`.
        """
        if self._gathered is not None:
            raise RuntimeError("DeviceConfusion: update after all_reduce; reset() first")
        segs = _as_batch(segments, "segments").to(self.device, non_blocking=True)
        pred = _as_batch(pred, "pred").to(self.device, non_blocking=True)
        if segs.shape != pred.shape:
            raise ValueError(f"segments and prediction differ in shape: {tuple(segs.shape)} vs {tuple(pred.shape)}")
        b, k = segs.shape[0], self.num_classes
        if len(luts) != b:
            raise ValueError(f"expected {b} segment tables, got {len(luts)}")
        own = [len(t) for t in luts]
        width = max(own)
        if segs.dtype not in (torch.uint8, torch.int32, torch.int64):
            segs = segs.to(torch.int32)  # uint16 maps: few torch kernels take uint16
        if segs.dtype == torch.uint8:
            width = max(width, 256)  # every id a uint8 map can hold: no pass to find the largest
        else:
            width = max(width, int(segs.amax()) + 1 if segs.numel() else 1)
        table = torch.full((b, width), _BEYOND, dtype=torch.int64)
        for i, t in enumerate(luts):
            table[i, : own[i]] = torch.as_tensor(np.asarray(t), dtype=torch.int64)
        table = table.to(self.device, non_blocking=True)
        if index is None:
            index = torch.arange(self._count, self._count + b, dtype=torch.int64)
        index = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        if index.numel() != b:
            raise ValueError(f"index: expected {b} positions, got {index.numel()}")
        self._count += b
        cols = k + 2  # predicted 0..K-1, K miss, K + 1 invalid
        bins = b * width * cols
        if bins > _PAIR_BINS:  # a huge table: count pixel by pixel instead
            self._update_by_pixel(segs, table, pred, index)
            return
        kind = torch.int32 if bins < 2**31 else torch.int64
        flat = segs.to(kind, copy=True)  # the operations below are in place (mixed dtypes take slow kernels)
        if b > 1:
            flat.add_((torch.arange(b, device=self.device, dtype=kind) * width).view(-1, 1, 1))
        flat.mul_(cols).add_(pred if pred.dtype == kind else pred.to(kind))
        pairs = torch.bincount(flat.reshape(-1), minlength=bins)[:bins].reshape(b, width, cols)
        # rows 0..K-1 evaluated, K not evaluated, K + 1 beyond the table
        rows = torch.where(table >= 0, table, torch.where(table == -1, k, k + 1))
        per_image = torch.zeros((b, k + 2, cols), dtype=torch.int64, device=self.device)
        per_image.scatter_add_(1, rows.unsqueeze(2).expand(b, width, cols), pairs)
        problems = torch.stack([per_image[:, : k + 1, k + 1].sum(1), per_image[:, k + 1, :].sum(1)], dim=1)
        per_image = per_image[:, :k, : k + 1]
        self._add_rows(per_image, index, problems)
        hits = torch.where(table >= 0, pairs.gather(2, rows.clamp(max=k).unsqueeze(2)).squeeze(2), 0)
        self._hits.append((hits, torch.tensor(own, dtype=torch.int64, device=self.device)))

    def _add_rows(self, per_image: torch.Tensor, index: torch.Tensor, problems=None) -> None:
        """Add per-image (B, K, K + 1) matrices: to the matrix and as per-image rows."""
        k = self.num_classes
        self._matrix += per_image.sum(0)
        tp = torch.diagonal(per_image[:, :, :k], dim1=1, dim2=2)
        self._rows.append(torch.cat([tp, per_image.sum(2), per_image[:, :, :k].sum(1)], dim=1))
        self._index.append(index)
        if problems is None:
            problems = torch.zeros((per_image.shape[0], 2), dtype=torch.int64, device=self.device)
        self._problems.append(problems)

    def _update_by_pixel(self, segs, table, pred, index) -> None:
        """update_segments for tables too large to count by segment: the per-pixel path."""
        b, width = table.shape
        k = self.num_classes
        gt = table.reshape(-1)[segs.long() + torch.arange(b, device=self.device).view(-1, 1, 1) * width]
        problems = torch.stack(
            [((pred == k + 1) & (gt != _BEYOND)).reshape(b, -1).sum(1), (gt == _BEYOND).reshape(b, -1).sum(1)], dim=1
        )
        count = self._count
        self.update(gt, pred, segments=segs, index=index)
        self._count = count
        self._problems[-1] = problems
        hits, _ = self._hits[-1]
        padded = torch.zeros((b, width), dtype=torch.int64, device=self.device)
        padded[:, : hits.shape[1]] = hits[:, :width]
        self._hits[-1] = (padded, (table != _BEYOND).sum(1))

    def problems(self) -> np.ndarray:
        """(N, 2) int64 per image, in index order: pixels predicted invalid (``K + 1``) and pixels
        of a segment id beyond the image's table (:meth:`update_segments`); zeros otherwise."""
        if not self._problems:
            return np.zeros((0, 2), dtype=np.int64)
        index = torch.cat(self._index).numpy()
        return torch.cat(self._problems).cpu().numpy()[np.argsort(index, kind="stable")]

    @property
    def matrix(self) -> torch.Tensor:
        """The (K, K + 1) int64 matrix, on the device (summed over processes after all_reduce)."""
        return self._matrix

    # -- host side --------------------------------------------------------------------------

    def _local(self) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
        """(index (N,), rows (N, 3K), hits per image or None), copied to the host once."""
        k = self.num_classes
        if not self._rows:
            return np.zeros(0, np.int64), np.zeros((0, 3 * k), np.int64), ([] if self._hits else None)
        index = torch.cat(self._index).numpy()
        rows = torch.cat(self._rows).cpu().numpy()
        hits = None
        if self._hits:
            if len(self._hits) != len(self._rows):
                raise ValueError("segments were given to some update() calls and not to others")
            flat, lengths = self._flat_hits()
            flat, lengths = flat.cpu().numpy(), lengths.cpu().numpy()
            hits = np.split(flat, np.cumsum(lengths)[:-1])
        return index, rows, hits

    def _flat_hits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image's hits trimmed to its own length, concatenated (on the device), and the lengths."""
        flats, lens = [], []
        for hits, lengths in self._hits:
            keep = torch.arange(hits.shape[1], device=hits.device).unsqueeze(0) < lengths.unsqueeze(1)
            flats.append(hits[keep])
            lens.append(lengths)
        return torch.cat(flats), torch.cat(lens)

    def all_reduce(self, group=None) -> None:
        """Sum the matrices over the processes of ``torch.distributed`` (one ``all_reduce``) and
        gather every process's per-image rows and segment hits; a no-op outside a process group.

        Every process must call it (a collective). Afterwards :meth:`to_counts` gives, on every
        process, the counts of all the images; :meth:`update` is refused until :meth:`reset`.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
            return
        if self._gathered is not None:
            raise RuntimeError("DeviceConfusion: all_reduce called twice")
        self._raise_bad()
        k = self.num_classes
        comm = self._comm_device(group)
        matrix = self._matrix.to(comm)
        dist.all_reduce(matrix, op=dist.ReduceOp.SUM, group=group)
        self._matrix = matrix.to(self.device)
        index = torch.cat(self._index) if self._index else torch.zeros(0, dtype=torch.int64)
        rows = torch.cat(self._rows) if self._rows else torch.zeros((0, 3 * k), dtype=torch.int64, device=self.device)
        index = _gather_rows(index.to(comm).unsqueeze(1), group).squeeze(1).cpu().numpy()
        rows = _gather_rows(rows.to(comm), group).cpu().numpy()
        has_hits = torch.tensor([1 if self._hits else 0], device=comm)
        dist.all_reduce(has_hits, op=dist.ReduceOp.MIN, group=group)
        hits = None
        if int(has_hits):
            flat, lengths = self._flat_hits()
            flat = _gather_rows(flat.to(comm).unsqueeze(1), group).squeeze(1).cpu().numpy()
            lengths = _gather_rows(lengths.to(comm).unsqueeze(1), group).squeeze(1).cpu().numpy()
            hits = np.split(flat, np.cumsum(lengths)[:-1])
        self._gathered = (index, rows, hits)

    def _comm_device(self, group) -> torch.device:
        import torch.distributed as dist

        backend = dist.get_backend(group)
        if backend == "nccl" and self.device.type != "cuda":
            return torch.device("cuda", torch.cuda.current_device())
        if backend == "gloo" and self.device.type not in ("cpu", "cuda"):
            return torch.device("cpu")
        return self.device

    def _raise_bad(self) -> None:
        bad = int(self._bad)
        if bad:
            raise ValueError(
                f"{bad} ground-truth pixels hold an eval index >= num_classes ({self.num_classes}); "
                "they were left out (expected 0..K-1, or negative for ignored)"
            )

    def to_counts(self, image_ids, segment_lengths=None):
        """The counts, copied to the host, as :class:`segdata.eval.counting.Counts`.

        Parameters
        ----------
        image_ids : sequence of str
            The evaluated images, in order: row ``i`` (the ``index`` given to :meth:`update`, or
            the i-th image counted) is ``image_ids[i]``. Every image must have been counted once.
        segment_lengths : mapping str -> int, optional
            Per image, the length of its hits array (largest segment id + 1, from the segment
            table); default the largest segment id present in its mask + 1. Longer arrays are
            padded with zeros; an image whose mask holds a larger id is an error.

        Raises
        ------
        ValueError
            An image counted twice or not at all, or ground-truth values >= K were given.
        """
        self._raise_bad()
        image_ids = list(image_ids)
        index, rows, hits = self._gathered if self._gathered is not None else self._local()
        n, k = len(image_ids), self.num_classes
        if len(index) != n or (n and not np.array_equal(np.sort(index), np.arange(n))):
            raise ValueError(
                f"expected each of the {n} images counted once, got positions {sorted(index.tolist())[:10]}..."
            )
        order = np.argsort(index, kind="stable")
        rows = rows[order]
        segment_hits = {}
        if hits is not None:
            for i, pos in enumerate(order):
                iid = image_ids[i]
                h = hits[pos].astype(np.int64, copy=False)
                if segment_lengths is not None and iid in segment_lengths:
                    want = int(segment_lengths[iid])
                    if len(h) > want:
                        if h[want:].any():
                            raise ValueError(f"{iid}: the mask holds segment ids >= {want}")
                        h = h[:want]
                    elif len(h) < want:
                        h = np.concatenate([h, np.zeros(want - len(h), np.int64)])
                segment_hits[iid] = h
        return Counts(
            image_ids=image_ids,
            matrix=self._matrix.cpu().numpy().astype(np.int64, copy=False),
            tp=np.ascontiguousarray(rows[:, :k], dtype=np.int64),
            gt=np.ascontiguousarray(rows[:, k : 2 * k], dtype=np.int64),
            pred=np.ascontiguousarray(rows[:, 2 * k :], dtype=np.int64),
            segment_hits=segment_hits,
        )


def _gather_rows(rows: torch.Tensor, group=None) -> torch.Tensor:
    """Concatenate a (n_r, C) tensor of every process (n_r may differ), in rank order."""
    import torch.distributed as dist

    world = dist.get_world_size(group)
    n = torch.tensor([rows.shape[0]], dtype=torch.int64, device=rows.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n, group=group)
    sizes = [int(s) for s in sizes]
    most = max(sizes)
    padded = torch.zeros((most,) + tuple(rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[: rows.shape[0]] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


# --------------------------------------------------------------------------- prediction files


def _native(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous native-order copy of a (possibly strided, big-endian) decoded view."""
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))


def count_arrays_torch(
    pairs: Iterable[tuple],
    space,
    device="cpu",
    *,
    batch_size: int = 8,
    progress: Callable[[int, int | None], None] | None = None,
    total: int | None = None,
):
    """Count decoded (ground truth, prediction) pairs on a torch device; the device twin of
    :func:`segdata.eval.counting.count_files`'s counting, giving identical :class:`Counts`.

    Parameters
    ----------
    pairs : iterable of tuple
        ``(image_id, segments, pred, seg_lut)`` or ``(image_id, segments, pred, seg_lut, (mask
        path, prediction path))``: the ``objects`` segment-id map (H, W) (0 = none), the
        prediction's raw values (H, W) (uint8/uint16, in the space's ``pred_ids``), and the
        image's table segment id -> eval index (-1 = not evaluated; its length, largest segment
        id + 1, is the length of the image's segment hits). Images in the order to report.
    space : segdata.eval.space.EvalSpace
        Gives ``pred_lut`` (value -> eval index, K = miss, -2 invalid) and ``num_classes``.
    device : str or torch.device
    batch_size : int
        Consecutive pairs of one size counted in one bincount.
    progress : callable, optional
        ``progress(done, total)`` after each batch (``total`` as given, None when unknown).

    Raises
    ------
    InputError
        Naming the prediction file (or the image id): a value outside the id space; naming the
        mask: a segment id without a row in the segment table; shapes that differ.
    """
    device = torch.device(device)
    k = space.num_classes
    lut = np.asarray(space.pred_lut, dtype=np.int64)
    count_lut = torch.as_tensor(np.where(lut == -2, k + 1, lut).astype(np.int32), device=device)  # invalid -> K + 1
    confusion = DeviceConfusion(k, device)
    ids: list[str] = []
    wheres: list = []
    lengths: dict[str, int] = {}
    pending: list[tuple] = []

    def flush():
        if not pending:
            return
        segs = torch.stack([torch.from_numpy(_native(p[1])) for p in pending]).to(device, non_blocking=True)
        raw = torch.stack([torch.from_numpy(_native(p[2])) for p in pending]).to(device, non_blocking=True)
        b = len(pending)
        first = len(ids) - b
        pred = count_lut[raw.long() if raw.dtype != torch.uint8 else raw.int()]
        confusion.update_segments(segs, [p[3] for p in pending], pred, index=range(first, first + b))
        if progress is not None:
            progress(len(ids), total)
        pending.clear()

    for item in pairs:
        image_id, segs, pred, lut_i = item[:4]
        where = item[4] if len(item) > 4 else (image_id, image_id)
        if segs.shape != pred.shape:
            raise InputError(
                where[1], f"prediction is {pred.shape[1]}x{pred.shape[0]}, the image is {segs.shape[1]}x{segs.shape[0]}"
            )
        if pending and (pending[0][1].shape != segs.shape or len(pending) >= batch_size):
            flush()
        ids.append(image_id)
        wheres.append(where)
        lengths[image_id] = len(lut_i)
        pending.append((image_id, segs, pred, lut_i))
    flush()
    for i, (invalid, beyond) in enumerate(confusion.problems().tolist()):
        if invalid:
            describe = getattr(space, "describe_pred_ids", None)
            valid = describe() if describe else f"0..{k - 1}"
            raise InputError(
                wheres[i][1], f"{_invalid_value(wheres[i][1], lut, invalid)} is outside the id space ({valid})"
            )
        if beyond:
            raise InputError(wheres[i][0], f"{beyond} pixels hold a segment id that has no row in segments.parquet")
    return confusion.to_counts(ids, segment_lengths=lengths)


def _invalid_value(path, pred_lut: np.ndarray, pixels: int) -> str:
    """ "value V" of the first invalid pixel of a prediction file (re-read: the error path only),
    or how many pixels were invalid when there is no file to read."""
    try:
        from ..eval.predictions import read_prediction

        values = read_prediction(path)
    except Exception:
        return f"a value in {pixels} pixels"
    bad = pred_lut[values] == -2
    return f"value {int(values[bad].flat[0])}" if bad.any() else f"a value in {pixels} pixels"


def _decode_pair(item):
    """Read one (mask, prediction) pair in a worker: what :func:`count_arrays_torch` counts."""
    from ..eval.predictions import read_prediction
    from ..maskio import read_segment_map

    image_id, mask_path, pred_path, shape, seg_lut = item
    pred = _native(read_prediction(pred_path, shape, view=True))
    if mask_path is None:
        seg = np.zeros(shape, dtype=np.uint8)
    else:
        seg = _native(read_segment_map(mask_path, view=True))
        if seg.shape != tuple(shape):
            raise InputError(mask_path, f"mask is {seg.shape[1]}x{seg.shape[0]}, the image is {shape[1]}x{shape[0]}")
    return image_id, seg, pred, seg_lut, (mask_path, pred_path)


def count_files_torch(
    space,
    items: Sequence[tuple],
    *,
    device="cpu",
    workers: int | None = None,
    executor=None,
    progress: Callable[[int, int | None], None] | None = None,
    batch_size: int = 8,
):
    """:func:`segdata.eval.counting.count_files` with the counting on a torch device: the files
    are decoded in the process pool (or ``executor``), the pairs counted by
    :func:`count_arrays_torch`. Same ``items`` (``(image_id, mask path or None, prediction path,
    (H, W), segment lut)``), same :class:`Counts`."""
    from ..runner import parallel_map

    decoded = parallel_map(_decode_pair, items, workers=workers, executor=executor, ordered=True, batch_size=4)
    return count_arrays_torch(decoded, space, device, batch_size=batch_size, progress=progress, total=len(items))

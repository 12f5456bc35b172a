"""Batches that cross from DataLoader workers to the training process without being copied again.

A DataLoader worker hands its batches to the main process through shared memory. With the default
collation each batch is written twice in the worker: the samples are built in private memory,
then ``default_collate`` allocates a fresh shared storage (which torch fills with zeros as it
reserves it) and copies them in through its mapping, one page fault per 4 KiB page; the main
process maps the pages again and frees them after the step. For Cityscapes-size samples (a
2048x1024 float32 image and int64 label: 41 MB) the pages cost about as much as decoding.

:func:`loader` (a ``torch.utils.data.DataLoader`` underneath) has each worker decode its batches
of whole images straight into a **pool of batch slots** in shared memory that it keeps for the
whole run: the pages are allocated and mapped once, in the worker and in the main process. In
the main process each batch's tensors hold a *lease* on their slot; when the last tensor viewing
it is freed (``torch.frombuffer`` keeps the lease alive exactly that long) the slot is marked
free, and only then does the worker write into it again. A worker whose slots are all held (the
training loop keeps many batches) writes the batch into a new anonymous memory file instead
(``memfd``, written with ``pwrite``: pages allocated as written, without a zero fill or a fault),
as it does where the pool does not apply; neither path ever writes into memory a tensor still
uses.

Pool layout (one shared storage per worker): a 4 KiB header (magic, slot count, slot size, one
flag byte per slot: 1 while a batch in it may be in use) followed by the slots; a batch is its
labels ``(B, H, W)`` int64 then its images ``(B, 3, H, W)``.
"""

from __future__ import annotations

import copy
import os
import weakref
from collections.abc import Callable, Iterator

import numpy as np
import torch

__all__ = ["BatchLoader", "WorkerBatches", "collate", "loader"]

#: ``fill(k, label, image)`` decodes sample ``k`` of a batch into ``label`` (an ``(H, W)`` int64
#: array) and ``image`` (a ``(3, H, W)`` tensor of the image dtype)
Fill = Callable[[int, np.ndarray, torch.Tensor], None]

_MAGIC = b"segdata batch pool v1\0\0\0"  # 24 bytes
_HEADER = 4096  # magic, int64 slot count, int64 slot bytes, then one flag byte per slot
_MAX_SLOTS = _HEADER - 40


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


def _batch_bytes(n: int, height: int, width: int, image_dtype: torch.dtype) -> tuple[int, int]:
    """Bytes of the label batch and of the image batch."""
    return n * height * width * 8, n * 3 * height * width * _itemsize(image_dtype)


def _on(storage: torch.UntypedStorage, offset: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor of ``dtype`` and ``shape`` on ``storage`` from byte ``offset`` (a multiple of the item size)."""
    return torch.empty(0, dtype=dtype).set_(storage, offset // _itemsize(dtype), shape)


class _Pool:
    """A worker's slots (see the module docstring), in one shared storage."""

    def __init__(self, slots: int, slot_bytes: int):
        self.slots, self.slot_bytes = int(slots), -(-int(slot_bytes) // 4096) * 4096
        self.storage = torch.UntypedStorage._new_shared(_HEADER + self.slots * self.slot_bytes)
        header = _on(self.storage, 0, torch.uint8, (_HEADER,)).numpy()
        header[: len(_MAGIC)] = np.frombuffer(_MAGIC, np.uint8)
        header[24:40].view(np.int64)[:] = (self.slots, self.slot_bytes)
        self.flags = header[40 : 40 + self.slots]
        self.flags[:] = 0

    def claim(self) -> int | None:
        """A free slot, marked in use; None when the main process holds every slot."""
        free = np.flatnonzero(self.flags == 0)
        if not len(free):
            return None
        k = int(free[0])
        self.flags[k] = 1
        return k

    def tensors(self, k: int, n: int, height: int, width: int, image_dtype: torch.dtype):
        label_bytes, _ = _batch_bytes(n, height, width, image_dtype)
        start = _HEADER + k * self.slot_bytes
        labels = _on(self.storage, start, torch.int64, (n, height, width))
        images = _on(self.storage, start + label_bytes, image_dtype, (n, 3, height, width))
        return images, labels


class WorkerBatches:
    """Where a dataset's batches of whole images are written (see the module docstring): set on
    the copy of the dataset a :func:`loader` runs. Pickles as its settings alone: each worker
    makes its own pool when its first batch comes, sized for that batch.

    Parameters
    ----------
    slots : int
        Batch slots per worker (0: no pool, every batch in a new memory file).
    """

    def __init__(self, slots: int):
        self.slots = int(slots)
        self._pool: _Pool | None = None
        self._scratch: dict = {}

    def __getstate__(self) -> dict:
        return {"slots": self.slots}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["slots"])

    def tensors(
        self, n: int, height: int, width: int, image_dtype: torch.dtype, fill: Fill
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """An image batch ``(n, 3, H, W)`` of ``image_dtype`` and a label batch ``(n, H, W)`` int64,
        filled sample by sample by ``fill``: in a pool slot, in a new memory file, or (outside a
        DataLoader worker) in ordinary memory."""
        if torch.utils.data.get_worker_info() is None:
            images = torch.empty((n, 3, height, width), dtype=image_dtype)
            labels = torch.empty((n, height, width), dtype=torch.int64)
            for k in range(n):
                fill(k, labels[k].numpy(), images[k])
            return images, labels
        need = sum(_batch_bytes(n, height, width, image_dtype))
        if self.slots > 0 and self._pool is None:
            try:
                self._pool = _Pool(min(self.slots, _MAX_SLOTS), need)
            except (RuntimeError, OSError):  # /dev/shm too small (Docker's 64 MB): batches go to memfds
                self.slots = 0
        k = self._pool.claim() if self._pool is not None and need <= self._pool.slot_bytes else None
        if k is not None:
            images, labels = self._pool.tensors(k, n, height, width, image_dtype)
            try:
                for j in range(n):
                    fill(j, labels[j].numpy(), images[j])
            except BaseException:  # a sample that cannot be read: the slot is not handed over
                self._pool.flags[k] = 0
                raise
            return images, labels
        return batch_tensors(n, height, width, image_dtype, fill, self._scratch)

    def stacked(self, samples: list) -> list:
        """Samples made one by one (a transform's crops) copied into one batch the way
        :meth:`tensors` writes it, and returned as views of it (:func:`collate` hands the batch
        over); samples that do not stack that way (other keys, shapes or types) come back as they
        are, for ``default_collate``."""
        first = samples[0] if samples else None
        if not (
            first is not None
            and all(type(s) is dict and s.keys() == {"image", "label", "image_id"} for s in samples)
            and first["image"].dim() == 3
            and first["image"].shape[0] == 3
            and first["image"].dtype in (torch.float32, torch.uint8)
            and all(
                s["image"].shape == first["image"].shape
                and s["image"].dtype == first["image"].dtype
                and s["label"].dtype == torch.int64
                and s["label"].shape == first["image"].shape[1:]
                for s in samples
            )
        ):
            return samples

        def fill(k: int, label: np.ndarray, image: torch.Tensor) -> None:
            label[...] = samples[k]["label"].numpy()
            image.copy_(samples[k]["image"])

        _, height, width = first["image"].shape
        images, labels = self.tensors(len(samples), height, width, first["image"].dtype, fill)
        return [{"image": images[k], "label": labels[k], "image_id": s["image_id"]} for k, s in enumerate(samples)]


def batch_tensors(
    n: int, height: int, width: int, image_dtype: torch.dtype, fill: Fill, scratch: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch in new shared memory (inside a DataLoader worker) or ordinary memory: written once
    into a memory file with ``pwrite`` where ``memfd`` and torch's ``file_descriptor`` sharing are
    there, else into torch's shared memory through its mapping, as ``default_collate`` does.

    ``scratch`` (a dict the caller keeps between batches) holds the reusable decode buffers of the
    memory-file path. Both tensors view one storage: the labels first, then the images.
    """
    in_worker = torch.utils.data.get_worker_info() is not None
    if in_worker and _memfd_sharing():
        try:
            return _through_memfd(n, height, width, image_dtype, fill, {} if scratch is None else scratch)
        except _NoMemfd:
            pass
    label_bytes, image_bytes = _batch_bytes(n, height, width, image_dtype)
    make = torch.UntypedStorage._new_shared if in_worker else torch.UntypedStorage
    storage = make(label_bytes + image_bytes)
    labels = _on(storage, 0, torch.int64, (n, height, width))
    images = _on(storage, label_bytes, image_dtype, (n, 3, height, width))
    for k in range(n):
        fill(k, labels[k].numpy(), images[k])
    return images, labels


class _NoMemfd(Exception):
    pass


def _memfd_sharing() -> bool:
    return (
        hasattr(os, "memfd_create")
        and hasattr(torch.UntypedStorage, "_new_shared_fd_cpu")
        and torch.multiprocessing.get_sharing_strategy() == "file_descriptor"
    )


def _through_memfd(
    n: int, height: int, width: int, image_dtype: torch.dtype, fill: Fill, scratch: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    label_bytes, image_bytes = _batch_bytes(1, height, width, image_dtype)
    key = (height, width, image_dtype)
    if key not in scratch:
        scratch.clear()  # one size at a time: a dataset of many sizes does not pile up buffers
        scratch[key] = (np.empty((height, width), np.int64), torch.empty((3, height, width), dtype=image_dtype))
    label, image = scratch[key]
    try:
        fd = os.memfd_create("segdata-batch", getattr(os, "MFD_CLOEXEC", 0))
    except OSError as exc:  # a sandbox that forbids it
        raise _NoMemfd from exc
    try:
        os.ftruncate(fd, n * (label_bytes + image_bytes))
        for k in range(n):
            fill(k, label, image)
            _pwrite_all(fd, memoryview(label).cast("B"), k * label_bytes)
            _pwrite_all(fd, memoryview(image.numpy()).cast("B"), n * label_bytes + k * image_bytes)
        storage = torch.UntypedStorage._new_shared_fd_cpu(fd, n * (label_bytes + image_bytes))
    finally:
        os.close(fd)  # the storage holds its own descriptor
    labels = _on(storage, 0, torch.int64, (n, height, width))
    images = _on(storage, n * label_bytes, image_dtype, (n, 3, height, width))
    return images, labels


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def collate(samples: list) -> object:
    """``torch.utils.data.default_collate``, without its copy where the samples are already one
    batch: dicts whose tensors are consecutive views of one batch tensor each (what
    :meth:`SegmentationDataset.__getitems__ <segdata.torch.SegmentationDataset.__getitems__>`
    returns under :func:`loader`) are handed over as the tensors they view; their other keys
    (``image_id``) are collated as ``default_collate`` does. Anything else goes to
    ``default_collate`` unchanged."""
    batch = _views_of_one_batch(samples)
    return batch if batch is not None else torch.utils.data.default_collate(samples)


def _views_of_one_batch(samples: list) -> dict | None:
    if not samples or not all(type(s) is dict for s in samples):
        return None
    keys = samples[0].keys()
    if any(s.keys() != keys for s in samples):
        return None
    out = {}
    for key in keys:
        values = [s[key] for s in samples]
        if not isinstance(values[0], torch.Tensor):
            out[key] = torch.utils.data.default_collate(values)
            continue
        base = values[0]._base
        if base is None or base.dim() != values[0].dim() + 1 or base.shape[0] != len(values):
            return None
        for k, v in enumerate(values):
            if not (
                isinstance(v, torch.Tensor)
                and v._base is base
                and v.shape == base.shape[1:]
                and v.stride() == base.stride()[1:]
                and v.storage_offset() == base.storage_offset() + k * base.stride(0)
            ):
                return None
        out[key] = base
    return out


# --------------------------------------------------------------------------- the main process


class BatchLoader:
    """An iterable over batches from a ``torch.utils.data.DataLoader`` (``.dataloader``) whose
    workers write into slot pools: each batch's tensors are re-made in the main process on a
    lease of their slot (see the module docstring). Batches are dicts ``{"image": (B, 3, H, W),
    "label": (B, H, W) int64, "image_id": [str]}`` as ``default_collate`` would make them."""

    def __init__(self, dataloader: torch.utils.data.DataLoader, pin_memory: bool = False):
        self.dataloader = dataloader
        self.pin_memory = bool(pin_memory)
        self._pools: dict[int, tuple[torch.UntypedStorage, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.dataloader)

    def __iter__(self) -> Iterator:
        if not self.dataloader.persistent_workers:
            # each pass starts new workers with new pools: let the old ones go (a batch still held
            # keeps its own pool mapped through its lease)
            self._pools.clear()
        # the generator's frame keeps no reference to a leased batch (it would hold the slot while
        # the loop waits for the next one)
        for batch in self.dataloader:
            yield self._handed_over(batch)

    def _handed_over(self, batch):
        batch = self._leased(batch)
        if self.pin_memory and isinstance(batch, dict):
            batch = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return batch

    def _leased(self, batch):
        if not isinstance(batch, dict) or not isinstance(batch.get("label"), torch.Tensor):
            return batch
        storage = batch["label"].untyped_storage()
        pool = self._pool_of(storage)
        if pool is None:
            return batch
        _, raw = pool
        slot_bytes = int(raw[32:40].view(np.int64)[0])
        start = batch["label"].storage_offset() * 8
        k = (start - _HEADER) // slot_bytes
        lease = raw[_HEADER + k * slot_bytes : _HEADER + (k + 1) * slot_bytes]  # a new numpy view: the lease
        weakref.finalize(lease, _release, raw, 40 + k)
        out = dict(batch)
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() == storage.data_ptr():
                offset = value.storage_offset() * value.element_size() - (_HEADER + k * slot_bytes)
                flat = torch.frombuffer(lease, dtype=value.dtype, count=value.numel(), offset=offset)
                out[key] = flat.view(value.shape)
        return out

    def _pool_of(self, storage: torch.UntypedStorage):
        key = storage.data_ptr()
        if key not in self._pools:
            if storage.nbytes() < _HEADER or not storage.is_shared():
                return None
            raw = _on(storage, 0, torch.uint8, (storage.nbytes(),)).numpy()
            if raw[: len(_MAGIC)].tobytes() != _MAGIC:
                return None
            self._pools[key] = (storage, raw)  # kept mapped for the run: no page faults again
        return self._pools[key]


def _release(raw: np.ndarray, flag: int) -> None:
    raw[flag] = 0


def loader(
    dataset,
    batch_size: int | None = 1,
    *,
    shuffle: bool = False,
    num_workers: int = 0,
    pin_memory: bool = False,
    slots: int | None = None,
    **kwargs,
) -> BatchLoader:
    """A DataLoader over a :class:`~segdata.torch.SegmentationDataset` whose batches are written
    once into shared memory the workers reuse and handed over without a copy (module docstring):
    batches of whole images (no transform, one size) decoded in place, transformed samples of one
    size (crops) copied in; other batches are made as ``default_collate`` makes them.

    Parameters
    ----------
    dataset : SegmentationDataset
        Left as it is: the loader runs a copy.
    batch_size, shuffle, num_workers, pin_memory, **kwargs
        As for ``torch.utils.data.DataLoader`` (``collate_fn`` is the loader's own).
    slots : int, optional
        Batch slots per worker; default ``prefetch_factor + 2``. Each holds one batch: with 2
        workers and batches of two 2048x1024 float32 samples, 4 slots each take 656 MB of
        shared memory (``/dev/shm``). 0, or a ``/dev/shm`` too small for them (Docker's default
        64 MB): no pool, each batch in a new memory file (not counted against ``/dev/shm``).

    Returns
    -------
    BatchLoader
        Iterate it as a DataLoader; ``len()`` and ``.dataloader`` are there.

    Examples
    --------
    >>> batches = loader(SegmentationDataset("cityscapes-unified", "val"), 2, num_workers=2)  # doctest: +SKIP
    >>> for batch in batches:  # doctest: +SKIP
    ...     images, labels = batch["image"].cuda(), batch["label"].cuda()
    """
    if "collate_fn" in kwargs:
        raise TypeError("loader() uses its own collate_fn")
    if slots is None:
        slots = (kwargs.get("prefetch_factor") or 2) + 2
    run = copy.copy(dataset)
    run._batches = WorkerBatches(slots)
    dataloader = torch.utils.data.DataLoader(
        run,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate if batch_size is not None else None,  # None: samples one by one, as they come
        **kwargs,
    )
    return BatchLoader(dataloader, pin_memory=pin_memory)

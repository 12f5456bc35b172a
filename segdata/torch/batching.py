"""Batches that cross from DataLoader workers to the training process without being copied again.

A DataLoader worker hands its batches to the main process through shared memory. With the default
collation each batch is written twice in the worker: the samples are built in private memory,
then ``default_collate`` allocates a shared storage (which torch fills with zeros as it reserves
it) and copies them in through its mapping, one page fault per 4 KiB page. For Cityscapes-size
samples (a 2048x1024 float32 image and int64 label: 41 MB) that costs about as much as decoding
them.

Here a batch of whole images is written once: each sample is decoded into a scratch buffer the
worker keeps (no page faults after the first batch) and written with ``pwrite`` into an anonymous
memory file (``memfd``: its pages are allocated as they are written, without a zero fill or a
fault), and torch maps that file as the batch's storage, which it passes to the main process as a
file descriptor like any shared tensor. Where that is not available (no ``memfd``, torch's
``file_system`` sharing strategy) the batch is allocated in shared memory as ``default_collate``
does and decoded straight into it; in the main process (``num_workers=0``) in ordinary memory.

:func:`collate` hands such a batch over as the tensors its samples view.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["batch_tensors", "collate"]

#: ``fill(k, label, image)`` decodes sample ``k`` of a batch into ``label`` (an ``(H, W)`` int64
#: array) and ``image`` (a ``(3, H, W)`` tensor of the image dtype)
Fill = Callable[[int, np.ndarray, torch.Tensor], None]


def batch_tensors(
    n: int, height: int, width: int, image_dtype: torch.dtype, fill: Fill, scratch: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """An image batch ``(n, 3, H, W)`` of ``image_dtype`` and a label batch ``(n, H, W)`` int64,
    filled sample by sample by ``fill``; in shared memory inside a DataLoader worker.

    ``scratch`` (a dict the caller keeps between batches) holds the worker's reusable buffers.
    Both tensors view one storage: the labels first, then the images.
    """
    in_worker = torch.utils.data.get_worker_info() is not None
    if in_worker and _memfd_sharing():
        try:
            return _through_memfd(n, height, width, image_dtype, fill, {} if scratch is None else scratch)
        except _NoMemfd:
            pass
    item = torch.empty(0, dtype=image_dtype).element_size()
    label_bytes, image_bytes = n * height * width * 8, n * 3 * height * width * item
    storage = (
        torch.UntypedStorage._new_shared(label_bytes + image_bytes)
        if in_worker
        else torch.UntypedStorage(label_bytes + image_bytes)
    )
    labels = torch.empty(0, dtype=torch.int64).set_(storage, 0, (n, height, width))
    images = torch.empty(0, dtype=image_dtype).set_(storage, label_bytes // item, (n, 3, height, width))
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
    item = torch.empty(0, dtype=image_dtype).element_size()
    label_bytes, image_bytes = height * width * 8, 3 * height * width * item
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
    labels = torch.empty(0, dtype=torch.int64).set_(storage, 0, (n, height, width))
    images = torch.empty(0, dtype=image_dtype).set_(storage, n * label_bytes // item, (n, 3, height, width))
    return images, labels


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def collate(samples: list) -> object:
    """``torch.utils.data.default_collate``, without its copy where the samples are already one
    batch: dicts whose tensors are consecutive views of one batch tensor each (what
    :meth:`SegmentationDataset.__getitems__ <segdata.torch.SegmentationDataset.__getitems__>`
    returns) are handed over as the tensors they view; their other keys (``image_id``) are
    collated as ``default_collate`` does. Anything else goes to ``default_collate`` unchanged.

    Use it as ``DataLoader(dataset, batch_size=B, num_workers=W, collate_fn=segdata.torch.collate)``.
    """
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

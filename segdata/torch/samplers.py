"""Tail-aware sampling and class weights, computed from the segment table alone (no mask is
decoded): which train ids each image holds (a segment row of area > 0 whose class the
vocabulary maps), and how many pixels of each.

- :func:`repeat_factors`: LVIS' repeat-factor sampling (Gupta et al. 2019) for semantic
  segmentation. ``f(c)`` = share of the selected images holding train id ``c`` (``by="images"``)
  or share of their pixels that are ``c`` (``by="pixels"``: pixels of ``c`` over the images'
  total ``width * height``); ``r(c) = max(1, sqrt(t / f(c)))``; an image repeats
  ``max`` over the train ids it holds (1 when it holds none). Classes a vocabulary merges count
  as one: an image holding any of them holds the train id.
- :class:`RepeatFactorSampler`: each epoch, image ``i`` appears ``floor(r_i)`` times plus once
  more with probability ``frac(r_i)`` (stochastic rounding, as detectron2's
  ``RepeatFactorTrainingSampler``), shuffled; ``set_epoch`` and sharding over processes as
  ``torch.utils.data.DistributedSampler``.
- :func:`class_weights`: weights by the effective number of samples (Cui et al. 2019),
  ``(1 - beta) / (1 - beta ** n_c)``, normalised to sum to K.

Images are those :class:`SegmentationDataset` reads for the same ``split`` and ``layer``, in the
same order, so ``factors[i]`` belongs to ``dataset[i]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ..format import Dataset
from ..vocab import Vocabulary, as_vocabulary
from .data import SegmentationDataset, default_vocabulary

__all__ = ["ClassPresence", "RepeatFactorSampler", "class_counts", "class_presence", "class_weights", "repeat_factors"]

_BY = ("images", "pixels")


@dataclass(frozen=True)
class ClassPresence:
    """Which train ids the images hold, from the segment table.

    Attributes
    ----------
    image_ids : list of str
        The selected images, in :class:`SegmentationDataset` order.
    image_index, train_id : ndarray of int64, shape (P,)
        One row per (image, train id) the image holds (area > 0), sorted by image then train id.
    pixels : ndarray of int64, shape (P,)
        Pixels of that train id in that image.
    image_pixels : ndarray of int64, shape (N,)
        ``width * height`` of each image.
    num_classes : int
        K.
    """

    image_ids: list[str]
    image_index: np.ndarray
    train_id: np.ndarray
    pixels: np.ndarray
    image_pixels: np.ndarray
    num_classes: int

    def counts(self, by: str = "images") -> np.ndarray:
        """(K,) int64: images holding each train id (``by="images"``) or its pixels (``"pixels"``)."""
        _check_by(by)
        if by == "images":
            return np.bincount(self.train_id, minlength=self.num_classes).astype(np.int64)
        return np.bincount(self.train_id, weights=self.pixels, minlength=self.num_classes).round().astype(np.int64)

    def shares(self, by: str = "images") -> np.ndarray:
        """(K,) float64: ``f(c)``, the share of images holding ``c``, or of all pixels that are ``c``."""
        total = len(self.image_ids) if by == "images" else int(self.image_pixels.sum())
        counts = self.counts(by)
        return counts / total if total else np.zeros(self.num_classes)


def _check_by(by: str) -> None:
    if by not in _BY:
        raise ValueError(f"by must be one of {_BY}, got {by!r}")


def _resolve(ds, split, vocab, layer):
    """(Dataset, split, Vocabulary, layer) from a Dataset, a path or a SegmentationDataset."""
    if isinstance(ds, SegmentationDataset):
        split = ds.split if split is None else split
        vocab = ds.vocab if vocab is None else vocab
        layer = ds.layer if layer is None else layer
        ds = Dataset(ds.root)
    elif not isinstance(ds, Dataset):
        ds = Dataset(Path(ds))
    layer = "objects" if layer is None else layer
    vocab = default_vocabulary(ds) if vocab is None else as_vocabulary(vocab)
    return ds, split, vocab, layer


def class_presence(
    ds: Dataset | SegmentationDataset | str | Path,
    split: str | None = None,
    vocab: Vocabulary | str | Path | None = None,
    layer: str | None = None,
) -> ClassPresence:
    """Per selected image, the train ids it holds and their pixels, from the segment table.

    ``ds`` may be a :class:`SegmentationDataset`: its split, vocabulary and layer are then the
    defaults. Otherwise the defaults are those of :class:`SegmentationDataset` (every split, the
    dataset's default vocabulary, ``objects``).
    """
    ds, split, vocab, layer = _resolve(ds, split, vocab, layer)
    ds.check_layer(layer)
    images = ds.select_images(split, layer)
    image_ids = [str(v) for v in images["image_id"]]
    image_pixels = images["width"].to_numpy(dtype=np.int64) * images["height"].to_numpy(dtype=np.int64)
    k = vocab.num_classes
    seg = ds.segment_table(["image_id", "class_id", "area"], layer=layer)
    codes = pc.fill_null(pc.index_in(seg["image_id"], value_set=pa.array(image_ids, type=pa.string())), -1)
    codes = codes.to_numpy().astype(np.int64)
    class_id = seg["class_id"].to_numpy(zero_copy_only=False).astype(np.int64)
    area = seg["area"].to_numpy(zero_copy_only=False).astype(np.int64)
    lut = vocab.lookup(ds.classes).astype(np.int64)
    inside = (class_id >= 0) & (class_id < len(lut))
    tid = np.where(inside, lut[np.clip(class_id, 0, max(len(lut) - 1, 0))], -1)
    keep = (codes >= 0) & (area > 0) & (tid >= 0) & (tid < k)
    key = codes[keep] * max(k, 1) + tid[keep]
    pairs, inverse = np.unique(key, return_inverse=True)
    pixels = np.bincount(inverse, weights=area[keep], minlength=len(pairs)).round().astype(np.int64)
    return ClassPresence(
        image_ids=image_ids,
        image_index=pairs // max(k, 1),
        train_id=pairs % max(k, 1),
        pixels=pixels,
        image_pixels=image_pixels,
        num_classes=k,
    )


def class_counts(
    ds: Dataset | SegmentationDataset | str | Path,
    split: str | None = None,
    vocab: Vocabulary | str | Path | None = None,
    *,
    by: str = "images",
    layer: str | None = None,
) -> np.ndarray:
    """(K,) int64: the selected images holding each train id (``by="images"``), or its pixels
    (``by="pixels"``), from the segment table (see :func:`class_presence`)."""
    _check_by(by)
    return class_presence(ds, split, vocab, layer).counts(by)


def repeat_factors(
    ds: Dataset | SegmentationDataset | str | Path,
    split: str | None = None,
    vocab: Vocabulary | str | Path | None = None,
    *,
    threshold: float = 0.01,
    by: str = "images",
    layer: str | None = None,
) -> np.ndarray:
    """LVIS repeat factors, one per image of ``SegmentationDataset(ds, split, vocab, layer=layer)``.

    Parameters
    ----------
    threshold : float
        ``t``: a train id held by a share ``f(c) < t`` of the images (or of the pixels) is repeated
        ``sqrt(t / f(c))`` times. 0.01 by default (LVIS uses 0.001 over 1,203 classes and 100k
        images); with ``by="pixels"`` shares are far smaller, so pick ``t`` on that scale.
    by : {"images", "pixels"}
        ``f(c)``: share of the images holding ``c``, or pixels of ``c`` over the images' total
        pixels (``width * height``, unlabeled included).

    Returns
    -------
    ndarray of float64, shape (N,)
        ``r_i = max(1, max over the train ids c image i holds of sqrt(t / f(c)))``; 1 for an image
        holding no train id.
    """
    _check_by(by)
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    presence = class_presence(ds, split, vocab, layer)
    f = presence.shares(by)
    per_class = np.ones(presence.num_classes)
    held = f > 0
    per_class[held] = np.maximum(1.0, np.sqrt(threshold / f[held]))
    factors = np.ones(len(presence.image_ids))
    if len(presence.train_id):
        np.maximum.at(factors, presence.image_index, per_class[presence.train_id])
    return factors


def class_weights(
    ds: Dataset | SegmentationDataset | str | Path,
    split: str | None = None,
    vocab: Vocabulary | str | Path | None = None,
    *,
    beta: float = 0.9999,
    by: str = "pixels",
    layer: str | None = None,
) -> np.ndarray:
    """Class weights by the effective number of samples (Cui et al. 2019, "Class-Balanced Loss").

    ``n_c`` is the pixel count of train id ``c`` (``by="pixels"``) or the number of images holding
    it (``by="images"``), over the selected images; ``w_c = (1 - beta) / (1 - beta ** n_c)``,
    then scaled so that the weights sum to K. A train id with ``n_c = 0`` (never in a label) gets
    weight 0. With pixels, ``n_c`` runs to millions: ``beta`` must be very close to 1 (e.g.
    ``1 - 1e-7``) for the weights to differ; at 0.9999 they are nearly all equal.

    Returns
    -------
    ndarray of float64, shape (K,)
        Weights in train id order (``torch.as_tensor(w, dtype=torch.float32)`` for a loss).
    """
    _check_by(by)
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = class_counts(ds, split, vocab, by=by, layer=layer).astype(np.float64)
    weights = np.zeros_like(n)
    present = n > 0
    # 1 - beta**n computed as -expm1(n * log(beta)): exact for beta near 1 and large n
    effective = -np.expm1(n[present] * math.log(beta)) if beta > 0 else np.ones(int(present.sum()))
    weights[present] = (1.0 - beta) / effective
    total = weights.sum()
    return weights * (len(n) / total) if total > 0 else weights


class RepeatFactorSampler(torch.utils.data.Sampler):
    """Sample image ``i`` about ``factors[i]`` times an epoch: ``floor(r_i)`` times plus once more
    with probability ``frac(r_i)``, drawn anew each epoch (stochastic rounding), in shuffled order.

    Parameters
    ----------
    factors : array of float, shape (N,)
        Repeat factors (>= 0), e.g. :func:`repeat_factors`.
    seed : int
        The epoch's draws come from ``torch.Generator().manual_seed(seed + epoch)``: the same on
        every process.
    shuffle : bool
        Shuffle the epoch's indices (else ascending, repeats adjacent).
    num_replicas, rank : int, optional
        Shard each epoch over ``num_replicas`` processes as ``DistributedSampler`` does: the
        epoch's indices are padded (by repeating its first ones) to a multiple of
        ``num_replicas`` and process ``rank`` takes every ``num_replicas``-th from ``rank``; every
        rank gets the same length and together they hold the whole epoch. Default: the world size
        and rank of ``torch.distributed`` when it is initialised, else one process.

    Notes
    -----
    The epoch's length varies with the draws; ``len(sampler)`` is this epoch's (this rank's).
    Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        factors,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        factors = np.asarray(factors, dtype=np.float64)
        if factors.ndim != 1:
            raise ValueError(f"factors must be one-dimensional, got shape {factors.shape}")
        if len(factors) and not (np.isfinite(factors).all() and factors.min() >= 0):
            raise ValueError("repeat factors must be finite and >= 0")
        if num_replicas is None or rank is None:
            dist = torch.distributed
            initialised = dist.is_available() and dist.is_initialized()
            if num_replicas is None:
                num_replicas = dist.get_world_size() if initialised else 1
            if rank is None:
                rank = dist.get_rank() if initialised else 0
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in 0..num_replicas-1, got rank {rank} of {num_replicas}")
        self.factors = torch.from_numpy(factors)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self._cache: tuple[int, torch.Tensor] | None = None

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose draws the next iteration uses (as ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """All processes' indices of ``epoch`` (default: the current one), before sharding and padding."""
        epoch = self.epoch if epoch is None else int(epoch)
        g = torch.Generator()
        g.manual_seed(self.seed + epoch)
        base = self.factors.floor()
        extra = torch.rand(len(self.factors), generator=g, dtype=torch.float64) < (self.factors - base)
        repeats = base.long() + extra.long()
        indices = torch.repeat_interleave(torch.arange(len(self.factors)), repeats)
        if self.shuffle and len(indices):
            indices = indices[torch.randperm(len(indices), generator=g)]
        return indices

    def _shard(self) -> torch.Tensor:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        indices = self.epoch_indices()
        if self.num_replicas > 1 and len(indices):
            total = math.ceil(len(indices) / self.num_replicas) * self.num_replicas
            if total > len(indices):
                pad = indices.repeat(math.ceil((total - len(indices)) / len(indices)))[: total - len(indices)]
                indices = torch.cat([indices, pad])
            indices = indices[self.rank : total : self.num_replicas]
        self._cache = (self.epoch, indices)
        return indices

    def __iter__(self):
        return iter(self._shard().tolist())

    def __len__(self) -> int:
        return len(self._shard())

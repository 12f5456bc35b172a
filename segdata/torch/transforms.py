"""Composable transforms on a segmentation sample: ``{"image": (3, H, W), "label": (H, W), ...}``.

Every transform is a callable ``t(sample, generator=None) -> sample``: random ones draw from
``generator`` (a ``torch.Generator``) when given, else from torch's global generator (which a
DataLoader seeds per worker: ``base_seed + worker_id``). :class:`SegmentationDataset` with
``seed=S`` passes one generator per sample, seeded from ``(S, epoch, index)``: the same tensors
whatever the number of workers.

Images may be uint8 (0..255, what :class:`SegmentationDataset` hands a transform) or float
(``[0, 1]``, or normalised after :class:`Normalize`); resizing keeps the dtype, :class:`Normalize`
converts to float32. Labels are integer maps (int64, train ids, ``ignore_index`` for ignore):
they are only ever resampled nearest-neighbour (half-pixel centres, the rule of
``mode="nearest-exact"``), so no value appears that was not in the label, and padding is
``ignore_index``. Sizes are ``(height, width)`` in pixels.

>>> import torch
>>> t = Compose([RandomHorizontalFlip(p=1.0), RandomCrop((2, 2), ignore_index=255)])
>>> s = t({"image": torch.zeros(3, 1, 3, dtype=torch.uint8), "label": torch.tensor([[0, 1, 2]])})
>>> s["label"].tolist()[1], s["image"].shape
([255, 255], torch.Size([3, 2, 2]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomScale",
    "Resize",
    "eval_transform",
    "resize_image",
    "resize_label",
    "to_float_image",
    "train_transform",
]

#: ImageNet statistics of RGB in [0, 1] (what torchvision's and mmsegmentation's backbones expect)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(n: int, generator: torch.Generator | None) -> int:
    """Uniform in ``0..n-1``."""
    return int(torch.randint(n, (1,), generator=generator)) if n > 1 else 0


def to_float_image(image: torch.Tensor) -> torch.Tensor:
    """An image tensor as a contiguous float32 ``(3, H, W)``: uint8 (0..255) becomes ``[0, 1]``
    (value / 255), float is only made contiguous. Bytes are made contiguous before the conversion
    (a strided float conversion is several times slower)."""
    if image.dtype == torch.uint8:
        return image.contiguous().float().mul_(1.0 / 255.0)
    return image.contiguous()


def _nearest_index(n_in: int, n_out: int, device) -> torch.Tensor:
    """Source index of each output pixel, nearest with half-pixel centres: floor((i + 0.5) * n_in / n_out)."""
    idx = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out)).floor().long()
    return idx.clamp_(0, n_in - 1)


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An ``(H, W)`` label map resampled nearest-neighbour to ``size`` = ``(h, w)``: every output
    pixel is a copy of one input pixel (no new value can appear)."""
    h, w = size
    rows = _nearest_index(label.shape[-2], h, label.device)
    cols = _nearest_index(label.shape[-1], w, label.device)
    return label.index_select(-2, rows).index_select(-1, cols)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A ``(3, H, W)`` image resized bilinearly (half-pixel centres, no antialiasing) to ``size``;
    uint8 stays uint8 (rounded), float stays float."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


class Compose:
    """Apply ``transforms`` in order, passing each the same generator."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, sample: dict, generator: torch.Generator | None = None) -> dict:
        for t in self.transforms:
            sample = t(sample, generator=generator)
        return sample

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomScale:
    """Resize by a factor drawn uniformly from ``scale`` (relative to the sample's size): image
    bilinear, label nearest. The new size is ``H * s, W * s`` rounded half up, at least 1."""

    def __init__(self, scale: tuple[float, float] = (0.5, 2.0)):
        low, high = (float(v) for v in scale)
        if not 0 < low <= high:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.scale = (low, high)

    def __call__(self, sample: dict, generator: torch.Generator | None = None) -> dict:
        s = _uniform(*self.scale, generator)
        h, w = sample["label"].shape[-2:]
        size = (max(1, int(h * s + 0.5)), max(1, int(w * s + 0.5)))
        out = dict(sample)
        out["image"] = resize_image(sample["image"], size)
        out["label"] = resize_label(sample["label"], size)
        return out

    def __repr__(self) -> str:
        return f"RandomScale(scale={self.scale})"


class Resize:
    """Resize to ``size``: ``(h, w)``, or an int for the shorter side (aspect ratio kept).

    ``resize_label=False`` leaves the label at its size (evaluation at the annotation's
    resolution: the prediction is resized back instead)."""

    def __init__(self, size: int | tuple[int, int], resize_label: bool = True):
        self.size = size
        self.resize_label = resize_label

    def target(self, h: int, w: int) -> tuple[int, int]:
        if isinstance(self.size, int):
            s = self.size / min(h, w)
            return max(1, int(h * s + 0.5)), max(1, int(w * s + 0.5))
        return _pair(self.size)

    def __call__(self, sample: dict, generator: torch.Generator | None = None) -> dict:
        h, w = sample["image"].shape[-2:]
        size = self.target(h, w)
        out = dict(sample)
        out["image"] = resize_image(sample["image"], size)
        if self.resize_label and "label" in sample:
            out["label"] = resize_label(sample["label"], size)
        return out

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, resize_label={self.resize_label})"


class RandomCrop:
    """A random ``size`` = ``(h, w)`` crop (an int: square). A sample smaller than the crop is first
    padded at the bottom and right: the label with ``ignore_index``, the image with ``pad_value``.

    Parameters
    ----------
    size : int or (h, w)
    ignore_index : int, optional
        Label padding; None: the dataset's (:class:`SegmentationDataset` fills it in).
    pad_value : float, sequence of 3 floats, or "mean"
        Image padding in ``[0, 1]`` units (scaled to 0..255 for a uint8 image); ``"mean"``:
        :data:`IMAGENET_MEAN`, which :class:`Normalize` then maps to 0. Put :class:`Normalize`
        after the crop (the presets do).
    cat_max_ratio : float
        mmsegmentation's rule: redraw the crop (up to 10 times) while one class covers more than
        this share of its labelled pixels; 1.0 (default) draws once.
    """

    def __init__(self, size, ignore_index: int | None = None, pad_value=0.0, cat_max_ratio: float = 1.0):
        self.size = _pair(size)
        if min(self.size) < 1:
            raise ValueError(f"crop size must be positive, got {size}")
        self.ignore_index = ignore_index
        self.pad_value = pad_value
        self.cat_max_ratio = float(cat_max_ratio)

    def _pad_values(self, image: torch.Tensor) -> list[float]:
        value = IMAGENET_MEAN if isinstance(self.pad_value, str) and self.pad_value == "mean" else self.pad_value
        values = [float(value)] * image.shape[0] if isinstance(value, (int, float)) else [float(v) for v in value]
        if image.dtype == torch.uint8:
            values = [min(255.0, max(0.0, round(v * 255))) for v in values]
        return values

    def _pad(self, sample: dict) -> dict:
        image, label = sample["image"], sample["label"]
        h, w = label.shape[-2:]
        ch, cw = self.size
        if h >= ch and w >= cw:
            return sample
        if self.ignore_index is None:
            raise ValueError("RandomCrop needs an ignore_index to pad labels (SegmentationDataset sets it)")
        ph, pw = max(h, ch), max(w, cw)
        padded_label = label.new_full((ph, pw), self.ignore_index)
        padded_label[:h, :w] = label
        padded = image.new_empty((image.shape[0], ph, pw))
        for c, v in enumerate(self._pad_values(image)):
            padded[c].fill_(v)
        padded[:, :h, :w] = image
        return {**sample, "image": padded, "label": padded_label}

    def __call__(self, sample: dict, generator: torch.Generator | None = None) -> dict:
        sample = self._pad(sample)
        label = sample["label"]
        h, w = label.shape[-2:]
        ch, cw = self.size
        for _ in range(10 if self.cat_max_ratio < 1.0 else 1):
            top, left = _randint(h - ch + 1, generator), _randint(w - cw + 1, generator)
            crop = label[top : top + ch, left : left + cw]
            if self.cat_max_ratio >= 1.0:
                break
            valid = crop[crop != self.ignore_index] if self.ignore_index is not None else crop.reshape(-1)
            counts = torch.unique(valid, return_counts=True)[1]
            if len(counts) > 1 and counts.max().item() / counts.sum().item() < self.cat_max_ratio:
                break
        out = dict(sample)
        out["image"] = sample["image"][:, top : top + ch, left : left + cw]
        out["label"] = crop
        return out

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, ignore_index={self.ignore_index}, pad_value={self.pad_value!r})"


class RandomHorizontalFlip:
    """Mirror image and label left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, sample: dict, generator: torch.Generator | None = None) -> dict:
        if float(torch.rand((), generator=generator, dtype=torch.float64)) >= self.p:
            return sample
        out = dict(sample)
        out["image"] = sample["image"].flip(-1)
        out["label"] = sample["label"].flip(-1)
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """``(image - mean) / std`` per channel, on float32 RGB in ``[0, 1]`` (a uint8 image is
    divided by 255 first). Default: :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if any(v <= 0 for v in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    def __call__(self, sample: dict, generator: torch.Generator | None = None) -> dict:
        image = sample["image"]
        mean = torch.tensor(self.mean, dtype=torch.float32, device=image.device)[:, None, None]
        std = torch.tensor(self.std, dtype=torch.float32, device=image.device)[:, None, None]
        if image.dtype == torch.uint8:
            image = to_float_image(image).sub_(mean)  # a new tensor: changed in place
        else:
            image = torch.sub(image, mean)  # the caller's tensor is left as it is
        return {**sample, "image": image.div_(std)}

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def train_transform(
    crop: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    *,
    flip: float = 0.5,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    ignore_index: int | None = None,
    cat_max_ratio: float = 1.0,
) -> Compose:
    """The usual training pipeline: :class:`RandomScale` ``(scale)``, :class:`RandomCrop`
    ``(crop)`` (label padded with ``ignore_index``, the dataset's when None; image with the
    mean), :class:`RandomHorizontalFlip` ``(flip)``, :class:`Normalize` ``(mean, std)`` (left out
    when ``mean`` is None: images stay in ``[0, 1]``)."""
    steps: list = []
    if scale is not None and tuple(scale) != (1.0, 1.0):
        steps.append(RandomScale(scale))
    pad = "mean" if mean is not None else 0.0
    if mean is not None and tuple(mean) != IMAGENET_MEAN:
        pad = tuple(mean)
    steps.append(RandomCrop(crop, ignore_index=ignore_index, pad_value=pad, cat_max_ratio=cat_max_ratio))
    if flip > 0:
        steps.append(RandomHorizontalFlip(flip))
    if mean is not None:
        steps.append(Normalize(mean, std))
    return Compose(steps)


def eval_transform(
    size: int | tuple[int, int] | None = None,
    *,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Compose:
    """The evaluation pipeline: optionally :class:`Resize` the image to ``size`` (the label stays
    at the annotation's size), then :class:`Normalize` (left out when ``mean`` is None)."""
    steps: list = []
    if size is not None:
        steps.append(Resize(size, resize_label=False))
    if mean is not None:
        steps.append(Normalize(mean, std))
    return Compose(steps)

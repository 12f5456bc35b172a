"""A unified dataset as a ``torch.utils.data.Dataset``: images and label maps in a vocabulary's
train-id space, decoded in DataLoader workers.

Labels come from the segment maps (``masks/<layer>/<split>/<image_id>.png``) through two lookups
composed once, in ``__init__``, into one small table per image: ``segment_id -> class_id`` (the
segment table) and ``class_id -> train_id`` (the vocabulary). Decoding a label is then one PNG
inflate (segdata's decoder, :mod:`segdata.maskio`) and one table lookup per pixel. The tables are
kept as one flat array and offsets, with the image ids and paths as plain lists, so that the
dataset pickles into worker processes in milliseconds whatever the size of the segment table.

Images are read from ``images.file`` under the manifest's ``image_root``, always as RGB: 8-bit
grey, RGB and RGBA PNGs by segdata's own decoder (photographs' Paeth rows included), which writes
them straight into the ``(3, H, W)`` planes a network takes; everything else (JPEG) by Pillow.

:func:`segdata.torch.loader` (a DataLoader underneath) has its workers decode batches of whole
images (no transform, one size) in place into shared memory they reuse, and hands them to the
main process without the copies of ``default_collate`` (:mod:`segdata.torch.batching`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..format import Dataset, mask_relpath, text_or_none
from ..maskio import GREY, PNG_SIGNATURE, RGB, RGBA, decode_png, decode_png_planes, png_header, read_segment_map
from ..vocab import SOURCE_TRAIN_IGNORE, Vocabulary, as_vocabulary
from .batching import WorkerBatches
from .transforms import to_float_image

__all__ = ["SegmentationDataset", "default_vocabulary", "image_tensor", "sample_seed"]


def default_vocabulary(ds: Dataset) -> Vocabulary:
    """The vocabulary a dataset trains on when none is given: the source's own train ids
    (:meth:`Vocabulary.from_train_ids`) when ``classes.parquet`` has any (``train_id`` not null
    and not 255), else :meth:`Vocabulary.default` (every class not flagged ``ignore``)."""
    classes = ds.classes
    tid = classes["train_id"]
    defined = tid.notna() & (tid.fillna(SOURCE_TRAIN_IGNORE) != SOURCE_TRAIN_IGNORE)
    if bool(defined.any()):
        return Vocabulary.from_train_ids(classes, source=str(ds.path / "classes.parquet"))
    return Vocabulary.default(classes, source=str(ds.path))


def label_dtype(vocab: Vocabulary) -> np.dtype:
    """The smallest unsigned type holding the train ids ``0..K-1`` and ``ignore_index`` (uint8 for
    K <= 255 with ignore 255), int32 when ``ignore_index`` is negative."""
    low, high = min(0, vocab.ignore_index), max(vocab.num_classes - 1, vocab.ignore_index)
    if low < 0:
        return np.dtype(np.int32)
    if high <= 255:
        return np.dtype(np.uint8)
    if high <= 65535:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


def image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """An ``(H, W, 3)`` uint8 array as a ``(3, H, W)`` float32 tensor in ``[0, 1]`` (value / 255).

    Deinterleaves in uint8 first, then converts the contiguous planes: three times faster than a
    strided ``permute(...).float()`` on a 2048x1024 image.
    """
    planes = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    return planes.float().mul_(1.0 / 255.0)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index`` in ``epoch`` (a 63-bit int, from numpy's SeedSequence)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2)
    return (int(state[0]) << 31) ^ int(state[1])


class SegmentationDataset(torch.utils.data.Dataset):
    """The images of one split of a unified dataset, with label maps in a vocabulary's train ids.

    Parameters
    ----------
    ds : Dataset or path
        A unified dataset (:func:`segdata.open`) or its directory.
    split : str or None
        ``train``, ``val``, ...; None: every split. Only images annotated in ``layer`` are kept
        (:meth:`Dataset.select_images`), in the order of ``images.parquet``.
    vocab : Vocabulary or path, optional
        Unified class ids -> train ids. Default: the source's own train ids when the class table
        has any (Cityscapes trainId, SceneParsing index - 1, VOC index), else every class not
        flagged ``ignore`` in ``class_id`` order (see :func:`default_vocabulary`).
    transform : callable, optional
        Called with the sample dict (see below); returns a sample dict. It receives the image as a
        **uint8** ``(3, H, W)`` tensor (0..255) and the label as an ``(H, W)`` uint8 tensor
        (int32 when the train ids or ``ignore_index`` do not fit a byte); a uint8 image it
        returns is converted to float32 in ``[0, 1]`` afterwards and the label to int64, so
        resizing, crops and flips move bytes. The transforms of :mod:`segdata.torch.transforms` accept both.
        With ``seed``, it is called as ``transform(sample, generator=g)``.
    layer : str
        The mask layer labels come from (``objects``; ``parts-1``, ...).
    label_only : bool
        Return ``{"label", "image_id"}`` only, without reading the image (evaluation of saved
        predictions, statistics).
    image_dtype : torch.float32 or torch.uint8
        float32 (default): RGB in ``[0, 1]``. uint8: RGB 0..255, four times fewer bytes from the
        workers to the trainer; normalise the batch on the device (:class:`~segdata.torch.
        transforms.Normalize` takes uint8 batches too). A transform that returns a float image
        (one that normalises) decides for itself.
    seed : int, optional
        When given, sample ``i`` of epoch ``e`` (:meth:`set_epoch`) draws its random transforms
        from a ``torch.Generator`` seeded with :func:`sample_seed` ``(seed, e, i)``: the same
        tensors whatever the number of DataLoader workers and the order. When None, transforms draw
        from torch's global generator, which a DataLoader seeds in each worker from its own
        ``generator`` (``base_seed + worker_id``): reproducible for a fixed number of workers
        after ``torch.manual_seed`` (or with ``DataLoader(generator=...)``).

    Returns (``__getitem__``)
    -------------------------
    dict
        ``image``: float32 ``(3, H, W)``, RGB in ``[0, 1]`` (normalised when the transform
        normalises; uint8 0..255 with ``image_dtype=torch.uint8``); ``label``: int64 ``(H, W)``, train ids ``0..K-1``, and
        ``vocab.ignore_index`` (255 unless K > 255, then 65535 unless the vocabulary says
        otherwise) for unlabeled pixels, classes outside the vocabulary and classes flagged
        ``ignore``; ``image_id``: str.

    Raises
    ------
    SelectionError
        A split or layer the dataset does not have.
    InputError
        (when reading a sample) the image file is missing or unreadable, or its size differs from
        the annotation's, naming the file.

    Notes
    -----
    The dataset holds no DataFrame and no open :class:`Dataset`: per-image lookup tables are one
    flat array with offsets, ids and paths plain lists, so that it pickles cheaply into workers.
    Call :meth:`set_epoch` before each epoch's iterator is created (a DataLoader with
    ``persistent_workers`` keeps the epoch its workers were started with).
    """

    def __init__(
        self,
        ds: Dataset | str | Path,
        split: str | None,
        vocab: Vocabulary | str | Path | None = None,
        transform: Callable | None = None,
        layer: str = "objects",
        *,
        label_only: bool = False,
        seed: int | None = None,
        image_dtype: torch.dtype = torch.float32,
    ):
        if image_dtype not in (torch.float32, torch.uint8):
            raise ValueError(f"image_dtype must be torch.float32 or torch.uint8, got {image_dtype}")
        self.image_dtype = image_dtype
        if not isinstance(ds, Dataset):
            ds = Dataset(ds)
        ds.check_layer(layer)
        self.root = ds.path
        self.split = split
        self.layer = layer
        self.vocab = default_vocabulary(ds) if vocab is None else as_vocabulary(vocab)
        self.ignore_index = int(self.vocab.ignore_index)
        self.transform = transform
        self.label_only = bool(label_only)
        self.seed = seed
        self.epoch = 0
        self._batches: WorkerBatches | None = None  # set by segdata.torch.loader: batches in place

        images = ds.select_images(split, layer)
        self.image_ids: list[str] = [str(v) for v in images["image_id"]]
        splits = [str(v) for v in images["split"]]
        self.heights = images["height"].to_numpy(dtype=np.int64)
        self.widths = images["width"].to_numpy(dtype=np.int64)
        self.mask_paths: list[str] = [
            str(ds.path / mask_relpath(layer, s, iid)) for s, iid in zip(splits, self.image_ids)
        ]
        root = Path(ds.manifest.get("image_root", "."))
        if not root.is_absolute():
            root = ds.path / root
        self.image_root = root
        self.image_paths: list[str | None] = [
            None if text_or_none(f) is None else str(root / f) for f in images["file"]
        ]

        # class_id -> train id, then per image segment_id -> train id (ids without a row: ignore)
        self.label_dtype = label_dtype(self.vocab)
        class_lut = self.vocab.lookup(ds.classes).astype(np.int64)
        ignore = self.ignore_index

        def to_train(class_ids: np.ndarray) -> np.ndarray:
            inside = (class_ids >= 0) & (class_ids < len(class_lut))
            return np.where(inside, class_lut[np.clip(class_ids, 0, len(class_lut) - 1)], ignore)

        tables = ds.lookup_tables(layer, self.image_ids, to_train, dtype=self.label_dtype, fill=ignore)
        lengths = np.fromiter((len(t) for t in tables.values()), dtype=np.int64, count=len(tables))
        self._lut_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._lut_offsets[1:])
        self._luts = (np.concatenate(list(tables.values())) if tables else np.zeros(0, dtype=self.label_dtype)).astype(
            self.label_dtype, copy=False
        )
        if self.transform is not None:
            self.transform = _bind_ignore(self.transform, ignore)

    # ------------------------------------------------------------------ views

    def __len__(self) -> int:
        return len(self.image_ids)

    def __repr__(self) -> str:
        return (
            f"<SegmentationDataset {self.root} split={self.split!r} layer={self.layer!r}: "
            f"{len(self)} images, {self.vocab.num_classes} classes, ignore {self.ignore_index}>"
        )

    @property
    def num_classes(self) -> int:
        """K, the number of train ids."""
        return self.vocab.num_classes

    @property
    def class_names(self) -> list[str]:
        return self.vocab.names

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose random transforms the next samples draw (only with ``seed``)."""
        self.epoch = int(epoch)

    def lookup(self, index: int) -> np.ndarray:
        """Image ``index``'s table ``train_id = lut[segment_id]`` (``label_dtype``; ignore at ids
        without a segment row, 0 included)."""
        return self._luts[self._lut_offsets[index] : self._lut_offsets[index + 1]]

    # ------------------------------------------------------------------ decoding

    def read_label(self, index: int) -> np.ndarray:
        """Image ``index``'s ``(H, W)`` label map in train ids (``label_dtype``: uint8 for
        K <= 255 and ignore 255), ``ignore_index`` where no class of the vocabulary is.

        Raises
        ------
        InputError
            The mask is missing or corrupt, or holds a segment id without a row.
        """
        return self._label_tensor(index, self.label_dtype).numpy()

    def _label_tensor(self, index: int, dtype=np.int64, out: np.ndarray | None = None) -> torch.Tensor:
        """The label map of image ``index`` as a tensor of ``dtype`` (written into ``out``, an
        ``(H, W)`` array of that type, when given)."""
        segmap = read_segment_map(self.mask_paths[index], view=True)
        lut = self.lookup(index).astype(dtype)
        if segmap.size and int(segmap.max()) >= len(lut):
            raise InputError(self.mask_paths[index], f"segment id {int(segmap.max())} has no row in segments.parquet")
        if out is None:
            out = np.empty(segmap.shape, dtype=lut.dtype)
        elif out.shape != segmap.shape:
            raise InputError(
                self.mask_paths[index],
                f"mask is {segmap.shape[1]}x{segmap.shape[0]} pixels, its image {out.shape[1]}x{out.shape[0]}",
            )
        np.take(lut, segmap, out=out, mode="clip")  # ids checked above; "clip" writes out unbuffered
        return torch.from_numpy(out)

    def image_path(self, index: int) -> Path:
        """Where image ``index`` is (``images.file`` under the manifest's ``image_root``).

        Raises
        ------
        InputError
            The image has no file (``images.file`` is null: it was missing when converted).
        """
        path = self.image_paths[index]
        if path is None:
            raise InputError(
                self.root / "images.parquet",
                f"image {self.image_ids[index]} has no image file (images.file is null: it was missing "
                "when the dataset was converted)",
                "use label_only=True to read its labels alone",
            )
        return Path(path)

    def _image_bytes(self, index: int) -> tuple[Path, bytes]:
        path = self.image_path(index)
        try:
            with open(path, "rb") as f:
                return path, f.read()
        except FileNotFoundError:
            raise InputError(
                path,
                f"image file not found (image {self.image_ids[index]}; image_root is {self.image_root})",
                "the source dataset the manifest's image_root names must stay in place, or convert with --copy-images",
            ) from None
        except OSError as exc:
            raise InputError(path, f"cannot read image file ({exc.strerror})") from None

    def _check_size(self, index: int, path: Path, shape: tuple[int, ...]) -> None:
        h, w = int(self.heights[index]), int(self.widths[index])
        if tuple(shape) != (h, w):
            raise InputError(path, f"image is {shape[1]}x{shape[0]} pixels, its annotation {w}x{h} (images.parquet)")

    def read_image(self, index: int) -> np.ndarray:
        """Image ``index`` as an ``(H, W, 3)`` uint8 RGB array (grey expanded, alpha dropped).

        Raises
        ------
        InputError
            Missing or unreadable file, or a size other than the annotation's, naming the file.
        """
        path, data = self._image_bytes(index)
        rgb = _decode_rgb(data, path)
        self._check_size(index, path, rgb.shape[:2])
        return rgb

    def _image_tensor(self, index: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Image ``index`` as a ``(3, H, W)`` tensor of ``image_dtype`` (float32 in [0, 1], or
        uint8), decoded straight into ``out`` when given."""
        path, data = self._image_bytes(index)
        dtype = np.float32 if self.image_dtype == torch.float32 else np.uint8
        h, w = int(self.heights[index]), int(self.widths[index])
        if out is None:
            out = torch.empty((3, h, w), dtype=self.image_dtype)
        planes = out.numpy()
        if data[:8] == PNG_SIGNATURE:
            pw, ph, _, _ = png_header(data, path)
            self._check_size(index, path, (ph, pw))
            if decode_png_planes(data, path, dtype=dtype, out=planes) is not None:
                return out
        rgb = _decode_rgb(data, path)  # JPEG, palette and 16-bit PNGs
        self._check_size(index, path, rgb.shape[:2])
        planes[...] = rgb.transpose(2, 0, 1)
        if dtype == np.float32:
            out.mul_(1.0 / 255.0)  # the float32 product, as image_tensor and decode_png_planes give
        return out

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """The samples ``[self[i] for i in indices]``, read for one batch.

        Under :func:`segdata.torch.loader` (not ``label_only``) the samples' tensors are
        consecutive views of one ``(B, 3, H, W)`` image batch and one ``(B, H, W)`` label batch in
        a slot of shared memory the DataLoader worker reuses (:mod:`segdata.torch.batching`),
        which the loader hands over without a copy: without a transform, when the images have
        one size, decoded in place; with one, the transformed samples copied in when they have
        one size (crops). Otherwise (a plain DataLoader too), the samples one by one.
        """
        n = len(self)
        idx = [i + n if i < 0 else i for i in indices]
        if self._batches is None or self.label_only or not idx or any(not 0 <= i < n for i in idx):
            return [self[i] for i in indices]
        if self.transform is not None or len({(int(self.heights[i]), int(self.widths[i])) for i in idx}) != 1:
            return self._batches.stacked([self[i] for i in idx])  # crops of one size: copied into the batch
        h, w = int(self.heights[idx[0]]), int(self.widths[idx[0]])

        def fill(k: int, label: np.ndarray, image: torch.Tensor) -> None:
            self._label_tensor(idx[k], out=label)
            self._image_tensor(idx[k], out=image)

        images, labels = self._batches.tensors(len(idx), h, w, self.image_dtype, fill)
        return [{"image": images[k], "label": labels[k], "image_id": self.image_ids[i]} for k, i in enumerate(idx)]

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        image_id = self.image_ids[index]
        if self.label_only or self.transform is None:
            label = self._label_tensor(index)
        else:  # transforms move a quarter or an eighth of the bytes; int64 after them
            label = self._label_tensor(index, np.uint8 if self.label_dtype == np.uint8 else np.int32)
        if self.label_only:
            return {"label": label, "image_id": image_id}
        if self.transform is None:
            return {"image": self._image_tensor(index), "label": label, "image_id": image_id}
        rgb = self.read_image(index)
        # (3, H, W) view of the (H, W, 3) pixels: channels-last strides, which torch's uint8 resize
        # reads fastest; crops and flips keep it, and the float conversion below makes it contiguous
        if not rgb.flags.writeable:  # a decoder's read-only buffer: torch wants to own writable memory
            rgb = rgb.copy()
        sample = {"image": torch.from_numpy(rgb).permute(2, 0, 1), "label": label, "image_id": image_id}
        if self.seed is None:
            sample = self.transform(sample)
        else:
            generator = torch.Generator()
            generator.manual_seed(sample_seed(self.seed, self.epoch, index))
            sample = self.transform(sample, generator=generator)
        image = sample["image"]
        if image.dtype == torch.uint8 and self.image_dtype == torch.uint8:
            sample["image"] = image.contiguous()
        else:
            sample["image"] = to_float_image(image)
        sample["label"] = sample["label"].long()
        return sample


def _decode_rgb(data: bytes, path: Path) -> np.ndarray:
    """Image bytes as ``(H, W, 3)`` uint8 RGB: 8-bit grey/RGB/RGBA PNGs through segdata's decoder;
    everything else (JPEG, palette, 16-bit PNGs) through Pillow."""
    if data[:8] == PNG_SIGNATURE:
        _, _, depth, ctype = png_header(data, path)
        if depth == 8 and ctype in (GREY, RGB, RGBA) and len(data) > 28 and data[28] == 0:
            arr = decode_png(data, path)
            if arr.ndim == 2:
                arr = arr[:, :, None]
            if arr.shape[2] == 1:
                return np.repeat(arr, 3, axis=2)
            return arr[:, :, :3] if arr.shape[2] == 4 else arr
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB") if im.mode != "RGB" else im)
    except Exception as exc:  # Pillow raises many types for broken files
        raise InputError(path, f"cannot decode image ({exc})") from None


def _bind_ignore(transform: Callable, ignore_index: int) -> Callable:
    """The transform with the dataset's ``ignore_index`` set on every transform that pads labels
    and was given none (a copy; the caller's object is left as it is)."""
    import copy

    if not _needs_ignore(transform):
        return transform
    transform = copy.deepcopy(transform)
    _set_ignore(transform, ignore_index)
    return transform


def _needs_ignore(transform) -> bool:
    if hasattr(transform, "ignore_index") and transform.ignore_index is None:
        return True
    return any(_needs_ignore(t) for t in getattr(transform, "transforms", ()))


def _set_ignore(transform, ignore_index: int) -> None:
    if hasattr(transform, "ignore_index") and transform.ignore_index is None:
        transform.ignore_index = ignore_index
    for t in getattr(transform, "transforms", ()):
        _set_ignore(t, ignore_index)

"""The one PNG writer of the synthetic generators (ADE20K, Cityscapes, VOC).

Two encodings, chosen by what the generated files must resemble:

* ``"fast"``, segdata's own: every row unfiltered (filter type 0, as :func:`segdata.maskio.encode_png`
  writes), deflated with zlib's level 1, optionally with a ``tIME`` chunk (the real ADE20K label PNGs
  carry one). :class:`PngEncoder` also knows that rows outside a band are zero: it deflates them once
  per row length and reuses the blocks (deflate blocks ending in a sync flush are self-contained), so a
  full-size instance mask costs about as much as its bounding box. zlib rather than ISA-L (which
  :mod:`segdata.maskio` prefers): the same seed must give the same bytes whether or not ``isal`` is
  installed.
* ``"paeth"``: every row Paeth-filtered (filter type 4), as the real Cityscapes ``leftImg8bit``
  photographs are (1,022 of 1,024 rows on the samples): 8-bit RGB or RGBA only, for decoders that
  must be timed on photographs as they ship (:func:`paeth_png`).
* ``"pillow"``: Pillow's default PNG encoder (zlib level 6 and adaptive row filters unless a
  ``compress_level`` is given), which writes the real Cityscapes label PNGs byte for byte from their
  pixels, so that files decode as slowly as the real ones.

Arrays are ``(row, col)``: ``(H, W)`` uint8 (grey or palette indices) or uint16 (16-bit grey),
``(H, W, 3)`` uint8 RGB, ``(H, W, 4)`` uint8 RGBA.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from segdata.maskio import GREY, PALETTE, PNG_SIGNATURE, RGB, RGBA

__all__ = ["ENCODINGS", "PngEncoder", "png_bytes", "write_png"]

#: The encodings :func:`png_bytes` knows.
ENCODINGS = ("fast", "pillow")
_COLOR_TYPES = {1: GREY, 3: RGB, 4: RGBA}

Block = np.ndarray | Sequence[np.ndarray] | None


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


class PngEncoder:
    """Unfiltered PNG encoder, zlib level 1, for images that are zero outside a band of rows.

    Parameters
    ----------
    timestamp : (year, month, day, hour, minute, second), optional
        Written as a ``tIME`` chunk right after ``IHDR`` (fixed, so that output is byte-identical).
    palette : sequence of int, optional
        Flat ``[r, g, b, r, g, b, ...]`` (at most 256 entries): single-channel 8-bit images are then
        written as palette images (colour type 3) with this ``PLTE`` chunk.

    The encoder keeps the deflated zero rows it has made (a few kilobytes per image width) for the
    next images; create one per process and reuse it.
    """

    _ZERO_BLOCK_ROWS = 256
    _MAX_CACHED = 4096  # zero-row blocks kept (image widths times row counts); the cache is cleared beyond

    def __init__(
        self, timestamp: tuple[int, int, int, int, int, int] | None = None, palette: Sequence[int] | None = None
    ) -> None:
        self._time_chunk = _chunk(b"tIME", struct.pack(">HBBBBB", *timestamp)) if timestamp is not None else b""
        if palette is not None:
            table = bytes(int(v) for v in palette)
            if len(table) % 3 or not 3 <= len(table) <= 768:
                raise ValueError(f"a palette needs 1 to 256 RGB triples, got {len(table)} values")
            self._palette_chunk = _chunk(b"PLTE", table)
        else:
            self._palette_chunk = b""
        self._zero_blocks: dict[tuple[int, int], bytes] = {}

    def _zero_rows(self, row_bytes: int, n_rows: int) -> list[bytes]:
        out = []
        while n_rows > 0:
            k = min(n_rows, self._ZERO_BLOCK_ROWS)
            blob = self._zero_blocks.get((row_bytes, k))
            if blob is None:
                if len(self._zero_blocks) >= self._MAX_CACHED:
                    self._zero_blocks.clear()
                comp = zlib.compressobj(1, zlib.DEFLATED, -15)
                blob = comp.compress(bytes(row_bytes * k)) + comp.flush(zlib.Z_SYNC_FLUSH)
                self._zero_blocks[(row_bytes, k)] = blob
            out.append(blob)
            n_rows -= k
        return out

    def encode(
        self, height: int, width: int, channels: int, block: Block, row0: int = 0, col0: int = 0, *, depth: int = 8
    ) -> bytes:
        """PNG bytes of an ``height`` x ``width`` image that is zero outside ``block`` placed at ``(row0, col0)``.

        Parameters
        ----------
        channels : {1, 3, 4}
            Grey (or palette indices, with a palette), RGB or RGBA.
        block : numpy.ndarray or sequence of numpy.ndarray or None
            ``(n, m)`` (one channel) or ``(n, m, channels)`` array; or one ``(n, m)`` uint8 plane per
            channel; or None (all zero). uint8, or uint16 with ``depth=16`` (one channel only).
        row0, col0 : int
            Top-left corner of ``block`` in the image (0-based pixels).
        depth : {8, 16}
            Bits per sample.
        """
        if channels not in _COLOR_TYPES or depth not in (8, 16) or (depth == 16 and channels != 1):
            raise ValueError(f"cannot write {channels}-channel {depth}-bit PNGs")
        color_type = PALETTE if self._palette_chunk and channels == 1 and depth == 8 else _COLOR_TYPES[channels]
        bpp = channels * depth // 8
        row_bytes = width * bpp + 1
        planes = block if isinstance(block, (tuple, list)) else None
        shape = planes[0].shape if planes is not None else (block.shape if block is not None else (0, 0))
        if shape[0] == 0:
            n, band = 0, None
        else:
            n, m = shape[0], shape[1]
            band = np.zeros((n, row_bytes), np.uint8)
            dest = band[:, 1 + col0 * bpp : 1 + (col0 + m) * bpp]
            if depth == 16:
                dest[...] = np.asarray(block, ">u2").view(np.uint8).reshape(n, 2 * m)
            elif channels == 1:
                dest[...] = block
            elif planes is not None:
                dest_c = dest.reshape(n, m, channels)  # a view: the rows of band are contiguous
                for c in range(channels):
                    dest_c[..., c] = planes[c]
            else:
                dest.reshape(n, m, channels)[...] = block
        a, b = 1, 0
        b = (b + row0 * row_bytes * a) % 65521
        pieces = [b"\x78\x01", *self._zero_rows(row_bytes, row0)]
        if band is not None:
            adler = zlib.adler32(band, (b << 16) | a)
            a, b = adler & 0xFFFF, adler >> 16
            comp = zlib.compressobj(1, zlib.DEFLATED, -15)
            pieces.append(comp.compress(band) + comp.flush(zlib.Z_SYNC_FLUSH))
        rest = height - row0 - n
        b = (b + rest * row_bytes * a) % 65521
        pieces.extend(self._zero_rows(row_bytes, rest))
        pieces.append(b"\x03\x00")  # final empty fixed-Huffman block
        pieces.append(struct.pack(">I", (b << 16) | a))
        ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
        palette = self._palette_chunk if color_type == PALETTE else b""
        return b"".join(
            (
                PNG_SIGNATURE,
                _chunk(b"IHDR", ihdr),
                self._time_chunk,
                palette,
                _chunk(b"IDAT", b"".join(pieces)),
                _chunk(b"IEND", b""),
            )
        )

    def encode_array(self, arr: np.ndarray) -> bytes:
        """PNG bytes of a whole ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array (uint8, or uint16 grey)."""
        arr = np.asarray(arr)
        if arr.dtype not in (np.uint8, np.uint16) or arr.ndim not in (2, 3):
            raise ValueError(f"expected an (H, W[, C]) uint8 or uint16 array, got {arr.dtype} of shape {arr.shape}")
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        depth = 16 if arr.dtype == np.uint16 else 8
        return self.encode(arr.shape[0], arr.shape[1], channels, arr, depth=depth)


def png_bytes(
    arr: np.ndarray, *, encoding: str = "fast", palette: Sequence[int] | None = None, compress_level: int | None = None
) -> bytes:
    """Encode an array as PNG.

    Parameters
    ----------
    arr : numpy.ndarray
        ``(H, W)`` uint8 (grey, or palette indices with ``palette``) or uint16 (16-bit grey),
        ``(H, W, 3)`` uint8 RGB or ``(H, W, 4)`` uint8 RGBA.
    encoding : {"fast", "pillow"}
        See the module docstring.
    palette : sequence of int, optional
        Flat RGB palette (``[r0, g0, b0, r1, ...]``) of a palette image.
    compress_level : int, optional
        zlib level of the ``"pillow"`` encoding (default: Pillow's, 6). The ``"fast"`` one is always 1.
    """
    if encoding == "fast":
        if compress_level is not None:
            raise ValueError("the 'fast' encoding is always zlib level 1")
        return PngEncoder(palette=palette).encode_array(arr)
    if encoding != "pillow":
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    arr = np.asarray(arr)
    if palette is not None:
        im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr, dtype=np.uint8).tobytes())
        im.putpalette(list(palette))
    else:
        im = Image.fromarray(arr)  # uint8 -> L, uint16 -> I;16, (H, W, 3) -> RGB, (H, W, 4) -> RGBA
    buf = io.BytesIO()
    im.save(buf, format="PNG", **({} if compress_level is None else {"compress_level": compress_level}))
    return buf.getvalue()


def paeth_png(rgb: np.ndarray, level: int = 6) -> bytes:
    """An 8-bit RGB (H, W, 3) or RGBA (H, W, 4) PNG whose every row is Paeth-filtered (PNG filter
    type 4; Pillow chooses its own filters), deflated at zlib ``level``."""
    h, w, c = rgb.shape
    x = rgb.reshape(h, w * c).astype(np.int16)
    a = np.zeros_like(x)
    a[:, c:] = x[:, :-c]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    ul = np.zeros_like(x)
    ul[1:, c:] = x[:-1, :-c]
    p = a + b - ul
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - ul)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, ul))
    raw = np.empty((h, w * c + 1), np.uint8)
    raw[:, 0] = 4
    raw[:, 1:] = (x - pred) % 256
    ihdr = struct.pack(">IIBBBBB", w, h, 8, {3: RGB, 4: RGBA}[c], 0, 0, 0)
    idat = zlib.compress(raw.tobytes(), level)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def write_png(path: str | os.PathLike[str], arr: np.ndarray, **kwargs) -> Path:
    """Write :func:`png_bytes` of ``arr`` (same keyword arguments) to ``path``; returns the path."""
    path = Path(path)
    path.write_bytes(png_bytes(arr, **kwargs))
    return path

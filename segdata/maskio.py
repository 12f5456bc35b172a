"""Label-map input and output.

Decoding takes the fastest path that is installed. segdata's own: the IDAT stream inflated by
libdeflate (the ``deflate`` package; ~20x faster than zlib on label maps, whose long runs it
copies a word at a time), the rows unfiltered by the C extension ``segdata._png``; it covers
every non-interlaced 8- and 16-bit PNG, palette PNGs included (it returns the palette
*indices*, as PASCAL VOC needs). Otherwise libspng (``pyspng``) for grey, RGB and 16-bit PNGs,
and Pillow for the rest (palette PNGs always: pyspng expands them to colours). All give the same
arrays; tests compare them.

Encoding (segment maps) compresses with ISA-L (the ``isal`` package), 10x faster than zlib's
fastest level on label maps and smaller.

Arrays are ``(row, col)``: shape ``(H, W)`` for single-channel maps and ``(H, W, 3)`` for RGB.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError

try:  # optional accelerators: each path below falls back to the next when one is missing
    from . import _png
except ImportError:  # pragma: no cover - the C extension was not compiled
    _png = None
try:
    import deflate as _deflate
except ImportError:  # pragma: no cover
    _deflate = None
try:
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover
    _isal_zlib = None
try:
    import pyspng as _pyspng
except ImportError:  # pragma: no cover - exercised on machines without pyspng
    _pyspng = None

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types (IHDR byte 25)
GREY, RGB, PALETTE, GREY_ALPHA, RGBA = 0, 2, 3, 4, 6
_COLOR_NAMES = {GREY: "grey", RGB: "RGB", PALETTE: "palette", GREY_ALPHA: "grey+alpha", RGBA: "RGBA"}
_CHANNELS = {GREY: 1, RGB: 3, PALETTE: 1, GREY_ALPHA: 2, RGBA: 4}
_LITTLE_ENDIAN = np.little_endian


def png_header(data: bytes, path: str | Path = "<bytes>") -> tuple[int, int, int, int]:
    """Parse the IHDR chunk of a PNG.

    Returns
    -------
    (width, height, bit_depth, color_type) : tuple of int
        Sizes in pixels; ``color_type`` is one of 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA.

    Raises
    ------
    InputError
        If the data is not a PNG.
    """
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise InputError(path, "not a PNG file (bad signature or missing IHDR)")
    width, height, depth, ctype = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, ctype


#: the bit depths the PNG specification (table 11.1) allows for each colour type
_DEPTHS = {GREY: (1, 2, 4, 8, 16), RGB: (8, 16), PALETTE: (1, 2, 4, 8), GREY_ALPHA: (8, 16), RGBA: (8, 16)}


def _check_header(data: bytes, path: str | Path, w: int, h: int, depth: int, ctype: int, found: str) -> None:
    """Raise :class:`InputError` for an IHDR the PNG specification does not allow (a size of 0 or
    above 2^31 - 1, a bit depth the colour type does not have, an unknown compression, filter or
    interlace method): no decoder path is asked to make sense of it."""
    if not (0 < w < 2**31 and 0 < h < 2**31):
        raise InputError(path, f"corrupt PNG (header says {w}x{h} pixels)")
    if depth not in _DEPTHS.get(ctype, ()):
        raise InputError(path, f"corrupt PNG (header says {found}, which PNG does not define)")
    if data[26] != 0 or data[27] != 0 or data[28] > 1:
        raise InputError(
            path, f"corrupt PNG (compression {data[26]}, filter {data[27]}, interlace {data[28]} methods in the header)"
        )


def png_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of a PNG in pixels, read from its header without decoding."""
    with open(path, "rb") as f:
        head = f.read(33)
    w, h, _, _ = png_header(head, path)
    return h, w


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of any image file Pillow can open, read from its header only."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise
    except Exception as exc:  # Pillow raises many types for broken files
        raise InputError(path, f"cannot read image header: {exc}") from None
    return h, w


def decode_png(
    data: bytes, path: str | Path = "<bytes>", *, expect: str | None = None, view: bool = False
) -> np.ndarray:
    """Decode PNG bytes into an array.

    Parameters
    ----------
    data : bytes
        The file's content.
    path : str or Path
        Used in error messages only.
    expect : {"grey8", "grey16", "rgb8", "index8", None}
        When given, the PNG must be of that kind: 8-bit single channel (grey or palette indices),
        16-bit grey, 8-bit RGB, or 8-bit palette. Anything else raises :class:`InputError` naming
        what was found.
    view : bool
        Allow a single-channel image whose rows are all unfiltered (the files :func:`encode_png`
        writes) to come back as a strided view of the inflated rows: no unfiltering pass, no copy;
        16-bit as big-endian ``>u2``. For consumers that accept any row stride and byte order.

    Returns
    -------
    ndarray
        ``(H, W)`` uint8/uint16 for grey and palette images (palette images give the indices),
        ``(H, W, 3)`` uint8 for RGB, ``(H, W, 4)`` for RGBA.
    """
    w, h, depth, ctype = png_header(data, path)
    found = f"{depth}-bit {_COLOR_NAMES.get(ctype, f'colour type {ctype}')}"
    _check_header(data, path, w, h, depth, ctype, found)
    if expect is not None:
        ok = {
            "grey8": depth == 8 and ctype in (GREY, PALETTE),
            "grey16": depth == 16 and ctype == GREY,
            "rgb8": depth == 8 and ctype == RGB,
            "index8": depth == 8 and ctype == PALETTE,
        }[expect]
        if not ok:
            wanted = {
                "grey8": "8-bit single-channel",
                "grey16": "16-bit grey",
                "rgb8": "8-bit RGB",
                "index8": "8-bit palette",
            }[expect]
            raise InputError(path, f"expected a {wanted} PNG, found {found}")
    if _png is not None and depth in (8, 16) and ctype in _CHANNELS and data[28] == 0:
        return _decode_own(data, path, w, h, depth, ctype, view=view)
    if ctype == GREY_ALPHA and depth == 16:
        raise InputError(
            path,
            "16-bit grey+alpha PNGs are read only by segdata's compiled decoder (segdata._png), which is not built here",
        )
    try:
        if ctype in (PALETTE, GREY_ALPHA) or _pyspng is None or depth < 8:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                arr = np.asarray(im)
        else:
            arr = _pyspng.load(data)
            if ctype == RGB and arr.ndim == 3 and arr.shape[2] == 4:
                arr = np.ascontiguousarray(arr[:, :, :3])  # pyspng gives 16-bit RGB an alpha plane
            if ctype == GREY and arr.ndim == 3:
                # pyspng returns 16-bit grey as (H, W, 2) with a constant alpha plane; the copy
                # of the grey plane pays for itself in every later pass over the pixels
                arr = np.ascontiguousarray(arr[:, :, 0])
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"corrupt or truncated PNG ({exc})") from None
    if arr.shape[0] != h or arr.shape[1] != w:
        raise InputError(path, f"corrupt PNG: header says {w}x{h}, decoded {arr.shape[1]}x{arr.shape[0]}")
    if arr.dtype == np.uint16 and not arr.dtype.isnative:
        arr = arr.astype(np.uint16)
    return arr


def _chunks(data: bytes, path: str | Path):
    """Yield ``(type, payload)`` of each chunk after the signature, checking lengths and CRCs."""
    pos, n = 8, len(data)
    while pos < n:
        if pos + 12 > n:
            raise InputError(path, f"corrupt or truncated PNG (chunk header cut off at byte {pos})")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > n:
            raise InputError(
                path, f"corrupt or truncated PNG ({kind.decode('latin-1')} chunk at byte {pos} runs past the end)"
            )
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(data[pos + 4 : end]) != crc:
            raise InputError(path, f"corrupt PNG (CRC mismatch in the {kind.decode('latin-1')} chunk at byte {pos})")
        yield kind, data[pos + 8 : end]
        if kind == b"IEND":
            return
        pos = end + 4
    raise InputError(path, "corrupt or truncated PNG (no IEND chunk)")


def _idat_rows(data: bytes, path: str | Path, w: int, h: int, depth: int, ctype: int) -> bytes:
    """The inflated IDAT stream of a non-interlaced PNG: ``h`` rows of a filter byte and the row's
    bytes (libdeflate, or zlib), its size checked against the header."""
    if Image.MAX_IMAGE_PIXELS and w * h > 2 * Image.MAX_IMAGE_PIXELS:  # Pillow's decompression-bomb limit
        raise InputError(path, f"{w}x{h} pixels is more than {2 * Image.MAX_IMAGE_PIXELS} (a decompression bomb?)")
    rowbytes = w * _CHANNELS[ctype] * depth // 8
    size = h * (rowbytes + 1)
    parts, kinds = [], set()
    for kind, payload in _chunks(data, path):
        kinds.add(kind)
        if kind == b"IDAT":
            parts.append(payload)
    if ctype == PALETTE and b"PLTE" not in kinds:
        raise InputError(path, "corrupt PNG (palette image without a PLTE chunk)")
    stream = b"".join(parts)
    try:
        if _deflate is not None:
            raw = _deflate.zlib_decompress(stream, size)
        else:  # pragma: no cover - deflate is a dependency
            raw = zlib.decompressobj().decompress(stream, size)
    except Exception:
        raise InputError(path, "corrupt or truncated PNG (the image data does not inflate)") from None
    if len(raw) != size:
        raise InputError(
            path, f"corrupt or truncated PNG (image data is {len(raw)} bytes, {size} expected for {w}x{h})"
        )
    return raw


def _decode_own(
    data: bytes, path: str | Path, w: int, h: int, depth: int, ctype: int, *, view: bool = False
) -> np.ndarray:
    """segdata's decoder: libdeflate (or zlib) inflate + ``segdata._png.unfilter``.

    With ``view``, a single-channel image whose rows all have filter type 0 (the rows
    :func:`encode_png` writes) is returned without unfiltering: a strided view of the
    inflated rows (each row one filter byte longer than its pixels; 16-bit as big-endian ``>u2``).
    """
    channels = _CHANNELS[ctype]
    bpp = channels * depth // 8
    rowbytes = w * bpp
    raw = _idat_rows(data, path, w, h, depth, ctype)
    if view and channels == 1 and raw[:: rowbytes + 1].count(0) == h:  # every row's filter byte is 0
        return np.ndarray(
            (h, w), dtype=">u2" if depth == 16 else np.uint8, buffer=raw, offset=1, strides=(rowbytes + 1, depth // 8)
        )
    shape = (h, w) if channels == 1 else (h, w, channels)
    arr = np.empty(shape, dtype=np.uint8 if depth == 8 else np.uint16)
    try:
        _png.unfilter(raw, arr, h, rowbytes, bpp, depth == 16 and _LITTLE_ENDIAN)
    except ValueError as exc:
        raise InputError(path, f"corrupt PNG ({exc})") from None
    return arr


def decode_png_planes(
    data: bytes, path: str | Path = "<bytes>", *, dtype=np.float32, out: np.ndarray | None = None
) -> np.ndarray | None:
    """Decode an 8-bit grey, grey+alpha, RGB or RGBA PNG straight into ``(3, H, W)`` colour planes,
    the layout a network takes, in one pass (each row unfiltered and split while in cache).

    Parameters
    ----------
    data : bytes
        The file's content.
    path : str or Path
        Used in error messages only.
    dtype : numpy.uint8 or numpy.float32
        uint8: the samples 0..255. float32: each sample ``v`` as ``float32(v) * float32(1 / 255)``
        in ``[0, 1]`` (bit for bit what ``torch.from_numpy(planes).float().mul_(1 / 255)`` gives).
    out : ndarray, optional
        A C-contiguous ``(3, H, W)`` array of ``dtype`` to write into (a slot of a batch);
        returned.

    Returns
    -------
    ndarray or None
        The planes R, G, B (grey repeated in all three; alpha dropped). None when this PNG is not
        one of those kinds (palette, 16-bit, fewer than 8 bits, interlaced) or segdata's C
        extension is not built: decode it with :func:`decode_png` or Pillow instead.

    Raises
    ------
    InputError
        A corrupt or truncated file, naming ``path``; ``out`` of the wrong shape or type.
    """
    w, h, depth, ctype = png_header(data, path)
    _check_header(data, path, w, h, depth, ctype, f"{depth}-bit {_COLOR_NAMES.get(ctype, f'colour type {ctype}')}")
    if _png is None or depth != 8 or ctype not in (GREY, GREY_ALPHA, RGB, RGBA) or data[28] != 0:
        return None
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.float32):
        raise ValueError(f"dtype must be uint8 or float32, got {dtype}")
    if out is None:
        out = np.empty((3, h, w), dtype=dtype)
    elif out.shape != (3, h, w) or out.dtype != dtype or not out.flags.c_contiguous or not out.flags.writeable:
        raise InputError(path, f"image is {w}x{h} pixels; the output slot is {out.shape} {out.dtype}")
    raw = _idat_rows(data, path, w, h, depth, ctype)
    try:
        _png.unfilter_planes(raw, out, h, w, _CHANNELS[ctype], dtype == np.float32)
    except ValueError as exc:
        raise InputError(path, f"corrupt PNG ({exc})") from None
    return out


def read_png(path: str | Path, *, expect: str | None = None, view: bool = False) -> np.ndarray:
    """Read and decode a PNG file; see :func:`decode_png` for ``expect``, ``view`` and the result."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror})") from None
    return decode_png(data, path, expect=expect, view=view)


def segment_map_dtype(max_id: int) -> np.dtype:
    """The storage type of a segment-id map: uint8 when every id fits, uint16 otherwise."""
    if max_id < 256:
        return np.dtype(np.uint8)
    if max_id < 65536:
        return np.dtype(np.uint16)
    raise ValueError(f"segment id {max_id} does not fit in 16 bits (at most 65535 segments per image)")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(arr: np.ndarray) -> bytes:
    """Encode a single-channel uint8 or uint16 array as a grey PNG.

    A minimal encoder (IHDR, one IDAT, IEND, filter type 0 on every row): label maps are long
    constant runs, which compress well without PNG's predictive filters, and unfiltered rows
    decode at the speed of inflate. Compressed with ISA-L's level 1 (``isal``; 10x faster than
    zlib's level 1 on Cityscapes-size maps, files a sixth smaller), or zlib's level 1 where isal
    is missing. (zlib's run-length strategy gives smaller files but inflates 5x slower.)
    """
    if arr.ndim != 2 or arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a (H, W) uint8 or uint16 array, got {arr.dtype} of shape {arr.shape}")
    h, w = arr.shape
    depth = 8 if arr.dtype == np.uint8 else 16
    raw = np.empty((h, w * depth // 8 + 1), dtype=np.uint8)
    raw[:, 0] = 0  # filter type 0 on every row
    raw[:, 1:].view(">u2" if depth == 16 else np.uint8)[...] = arr
    ihdr = struct.pack(">IIBBBBB", w, h, depth, GREY, 0, 0, 0)
    compress = _isal_zlib.compress if _isal_zlib is not None else zlib.compress
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", compress(raw, 1)) + _chunk(b"IEND", b"")


def write_segment_map(path: str | Path, segmap: np.ndarray) -> None:
    """Write a segment-id map as a single-channel PNG, 8-bit where every id fits, else 16-bit.

    Parameters
    ----------
    path : str or Path
        Destination; parent directories must exist. Written atomically (temporary file + rename),
        so that an interrupted conversion never leaves a truncated mask behind.
    segmap : ndarray of int, shape (H, W)
        Segment ids, 0 = no annotation.
    """
    max_id = int(segmap.max()) if segmap.size else 0
    arr = segmap.astype(segment_map_dtype(max_id), copy=False)
    data = encode_png(arr)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_segment_map(path: str | Path, *, view: bool = False) -> np.ndarray:
    """Read a segment-id map written by :func:`write_segment_map` (uint8 or uint16, (H, W)).

    With ``view``, the map may come back as a strided view of the inflated PNG rows (see
    :func:`decode_png`): for a consumer that reads each pixel once and accepts any row stride and
    byte order, such as the consistency analysis' C kernel. Without, always a C-contiguous
    native-order array.
    """
    arr = read_png(path, view=view)
    if arr.ndim != 2:
        raise InputError(path, f"a segment map must have one channel, found shape {arr.shape}")
    return arr


def decode_ade_rgb(rgb: np.ndarray, path: str | Path = "<array>") -> tuple[np.ndarray, np.ndarray]:
    """Split an ADE20K ``_seg.png``/``_parts_N.png`` RGB array into class codes and instance values.

    The ADE20K encoding stores the class code as ``R // 10 * 256 + G`` (R is always a multiple
    of 10) and the instance in B. Code 0 is unlabeled.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)

    Returns
    -------
    codes : ndarray of int32, shape (H, W)
        Class codes, 0 = unlabeled.
    instances : ndarray of uint8, shape (H, W)
        The B channel.

    Raises
    ------
    InputError
        If the array is not 8-bit RGB or R is not a multiple of 10 somewhere (not ADE-encoded).
    """
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise InputError(path, f"expected an 8-bit RGB image, got {rgb.dtype} of shape {rgb.shape}")
    r = rgb[:, :, 0]
    r_hist = np.bincount(r.ravel(), minlength=256)
    bad = np.flatnonzero(r_hist[np.arange(256) % 10 != 0])
    if bad.size:
        bad_values = np.arange(256)[np.arange(256) % 10 != 0][bad[:5]]
        raise InputError(
            path,
            f"not ADE20K-encoded: red channel values {bad_values.tolist()} are not multiples of 10",
        )
    lut = (np.arange(256, dtype=np.int32) // 10) * 256
    codes = lut[r]
    codes += rgb[:, :, 1]
    return codes, np.ascontiguousarray(rgb[:, :, 2])

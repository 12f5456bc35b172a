"""segdata's PNG decoder (libdeflate inflate + the ``segdata._png`` unfiltering extension).

Every answer comes from elsewhere: the arrays a test encoder filtered row by row as the PNG
specification (section 9) writes them, Pillow's decoding of the same bytes, and the real sample
files decoded by Pillow.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from segdata import maskio
from segdata.errors import InputError
from tests.conftest import require

pytestmark = pytest.mark.skipif(maskio._png is None, reason="the segdata._png extension was not compiled")

# colour type -> channels; the test encoder writes (H, W[, C]) arrays of these kinds
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows: np.ndarray, filters: list[int], bpp: int) -> bytes:
    """Filter each row of ``rows`` (H, rowbytes) uint8 with its filter type, byte by byte as the
    PNG specification defines it (a = byte bpp to the left, b = above, c = above-left)."""
    out = bytearray()
    h, n = rows.shape
    for y in range(h):
        x = [int(v) for v in rows[y]]
        up = [int(v) for v in rows[y - 1]] if y else [0] * n
        f = filters[y % len(filters)]
        out.append(f)
        for i in range(n):
            a = x[i - bpp] if i >= bpp else 0
            c = up[i - bpp] if i >= bpp else 0
            b = up[i]
            pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: _paeth(a, b, c)}[f]
            out.append((x[i] - pred) % 256)
    return bytes(out)


def encode(arr: np.ndarray, ctype: int, filters: list[int], *, idat_parts: int = 1) -> bytes:
    """A PNG of ``arr`` with the given colour type and per-row filter types (cycled)."""
    depth = 16 if arr.dtype == np.uint16 else 8
    h, w = arr.shape[:2]
    channels = CHANNELS[ctype]
    rows = np.ascontiguousarray(arr.astype(">u2") if depth == 16 else arr).view(np.uint8).reshape(h, -1)
    z = zlib.compress(filter_rows(rows, filters, channels * depth // 8), 9)
    parts = [z[i * len(z) // idat_parts : (i + 1) * len(z) // idat_parts] for i in range(idat_parts)]
    body = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    if ctype == 3:
        body += _chunk(b"PLTE", bytes(range(256)) * 3)
    return maskio.PNG_SIGNATURE + body + b"".join(_chunk(b"IDAT", p) for p in parts) + _chunk(b"IEND", b"")


def region_map(h: int, w: int, channels: int, dtype, seed: int) -> np.ndarray:
    """Rectangles of constant value over a background, with a few noisy pixels: long runs (the
    decoder's copy path) broken by edges and residuals that take it off that path."""
    rng = np.random.default_rng(seed)
    high = 65536 if dtype == np.uint16 else 256
    shape = (h, w) if channels == 1 else (h, w, channels)
    arr = np.zeros(shape, dtype=dtype)
    for _ in range(12):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        arr[y0 : y0 + rng.integers(1, h), x0 : x0 + rng.integers(1, w)] = rng.integers(0, high, size=channels)
    noise = rng.random((h, w)) < 0.01
    arr[noise] = rng.integers(0, high, size=(int(noise.sum()),) + shape[2:])
    return arr


KINDS = [
    (0, np.uint8),
    (0, np.uint16),
    (2, np.uint8),
    (2, np.uint16),
    (3, np.uint8),
    (4, np.uint8),
    (4, np.uint16),
    (6, np.uint8),
    (6, np.uint16),
]


@pytest.mark.parametrize("ctype,dtype", KINDS)
@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [4, 2, 1, 3, 0]])
def test_every_filter_type_and_pixel_kind_decodes_to_the_encoded_array(ctype, dtype, filters):
    arr = region_map(23, 41, CHANNELS[ctype], dtype, seed=len(filters) * 10 + ctype)
    data = encode(arr, ctype, filters)
    out = maskio.decode_png(data)
    assert out.dtype == dtype and out.shape == arr.shape
    assert np.array_equal(out, arr)


def photograph(h: int, w: int, channels: int, dtype, seed: int) -> np.ndarray:
    """Smooth gradients with noise, as in a photograph: residuals are rarely zero, so the pixel-wise
    Paeth and Average paths run (a few rows repeat the row above, for the run check)."""
    rng = np.random.default_rng(seed)
    high = 65535 if dtype == np.uint16 else 255
    yy, xx = np.mgrid[0:h, 0:w]
    base = (yy * 3 + xx * 5)[..., None] * np.arange(1, channels + 1)
    arr = (base + rng.integers(0, 40, (h, w, channels))) % (high + 1)
    arr[h // 2] = arr[h // 2 - 1]
    arr = arr.astype(dtype)
    return arr[:, :, 0] if channels == 1 else arr


@pytest.mark.parametrize("ctype,dtype", KINDS)
@pytest.mark.parametrize("filters", [[3], [4], [4, 3, 1, 2, 0]])
def test_photographs_decode_to_the_encoded_array(ctype, dtype, filters):
    arr = photograph(17, 53, CHANNELS[ctype], dtype, seed=ctype)
    out = maskio.decode_png(encode(arr, ctype, filters))
    assert out.dtype == dtype and np.array_equal(out, arr)


@pytest.mark.parametrize("ctype,dtype", [(2, np.uint8), (6, np.uint8), (4, np.uint16)])
@pytest.mark.parametrize("h,w", [(1, 1), (2, 1), (2, 2), (3, 2), (2, 3), (5, 4), (4, 7)])
def test_paeth_rows_in_pairs_at_every_small_size(ctype, dtype, h, w):
    """Pixels of 3 and 4 bytes on consecutive Paeth rows are undone two rows at a time: the first
    and last pixels, an odd last row and one-pixel rows take the other paths."""
    arr = photograph(h, w, CHANNELS[ctype], dtype, seed=h * 10 + w)
    data = encode(arr, ctype, [4])
    assert np.array_equal(maskio.decode_png(data), arr)
    if dtype == np.uint8:
        assert np.array_equal(maskio.decode_png_planes(data, dtype=np.uint8), _rgb_planes(arr, ctype))


def _rgb_planes(arr: np.ndarray, ctype: int) -> np.ndarray:
    """(3, H, W) colour planes of an encoded array, written out per colour type."""
    if ctype == 0:
        rgb = np.stack([arr] * 3, axis=-1)
    elif ctype == 4:
        rgb = np.stack([arr[:, :, 0]] * 3, axis=-1)
    else:
        rgb = arr[:, :, :3]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


@pytest.mark.parametrize("ctype", [0, 2, 4, 6])
@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [4, 2, 1, 3, 0]])
@pytest.mark.parametrize("content", ["photograph", "regions"])
def test_planes_are_the_pixels_channel_first_as_bytes_or_floats(ctype, filters, content):
    make = photograph if content == "photograph" else region_map
    arr = make(19, 37, CHANNELS[ctype], np.uint8, seed=len(filters) + ctype)
    data = encode(arr, ctype, filters)
    expected = _rgb_planes(arr, ctype)
    planes = maskio.decode_png_planes(data, dtype=np.uint8)
    assert planes.dtype == np.uint8 and np.array_equal(planes, expected)
    floats = maskio.decode_png_planes(data, dtype=np.float32)
    # the float32 product v * float32(1 / 255), computed here by numpy
    np.testing.assert_array_equal(floats, expected.astype(np.float32) * np.float32(1 / 255))
    slot = np.zeros((2, 3, 19, 37), np.float32)
    assert maskio.decode_png_planes(data, dtype=np.float32, out=slot[1]) is not None
    np.testing.assert_array_equal(slot[1], floats)
    assert not slot[0].any()


def test_planes_refuse_a_slot_of_another_size_and_leave_other_kinds_to_other_decoders():
    arr = photograph(6, 9, 3, np.uint8, seed=0)
    data = encode(arr, 2, [4])
    with pytest.raises(InputError, match="9x6 pixels; the output slot"):
        maskio.decode_png_planes(data, "x.png", dtype=np.uint8, out=np.zeros((3, 6, 8), np.uint8))
    assert maskio.decode_png_planes(encode(photograph(6, 9, 3, np.uint16, seed=0), 2, [4])) is None
    assert maskio.decode_png_planes(encode(region_map(6, 9, 1, np.uint8, seed=0), 3, [0])) is None
    broken = data.replace(b"IDAT", b"IDAX")
    with pytest.raises(InputError, match="x.png"):
        maskio.decode_png_planes(broken, "x.png")


PILLOW_MODES = {
    (0, np.uint8): "L",
    (0, np.uint16): "I;16",
    (2, np.uint8): "RGB",
    (3, np.uint8): "P",
    (4, np.uint8): "LA",
    (6, np.uint8): "RGBA",
}  # Pillow writes no 16-bit colour PNG


@pytest.mark.parametrize("ctype,dtype", list(PILLOW_MODES))
def test_agrees_with_pillow_on_pillow_encoded_files(ctype, dtype):
    """Pillow writes its own filter choices; both decoders must return the same array."""
    arr = region_map(64, 97, CHANNELS[ctype], dtype, seed=ctype)
    mode = PILLOW_MODES[(ctype, dtype)]
    buf = io.BytesIO()
    im = Image.fromarray(arr, mode="P") if mode == "P" else Image.fromarray(arr)
    assert im.mode == mode
    im.save(buf, format="PNG")
    data = buf.getvalue()
    ref = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(maskio.decode_png(data), ref)


def test_split_idat_chunks_are_joined():
    arr = region_map(30, 30, 1, np.uint16, seed=3)
    assert np.array_equal(maskio.decode_png(encode(arr, 0, [4, 2], idat_parts=4)), arr)


def test_same_arrays_as_the_fallback_decoders(monkeypatch):
    """With the extension switched off (pyspng / Pillow decode), the arrays are identical."""
    kinds = [k for k in KINDS if k != (4, np.uint16)]  # no fallback reads 16-bit grey+alpha
    datas = [encode(region_map(40, 50, CHANNELS[c], d, seed=c), c, [4, 2, 1]) for c, d in kinds]
    own = [maskio.decode_png(d) for d in datas]
    monkeypatch.setattr(maskio, "_png", None)
    for data, mine in zip(datas, own):
        theirs = maskio.decode_png(data)
        assert theirs.dtype == mine.dtype and np.array_equal(theirs, mine)


def _corrupt(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1 :]


def test_bad_filter_type_is_named_with_its_row(tmp_path):
    arr = np.zeros((4, 5), dtype=np.uint8)
    raw = bytearray(filter_rows(arr, [0], 1))
    raw[2 * 6] = 7  # row 2's filter byte
    data = (
        maskio.PNG_SIGNATURE
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 4, 8, 0, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(bytes(raw)))
        + _chunk(b"IEND", b"")
    )
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"bad\.png.*row 2 has filter type 7"):
        maskio.read_png(path)


def test_corrupt_and_truncated_files_are_named(tmp_path):
    data = encode(region_map(20, 20, 1, np.uint8, seed=1), 0, [4])
    idat = data.index(b"IDAT")
    cases = {
        "crc.png": (_corrupt(data, idat + 6, data[idat + 6] ^ 0xFF), "CRC mismatch in the IDAT chunk"),
        "cut.png": (data[: idat + 10], "truncated PNG"),
        "noend.png": (data[: data.index(b"IEND") - 4], "no IEND chunk"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError, match=message) as err:
            maskio.read_png(path)
        assert name in str(err.value)


def test_short_image_data_is_named(tmp_path):
    arr = np.zeros((4, 5), dtype=np.uint8)
    raw = filter_rows(arr, [0], 1)[:-6]  # one row missing, stream itself intact
    data = (
        maskio.PNG_SIGNATURE
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 4, 8, 0, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )
    with pytest.raises(InputError, match="image data is 18 bytes, 24 expected for 5x4"):
        maskio.decode_png(data, "short.png")


def test_palette_without_plte_is_refused():
    data = encode(np.zeros((3, 3), dtype=np.uint8), 3, [0])
    plte = data.index(b"PLTE") - 4
    data = data[:plte] + data[plte + 12 + 768 :]
    with pytest.raises(InputError, match="without a PLTE chunk"):
        maskio.decode_png(data)


def test_every_real_sample_png_decodes_as_pillow_decodes_it(samples):
    """All 182 PNGs of the shared samples (Cityscapes 8/16-bit, ADE20K RGB, COCO panoptic RGB, ...)."""
    paths = sorted(require(samples).rglob("*.png"))
    assert len(paths) >= 100
    for path in paths:
        with Image.open(path) as im:
            ref = np.asarray(im)
        out = maskio.read_png(path)
        assert out.shape == ref.shape and np.array_equal(out, ref.astype(out.dtype)), path


def test_a_decompression_bomb_is_refused_before_inflating():
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = maskio.PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")
    with pytest.raises(InputError, match="100000x100000 pixels is more than"):
        maskio.decode_png(data, "bomb.png")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_segment_maps_read_as_views_of_the_inflated_rows(tmp_path, dtype):
    """read_segment_map(view=True) on a file segdata wrote (filter type 0 on every row): a
    strided view of the inflated rows, the same values; on a file with other filters
    (Pillow's), an ordinary decoded array."""
    arr = region_map(37, 70, 1, dtype, seed=3)
    path = tmp_path / "mask.png"
    path.write_bytes(maskio.encode_png(arr))
    view = maskio.read_segment_map(path, view=True)
    assert np.array_equal(view, arr) and view.shape == arr.shape
    if maskio._png is not None:
        assert not view.flags.c_contiguous
        assert view.strides[0] == 70 * arr.itemsize + 1
    filtered = tmp_path / "filtered.png"
    filtered.write_bytes(encode(arr, 0, [4, 2, 1]))
    out = maskio.read_segment_map(filtered, view=True)
    assert np.array_equal(out, arr) and out.flags.c_contiguous
    with pytest.raises(InputError, match="missing.png.*file not found"):
        maskio.read_segment_map(tmp_path / "missing.png", view=True)


@pytest.mark.parametrize(
    "field, offset, value, problem",
    [
        ("width", 0, 0, "header says 0x5 pixels"),
        ("height", 4, 0, "header says 7x0 pixels"),
        ("depth", 8, 4, "header says 4-bit RGB"),  # not a depth RGB has
        ("colour type", 9, 3, "header says 16-bit palette"),  # palettes have at most 8 bits
        ("compression", 10, 1, "compression 1, filter 0, interlace 0"),
        ("filter method", 11, 1, "compression 0, filter 1, interlace 0"),
        ("interlace", 12, 2, "compression 0, filter 0, interlace 2"),
    ],
)
def test_an_ihdr_png_does_not_define_is_an_input_error(field, offset, value, problem):
    # a valid 16-bit RGB PNG of 7x5 pixels, one IHDR field set to what the specification forbids
    ihdr = bytearray(struct.pack(">IIBBBBB", 7, 5, 16, 2, 0, 0, 0))
    ihdr[offset : offset + (4 if offset < 8 else 1)] = value.to_bytes(4 if offset < 8 else 1, "big")
    idat = zlib.compress(bytes(5 * (1 + 7 * 6)))  # 5 rows of filter type 0 and 7 x 6 bytes
    data = maskio.PNG_SIGNATURE + _chunk(b"IHDR", bytes(ihdr)) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    with pytest.raises(InputError, match=problem) as info:
        maskio.decode_png(data, "fuzz.png")
    assert info.value.path == "fuzz.png"


def test_unfilter_refuses_sizes_whose_product_overflows():
    # 4 rows of 2**62 + 1 bytes: 4 * (2**62 + 2) wraps to 8 and 4 * (2**62 + 1) to 4 in 64 bits, the
    # lengths of the buffers given; the extension must see the sizes are impossible, not allocate
    with pytest.raises(ValueError, match="too large"):
        maskio._png.unfilter(bytes(8), bytearray(4), 4, 2**62 + 1, 1, False)

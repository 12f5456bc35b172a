"""The synthetic generators' shared PNG writer: files decoded here independently (Pillow, zlib), never through
segdata's decoder."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from segdata.synthetic.pngs import PngEncoder, png_bytes, write_png


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        kind, payload = data[i + 4 : i + 8], data[i + 8 : i + 8 + n]
        assert struct.unpack(">I", data[i + 8 + n : i + 12 + n])[0] == zlib.crc32(kind + payload)
        out.append((kind, payload))
        i += 12 + n
    return out


def decode(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.mode, np.asarray(im)


def raw_rows(data: bytes) -> bytes:
    return zlib.decompress(b"".join(p for k, p in chunks(data) if k == b"IDAT"))


RNG = np.random.default_rng(0)
ARRAYS = {
    "L": RNG.integers(0, 256, (7, 11), dtype=np.uint8),
    "I;16": RNG.integers(0, 65536, (7, 11), dtype=np.uint16),
    "RGB": RNG.integers(0, 256, (7, 11, 3), dtype=np.uint8),
    "RGBA": RNG.integers(0, 256, (7, 11, 4), dtype=np.uint8),
}


@pytest.mark.parametrize("mode", sorted(ARRAYS))
def test_fast_encoding_round_trips_unfiltered(mode):
    arr = ARRAYS[mode]
    data = png_bytes(arr)
    got_mode, got = decode(data)
    assert got_mode == mode and np.array_equal(got, arr)
    row_bytes = 11 * {"L": 1, "I;16": 2, "RGB": 3, "RGBA": 4}[mode] + 1
    raw = raw_rows(data)
    assert len(raw) == 7 * row_bytes and raw[::row_bytes] == bytes(7)  # filter type 0 on every row
    assert [k for k, _ in chunks(data)] == [b"IHDR", b"IDAT", b"IEND"]


def test_palette_and_timestamp_chunks():
    palette = [v for i in range(4) for v in (i, 2 * i, 3 * i)]
    arr = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)
    data = PngEncoder((2016, 7, 29, 5, 53, 20), palette=palette).encode_array(arr)
    kinds = chunks(data)
    assert [k for k, _ in kinds] == [b"IHDR", b"tIME", b"PLTE", b"IDAT", b"IEND"]
    assert kinds[0][1][8:10] == b"\x08\x03"  # 8-bit palette
    assert kinds[1][1] == bytes([2016 >> 8, 2016 & 0xFF, 7, 29, 5, 53, 20])
    assert kinds[2][1] == bytes(palette)
    mode, got = decode(data)
    assert mode == "P" and np.array_equal(got, arr)


def test_band_is_placed_inside_zeros():
    block = np.arange(1, 13, dtype=np.uint8).reshape(3, 4)
    enc = PngEncoder()
    data = enc.encode(600, 9, 1, block, row0=300, col0=5)  # more zero rows than one cached block (256)
    expected = np.zeros((600, 9), np.uint8)
    expected[300:303, 5:9] = block
    assert np.array_equal(decode(data)[1], expected)
    planes = [block, block + 100, block + 200]
    rgb = decode(enc.encode(5, 6, 3, planes, row0=1, col0=2))[1]
    assert rgb.shape == (5, 6, 3) and int(rgb.sum()) == 3 * int(block.sum()) + 300 * 12
    assert np.array_equal(rgb[1:4, 2:6, 2], block + 200) and not rgb[0].any() and not rgb[4].any()
    assert not decode(enc.encode(4, 4, 1, None))[1].any()


def test_zero_row_cache_does_not_change_bytes():
    block = np.full((2, 3), 7, np.uint8)
    fresh = PngEncoder().encode(50, 8, 1, block, row0=20, col0=1)
    used = PngEncoder()
    used._MAX_CACHED = 3  # the cache is cleared while encoding: same bytes
    for width in range(8, 20):
        used.encode(50, width, 1, block, row0=20)
    assert used.encode(50, 8, 1, block, row0=20, col0=1) == fresh
    assert len(used._zero_blocks) <= 3


def test_pillow_encoding_is_pillows_default(tmp_path):
    for arr in ARRAYS.values():
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        assert png_bytes(arr, encoding="pillow") == buf.getvalue()
    arr = ARRAYS["RGB"]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    assert write_png(tmp_path / "a.png", arr, encoding="pillow", compress_level=1).read_bytes() == buf.getvalue()


def test_bad_arguments():
    with pytest.raises(ValueError):
        png_bytes(ARRAYS["L"], encoding="jpeg")
    with pytest.raises(ValueError):
        png_bytes(ARRAYS["L"], compress_level=6)
    with pytest.raises(ValueError):
        png_bytes(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError):
        PngEncoder(palette=[1, 2])

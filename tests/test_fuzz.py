"""Fuzzing the three readers of untrusted bytes (issue 11, "a fuzz test that stays"): the PNG
decoder (``segdata.maskio`` and the C unfiltering in ``segdata._png``), the streaming JSON reader
(``segdata.jsonstream``) and the segment-table reader (``segdata.open(...).segments``).

Each property mutates a valid input (truncations, bit flips, wrong chunk lengths; for PNG also
IHDR fields, with the CRCs fixed afterwards so that the decoder's deeper paths are reached) and
asserts that the reader either gives the right answer or raises segdata's error naming the file:
never another exception. A crash of the interpreter (the C extension included) kills pytest
loudly, and faulthandler prints where.

What "the right answer" is comes from elsewhere: the array the PNG was encoded from where the
mutation cannot have changed it (CRCs left as they are), Pillow's decoding of the same bytes
otherwise, ``json.loads`` of the same bytes for the JSON reader.

Budget: ``max_examples`` per property is 200 in CI (the whole file in a few seconds); a longer
run by hand: ``SEGDATA_FUZZ_EXAMPLES=20000 python -m pytest -q tests/test_fuzz.py``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

import segdata
from segdata import maskio
from segdata.errors import FormatError, InputError
from segdata.jsonstream import JsonStream
from segdata.maskio import _png

EXAMPLES = int(os.environ.get("SEGDATA_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
WORK = Path(tempfile.mkdtemp(prefix="segdata-fuzz-"))


# PNG ------------------------------------------------------------------------------------------


def _pillow_png(arr: np.ndarray, palette: bool = False, **params) -> bytes:
    out = io.BytesIO()
    if palette:
        im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
        im.putpalette(list(range(256)) * 3)
    else:
        im = Image.fromarray(arr)
    im.save(out, format="PNG", **params)
    return out.getvalue()


def _label_map(h: int, w: int, top: int, seed: int) -> np.ndarray:
    """Runs of ids, as label maps have, with some noise so that every PNG filter type occurs."""
    rng = np.random.default_rng(seed)
    arr = np.repeat(rng.integers(0, top, size=(h, 1 + w // 4)), 4, axis=1)[:, :w]
    arr[rng.random((h, w)) < 0.1] = rng.integers(0, top)
    return arr


def _seeds() -> list[tuple[bytes, np.ndarray]]:
    grey8 = _label_map(9, 13, 200, 1).astype(np.uint8)
    grey16 = _label_map(7, 11, 60000, 2).astype(np.uint16)
    rgb = np.stack([_label_map(6, 10, 255, s) for s in (3, 4, 5)], axis=2).astype(np.uint8)
    rgba = np.stack([_label_map(5, 7, 255, s) for s in (6, 7, 8, 9)], axis=2).astype(np.uint8)
    la = np.stack([_label_map(5, 6, 255, s) for s in (10, 11)], axis=2).astype(np.uint8)
    index = _label_map(8, 9, 30, 12).astype(np.uint8)
    return [
        (maskio.encode_png(grey8), grey8),
        (maskio.encode_png(grey16), grey16),
        (_pillow_png(grey8), grey8),  # Pillow filters its rows
        (_pillow_png(rgb), rgb),
        (_pillow_png(rgba), rgba),
        (_pillow_png(la), la),
        (_pillow_png(index, palette=True), index),
    ]


SEEDS = _seeds()


def _split_chunks(data: bytes) -> list[list]:
    pos, out = 8, []
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append([data[pos + 4 : pos + 8], bytearray(data[pos + 8 : pos + 8 + length])])
        pos += 12 + length
    return out


def _join_chunks(chunks, lengths: dict[int, int]) -> bytes:
    parts = [maskio.PNG_SIGNATURE]
    for i, (kind, payload) in enumerate(chunks):
        length = lengths.get(i, len(payload))
        parts.append(struct.pack(">I", length & 0xFFFFFFFF) + kind + payload)
        parts.append(struct.pack(">I", zlib.crc32(kind + payload)))
    return b"".join(parts)


def _fix_crcs(data: bytes) -> bytes:
    """Recompute the CRC of every chunk whose frame still lies inside the data."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, pos)
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into(">I", out, end, zlib.crc32(bytes(out[pos + 4 : end])))
        pos = end + 4
    return bytes(out)


# (field, struct format, offset in the IHDR payload)
IHDR_FIELDS = {"width": (">I", 0), "height": (">I", 4), "depth": (">B", 8), "ctype": (">B", 9), "interlace": (">B", 12)}
IHDR_FIELDS.update({"compression": (">B", 10), "filter": (">B", 11)})
IHDR_VALUES = {
    ">I": st.one_of(st.sampled_from([0, 1, 2, 3, 7, 8, 9, 13, 2**31 - 1, 2**32 - 1]), st.integers(0, 2**32 - 1)),
    ">B": st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 255]), st.integers(0, 255)),
}


def _unfilter_reference(raw: bytes, h: int, rowbytes: int, bpp: int) -> bytes | None:
    """PNG unfiltering as the specification (section 9.2) writes it, byte by byte; None on a
    filter type above 4."""
    out = bytearray()
    prev = bytearray(rowbytes)
    for y in range(h):
        kind, row = raw[y * (rowbytes + 1)], raw[y * (rowbytes + 1) + 1 : (y + 1) * (rowbytes + 1)]
        if kind > 4:
            return None
        cur = bytearray(rowbytes)
        for i in range(rowbytes):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            cur[i] = (row[i] + pred) & 0xFF
        out += cur
        prev = cur
    return bytes(out)


@st.composite
def synthetic_png(draw):
    """A PNG of any kind the decoder takes (any size, depth, colour type, filter bytes), made here
    with its expected array: reaches the unfiltering in C with every shape of row."""
    ctype = draw(st.sampled_from([maskio.GREY, maskio.RGB, maskio.PALETTE, maskio.GREY_ALPHA, maskio.RGBA]))
    depth = 8 if ctype == maskio.PALETTE else draw(st.sampled_from([8, 16]))
    w, h = draw(st.integers(1, 24)), draw(st.integers(1, 12))
    channels = maskio._CHANNELS[ctype]
    bpp = channels * depth // 8
    rowbytes = w * bpp
    runs = draw(st.booleans())  # long runs of zeros and repeated rows: the fast paths of Paeth
    raw = bytearray()
    for _ in range(h):
        kind = draw(st.one_of(st.integers(0, 4), st.integers(0, 255))) if draw(st.integers(0, 20)) == 0 else None
        kind = draw(st.integers(0, 4)) if kind is None else kind
        if runs:
            row = bytes(rowbytes) if draw(st.booleans()) else draw(st.binary(min_size=rowbytes, max_size=rowbytes))
        else:
            row = draw(st.binary(min_size=rowbytes, max_size=rowbytes))
        raw += bytes([kind]) + row
    pixels = _unfilter_reference(bytes(raw), h, rowbytes, bpp)
    expected = None
    if pixels is not None:
        dtype = ">u2" if depth == 16 else np.uint8
        shape = (h, w) if channels == 1 else (h, w, channels)
        expected = np.frombuffer(pixels, dtype=dtype).reshape(shape).astype(dtype.lstrip(">") if depth == 16 else dtype)
    chunks = [[b"IHDR", bytearray(struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))]]
    if ctype == maskio.PALETTE:
        chunks.append([b"PLTE", bytearray(bytes(range(256)) * 3)])
    stream = zlib.compress(bytes(raw), draw(st.integers(0, 9)))
    cut = draw(st.integers(1, 3))  # IDAT split into chunks, as encoders do
    step = max(1, len(stream) // cut)
    chunks += [[b"IDAT", bytearray(stream[i : i + step])] for i in range(0, len(stream), step)]
    chunks.append([b"IEND", bytearray()])
    return _join_chunks(chunks, {}), expected


def _check_synthetic(data: bytes, expected: np.ndarray | None) -> None:
    path = WORK / "synthetic.png"
    try:
        arr = maskio.decode_png(data, path)
    except InputError as exc:
        assert str(path) in str(exc)
        assert expected is None, f"a valid PNG was refused: {exc}"
        event("synthetic: InputError")
        return
    assert expected is not None, "a filter type above 4 was accepted"
    assert arr.dtype == expected.dtype
    np.testing.assert_array_equal(arr, expected)
    if arr.ndim == 2:
        np.testing.assert_array_equal(maskio.decode_png(data, path, view=True), expected)
    event("synthetic: decoded")


@FUZZ
@given(synthetic_png())
def test_png_decoder_matches_the_specification_on_any_image(case):
    _check_synthetic(*case)


@FUZZ
@given(
    st.integers(0, 6),
    st.integers(0, 20),
    st.integers(1, 24),
    st.booleans(),
    st.integers(-2, 2),
    st.integers(-2, 2),
    st.binary(min_size=0, max_size=200),
)
@example(4, 2**62 + 1, 1, False, 0, 0, b"")  # sizes whose products wrap around in 64 bits (_png.c)
def test_unfilter_takes_any_arguments(height, rowbytes, bpp, swap, src_extra, dst_extra, seed):
    """segdata._png.unfilter called directly, with buffers of the right size or not and any bpp
    (above rowbytes too): the pixels the reference gives, or ValueError; never a crash."""
    if _png is None:
        pytest.skip("the segdata._png extension was not compiled")
    big = rowbytes > 2**32
    n_src = (0 if big else height * (rowbytes + 1)) + src_extra
    n_dst = (0 if big else height * rowbytes) + dst_extra
    if big:
        n_src, n_dst = 8, 4
    src = bytes((seed * (n_src // max(1, len(seed)) + 1))[: max(0, n_src)]) if seed else bytes(max(0, n_src))
    if not big:
        src = bytes(b % 5 if i % (rowbytes + 1) == 0 else b for i, b in enumerate(src))
    dst = bytearray(max(0, n_dst))
    fits = not big and len(src) == height * (rowbytes + 1) and len(dst) == height * rowbytes
    try:
        _png.unfilter(src, dst, height, rowbytes, bpp, swap)
    except ValueError:
        assert not fits, "refused buffers of the right size"
        return
    assert fits, "took buffers of the wrong size"
    expected = _unfilter_reference(src, height, rowbytes, bpp)
    if swap:  # 16-bit samples to little-endian, pair by pair within each row
        rows = [expected[y * rowbytes : (y + 1) * rowbytes] for y in range(height)]
        expected = b"".join(bytes(r[i ^ 1] if (i ^ 1) < len(r) else r[i] for i in range(len(r))) for r in rows)
    assert bytes(dst) == expected


@st.composite
def mutated_png(draw):
    """(bytes, the original array, whether the mutation may have changed what the bytes mean).

    One kind of damage at a time, mostly, so that each reaches its path: IHDR fields, payload
    bytes (CRCs fixed), a wrong chunk length, bit flips (CRCs as they are), a truncation."""
    data, original = draw(st.sampled_from(SEEDS))
    chunks = _split_chunks(data)
    changed = False
    lengths: dict[int, int] = {}
    kinds = draw(st.sets(st.sampled_from(["ihdr", "payload", "length", "flip", "truncate"]), min_size=1, max_size=2))
    if "ihdr" in kinds:
        for _ in range(draw(st.integers(1, 2))):
            field = draw(st.sampled_from(sorted(IHDR_FIELDS)))
            fmt, offset = IHDR_FIELDS[field]
            struct.pack_into(fmt, chunks[0][1], offset, draw(IHDR_VALUES[fmt]))
        changed = True
    if "payload" in kinds:  # a byte of a payload (IDAT, PLTE) changed, CRC fixed
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(1, len(chunks) - 1))
            if chunks[i][1]:
                j = draw(st.integers(0, len(chunks[i][1]) - 1))
                chunks[i][1][j] = draw(st.integers(0, 255))
        changed = True
    if "length" in kinds:
        lengths[draw(st.integers(0, len(chunks) - 1))] = draw(st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)))
    out = bytearray(_join_chunks(chunks, lengths))
    if "flip" in kinds:
        for _ in range(draw(st.integers(1, 3))):
            pos = draw(st.integers(8, len(out) - 1))
            out[pos] ^= 1 << draw(st.integers(0, 7))
        if draw(st.booleans()):
            out = bytearray(_fix_crcs(bytes(out)))
            changed = True
    if "truncate" in kinds:
        out = out[: draw(st.integers(0, len(out) - 1))]
    return bytes(out), original, changed


def _with_ihdr(seed: int, **fields) -> tuple[bytes, np.ndarray, bool]:
    """A seed PNG with IHDR fields set (CRC fixed): the regression examples."""
    data, original = SEEDS[seed]
    chunks = _split_chunks(data)
    for field, value in fields.items():
        fmt, offset = IHDR_FIELDS[field]
        struct.pack_into(fmt, chunks[0][1], offset, value)
    return _join_chunks(chunks, {}), original, True


def _pillow_decode(data: bytes):
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im)
    except Exception:
        return None


def _check_png(data: bytes, original: np.ndarray, changed: bool) -> None:
    path = WORK / "fuzz.png"
    try:
        arr = maskio.decode_png(data, path)
    except InputError as exc:
        assert str(path) in str(exc)
        event("png: " + " ".join(re.sub(r"\d+", "N", exc.problem.replace("(", "")).split()[:5]))
        return
    event("png: decoded")
    w, h, depth, ctype = maskio.png_header(data)
    assert arr.shape[:2] == (h, w)
    if not changed:
        np.testing.assert_array_equal(arr, original)
    if depth == 8 or (depth == 16 and ctype == maskio.GREY):
        oracle = _pillow_decode(data)
        if oracle is not None:
            np.testing.assert_array_equal(arr, oracle.astype(arr.dtype) if oracle.dtype != arr.dtype else oracle)
    if arr.ndim == 2:
        view = maskio.decode_png(data, path, view=True)
        np.testing.assert_array_equal(view, arr)
        path.write_bytes(data)
        np.testing.assert_array_equal(maskio.read_segment_map(path), arr)


@FUZZ
@given(mutated_png())
@example(_with_ihdr(0, height=0))  # view=True on 0 rows: numpy's ValueError (maskio)
@example(_with_ihdr(0, width=0))
def test_png_decoder_gives_the_array_or_an_input_error(case):
    _check_png(*case)


# JSON -------------------------------------------------------------------------------------------

JSON_SEED = json.dumps(
    {
        "info": {"description": "fuzz \u00e9t\u00e9", "year": 2017},
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(4)],
        "annotations": [
            {"id": 10 + i, "image_id": i % 4, "category_id": 1 + i % 3, "segmentation": [[1.5, 2.0, 3e2, -4]]}
            for i in range(6)
        ],
        "categories": [{"id": 1, "name": "caf\u00e9"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
    },
    ensure_ascii=False,
).encode("utf-8")


@st.composite
def mutated_json(draw):
    data = bytearray(draw(st.sampled_from([JSON_SEED, b"\xef\xbb\xbf" + JSON_SEED])))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "byte", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and data:
            data[pos] = draw(st.sampled_from(b'{}[],:"\\0-e.9 \xc3\xff\x00'))
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from([b",", b"[", b"]", b'"', b"1", b"\\", b"\xe9", b'"x":1,']))
        elif data:
            del data[pos]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data), draw(st.sampled_from([1, 2, 3, 7, 64, 1 << 16]))


def _oracle(data: bytes):
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _check_json(data: bytes, chunk: int) -> None:
    path = WORK / "fuzz.json"
    path.write_bytes(data)
    seen: dict[str, list] = {"images": [], "annotations": []}
    arrays = {key: (lambda i, v, s, e, key=key: seen[key].append(v), True) for key in seen}
    try:
        with JsonStream(path, chunk_size=chunk) as js:
            top = js.walk(arrays)
    except InputError as exc:
        assert str(path) in str(exc)
        event("json: InputError")
        return
    event("json: parsed")
    expected = _oracle(data)
    keys = top.pop("__keys__")
    if any(not k.isascii() for k in keys):  # keys are read as Latin-1 (not exact): compare the rest
        return
    assert expected is not None, "the stream reader accepted what json.loads rejects"
    assert isinstance(expected, dict) and list(expected) == keys
    for key, value in expected.items():
        assert (seen[key] if key in seen else top[key]) == value


@FUZZ
@given(mutated_json())
@example((JSON_SEED, 7))
def test_json_stream_gives_json_loads_or_an_input_error(case):
    _check_json(*case)


# segment table --------------------------------------------------------------------------------


def _dataset() -> Path:
    target = WORK / "table"
    if not target.exists():
        from segdata.convert import convert
        from segdata.converters import ade20k
        from tests.fixtures.ade20k import small_2021_dataset

        src = small_2021_dataset(WORK / "src")
        convert(ade20k, src, WORK / "clean", workers=1)
        shutil.copytree(WORK / "clean", target)
    return target


@st.composite
def table_damage(draw) -> list[tuple]:
    """Damages to apply to segments.parquet, as data (so that a regression is an ``@example``):
    bit flips, a 4-byte length or offset overwritten, the footer's length, a truncation."""
    size = len((WORK / "clean" / "segments.parquet").read_bytes())
    ops: list[tuple] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "int32", "footer"]))
        if kind == "flip":
            ops.append(("flip", draw(st.integers(0, size - 1)), draw(st.integers(0, 7))))
        elif kind == "int32":  # a length or an offset somewhere
            ops.append(("int32", draw(st.integers(0, size - 4)), draw(st.integers(0, 2**32 - 1))))
        else:  # the footer's length (the 4 bytes before the closing magic)
            ops.append(("int32", size - 8, draw(st.integers(0, 2**32 - 1))))
    if draw(st.booleans()):
        ops.append(("truncate", draw(st.integers(0, size))))
    return ops


def _damage(data: bytes, ops: list[tuple]) -> bytes:
    out = bytearray(data)
    for op, *args in ops:
        if op == "flip" and args[0] < len(out):
            out[args[0]] ^= 1 << args[1]
        elif op == "int32" and args[0] + 4 <= len(out):
            struct.pack_into("<I", out, args[0], args[1])
        elif op == "truncate":
            del out[args[0] :]
        elif op == "replace":
            out = bytearray(bytes(out).replace(args[0], args[1]))
    return bytes(out)


def _check_table(ops: list[tuple]) -> None:
    path = _dataset()
    (path / "segments.parquet").write_bytes(_damage((WORK / "clean" / "segments.parquet").read_bytes(), ops))
    readers = (
        lambda ds: ds.segments,
        lambda ds: ds.segment_table(["image_id", "segment_id", "class_id"], layer="objects"),
        lambda ds: ds.read_segments(["image_id", "area"]),
    )
    for read in readers:
        try:
            read(segdata.open(path))
        except FormatError as exc:
            assert "segments.parquet" in str(exc)
            event("table: FormatError")
        else:
            event("table: read")


@pytest.fixture(scope="module", autouse=True)
def _work():
    _dataset()
    yield
    shutil.rmtree(WORK, ignore_errors=True)


@FUZZ
@given(table_damage())
@example([("replace", b"raw_name", b"\x80aw_name")])  # a name not UTF-8: to_pandas' UnicodeDecodeError
def test_segment_table_reads_or_raises_a_format_error(ops):
    _check_table(ops)

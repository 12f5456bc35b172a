"""Mask I/O: the PNG encoder is read back identically by Pillow (an independent decoder)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from segdata.errors import InputError
from segdata.maskio import decode_ade_rgb, encode_png, read_png, segment_map_dtype, write_segment_map


@pytest.mark.parametrize("dtype,high", [(np.uint8, 255), (np.uint16, 65535)])
def test_encode_png_reads_back_in_pillow(dtype, high):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, high + 1, size=(37, 53)).astype(dtype)
    im = Image.open(io.BytesIO(encode_png(arr)))
    assert im.mode == ("L" if dtype == np.uint8 else "I;16")
    assert np.array_equal(np.asarray(im), arr)


def test_segment_map_bit_depth_follows_max_id(tmp_path):
    write_segment_map(tmp_path / "a.png", np.array([[0, 255]]))
    write_segment_map(tmp_path / "b.png", np.array([[0, 256]]))
    assert Image.open(tmp_path / "a.png").mode == "L"
    assert Image.open(tmp_path / "b.png").mode == "I;16"
    assert read_png(tmp_path / "b.png").tolist() == [[0, 256]]
    assert segment_map_dtype(65535) == np.uint16
    with pytest.raises(ValueError, match="16 bits"):
        segment_map_dtype(65536)


def test_16bit_grey_decodes_to_one_channel(tmp_path):
    arr = np.array([[1, 24000], [26001, 7]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "i.png")
    out = read_png(tmp_path / "i.png", expect="grey16")
    assert out.shape == (2, 2) and out.tolist() == arr.tolist()


def test_palette_png_gives_indices(tmp_path):
    im = Image.fromarray(np.array([[0, 15], [255, 2]], dtype=np.uint8), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0] + [7] * (254 * 3))
    im.save(tmp_path / "p.png")
    assert read_png(tmp_path / "p.png", expect="index8").tolist() == [[0, 15], [255, 2]]
    with pytest.raises(InputError, match="expected a 8-bit RGB PNG, found 8-bit palette"):
        read_png(tmp_path / "p.png", expect="rgb8")


def test_decode_ade_rgb_matches_the_published_rule():
    rgb = np.array([[[10, 56, 3], [0, 0, 0], [250, 255, 9]]], dtype=np.uint8)
    codes, inst = decode_ade_rgb(rgb)
    assert codes.tolist() == [[1 * 256 + 56, 0, 25 * 256 + 255]]
    assert inst.tolist() == [[3, 0, 9]]


def test_missing_and_non_png_files_are_named(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_png(tmp_path / "nope.png")
    (tmp_path / "x.png").write_bytes(b"GIF89a....")
    with pytest.raises(InputError, match="not a PNG") as info:
        read_png(tmp_path / "x.png")
    assert info.value.path == str(tmp_path / "x.png")

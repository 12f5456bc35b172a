"""segdata.jsonstream: the streamed walk against ``json.loads`` of the same bytes, at chunk sizes
that cut every token, and malformed input named by file and position (positions computed here
from the text, not from the reader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segdata.errors import InputError
from segdata.jsonstream import JsonStream, tail_value

CHUNKS = [1, 2, 7, 64, 1 << 20]


def walk(path: Path, streamed: dict[str, bool], chunk: int, stop_after: str | None = None):
    """Walk ``path`` streaming the keys of ``streamed`` (key -> exact); returns the top-level
    values and, per streamed key, the (value, start, end) of every element."""
    seen: dict[str, list] = {key: [] for key in streamed}

    def collect(key):
        return lambda i, v, s, e: seen[key].append((i, v, s, e))

    with JsonStream(path, chunk_size=chunk) as js:
        top = js.walk({key: (collect(key), exact) for key, exact in streamed.items()}, stop_after=stop_after)
    for items in seen.values():
        assert [i for i, *_ in items] == list(range(len(items))), "indices 0, 1, 2, ... in order"
    return top, {key: [(v, s, e) for _, v, s, e in items] for key, items in seen.items()}


# --------------------------------------------------------------------------- values as json.loads gives them


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_json_stream_spans_and_values_at_any_chunk_size(tmp_path, chunk):
    annotations = [
        {
            "id": i,
            "image_id": 10**12 + i,
            "segmentation": [[1.5, 2.25, 3, 4, 5, 6]] * i,
            "name": 'caf\u00e9 \u6f22 \\" q',
        }
        for i in range(12)
    ]
    images = [{"id": 1, "file_name": "\u00e9t\u00e9.jpg", "width": 3, "height": 2}]
    doc = {"annotations": annotations, "images": images, "categories": [], "n": 12345}
    for indent in (None, 2):
        path = tmp_path / f"d{indent}.json"
        path.write_text(json.dumps(doc, indent=indent, ensure_ascii=False), encoding="utf-8")
        raw = path.read_bytes()
        top, seen = walk(path, {"annotations": False, "images": True}, chunk)
        assert (
            top["n"] == 12345
            and top["categories"] == []
            and top["__keys__"] == ["annotations", "images", "categories", "n"]
        )
        for key in seen:
            assert [json.loads(raw[s:e]) for _, s, e in seen[key]] == doc[key]
        assert [v for v, _, _ in seen["images"]] == doc["images"]  # exact strings where asked for
        assert [v["id"] for v, _, _ in seen["annotations"]] == list(range(12))


# Written by hand, not by json.dumps: escapes, exponents and spacing as other writers produce them.
VARIED = (
    b'\xef\xbb\xbf{ "info" : {"description": "caf\\u00e9 \\ud83d\\ude00 tab\\t nl\\n \\"q\\" \\\\ \\/",\n'
    b'  "nested": {"a": [[], [[]], {}, [{"b": [1, [2, [3]]]}]], "t": true, "f": false, "n": null}},\r\n'
    b'  "numbers" : [0, -0, 1, -1, 12345678901234567890123, 1e5, 1E+5, -2.5e-3, 6.02214076E23, 0.1,\n'
    b"               1.7976931348623157e308, 5e-324, 123456789.123456789, -0.0, 3.0e0],\n"
    b'  "empty": [],\t"also_empty" : [ ],\n'
    b'  "mixed": [null, true, false, "", "\\u0000\\u001f", {"k": {}}, [], 7, "s\xc3\xa9", -1.5E-7],\n'
    b'  "objects": [{"id": 3, "seg": {"counts": "5Z0\\\\1", "size": [2, 3]}, "area": 1.5e2}, {"id": 1e1}],\n'
    b'  "tail": {"x": [1.25e-1, 2]}\n'
    b"}\n"
)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_varied_document_matches_json_loads(tmp_path, chunk):
    path = tmp_path / "varied.json"
    path.write_bytes(VARIED)
    expected = json.loads(VARIED.decode("utf-8-sig"))
    streamed = {"numbers": False, "empty": True, "also_empty": False, "mixed": True, "objects": False}
    top, seen = walk(path, streamed, chunk)
    assert top["__keys__"] == list(expected)  # file order
    for key, value in expected.items():
        if key in streamed:
            assert [v for v, _, _ in seen[key]] == value, key
            assert [json.loads(VARIED[s:e]) for _, s, e in seen[key]] == value, key  # the spans are the bytes
        else:
            assert top[key] == value, key
    numbers = [v for v, _, _ in seen["numbers"]]
    assert numbers[4] == 12345678901234567890123 and isinstance(numbers[4], int)
    assert numbers[5] == 100000.0 and isinstance(numbers[5], float) and numbers[7] == -0.0025
    assert top["info"]["description"] == 'caf\u00e9 \U0001f600 tab\t nl\n "q" \\ /'
    assert seen["mixed"][8][0] == "s\u00e9"  # UTF-8 bytes, exact where asked for


@pytest.mark.parametrize("chunk", CHUNKS)
def test_spans_start_and_end_at_the_element(tmp_path, chunk):
    """An element's span is its own bytes: no comma, no whitespace (offsets found by hand)."""
    text = b'{"a": [ 10 ,\n  {"k": "v"}  ,[1, 2]],"b":1}'
    path = tmp_path / "s.json"
    path.write_bytes(text)
    _, seen = walk(path, {"a": False}, chunk)
    assert [(s, e) for _, s, e in seen["a"]] == [(8, 10), (15, 25), (28, 34)]
    assert [text[s:e] for _, s, e in seen["a"]] == [b"10", b'{"k": "v"}', b"[1, 2]"]


def test_stop_after_returns_before_the_rest_of_the_file(tmp_path):
    """COCO-Stuff JSONs put ``categories`` before ``annotations``: the converter stops there and
    never parses the rest (here: not even valid JSON)."""
    path = tmp_path / "stuff.json"
    path.write_bytes(
        b'{"info": {}, "images": [{"id": 1}, {"id": 2}], "categories": [{"id": 92, "name": "banner"}], '
        b'"annotations": [this is not JSON'
    )
    for chunk in (1, 5, 1 << 20):
        top, seen = walk(path, {"images": False, "annotations": False}, chunk, stop_after="categories")
        assert top["categories"] == [{"id": 92, "name": "banner"}]
        assert top["__keys__"] == ["info", "images", "categories"]
        assert [v for v, _, _ in seen["images"]] == [{"id": 1}, {"id": 2}] and seen["annotations"] == []


def test_empty_object_and_empty_arrays(tmp_path):
    path = tmp_path / "e.json"
    path.write_bytes(b" {\n} \n")
    top, _ = walk(path, {"images": False}, 1)
    assert top == {"__keys__": []}
    path.write_bytes(b'{"images":[],"annotations":[  ]}')
    top, seen = walk(path, {"images": False, "annotations": True}, 3)
    assert top["__keys__"] == ["images", "annotations"] and seen == {"images": [], "annotations": []}


def test_tail_value(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(
        '{"images": [], "annotations": [{"categories": 1}],\n "categories": [{"id": 1, "name": "caf\u00e9"}]\n}\n',
        encoding="utf-8",
    )
    assert tail_value(path, "categories") == [{"id": 1, "name": "caf\u00e9"}]
    assert tail_value(path, "images") is None  # not the last key
    path.write_text('{"categories": [], "annotations": []}')
    assert tail_value(path, "categories") is None
    assert tail_value(path, "annotations") == []
    assert tail_value(tmp_path / "missing.json", "categories") is None


# --------------------------------------------------------------------------- malformed input


def position(text: bytes, offset: int) -> str:
    """'line L column C (byte B)' of a byte offset, counted here."""
    line = text[:offset].count(b"\n") + 1
    column = offset - text[:offset].rfind(b"\n")
    return f"line {line} column {column} (byte {offset})"


@pytest.mark.parametrize(
    "text, at, problem",
    [
        (b'{"images": [1, 2,\n  x]}', b"x", "Expecting value"),
        (b'{"images": [1, 2]\n "n": 3}', b'"n"', "expected ',' or '}'"),
        (b'{"images": [{"id": 1} {"id": 2}]}', b'{"id": 2}', "expected ',' or ']' in 'images'"),
        (b'{"n": 1,\n "n": 2}', b'"n": 2', "key 'n' appears twice"),
        (b'{"images": {"id": 1}}', b'{"id"', "'images' must be a list, found dict"),
        (b'{"a": 1} {"b": 2}', b'{"b"', "extra data after the top-level object"),
        (b"[1, 2]", b"[", "expected a JSON object {...} at the top level, found '['"),
        (b'{"a": 1, 2: 3}', b"2:", "expected a key in double quotes"),
        (b'{"images": ["\xff\xfe"]}', b"\xff", "not UTF-8"),  # the byte itself
    ],
)
@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_malformed_json_names_the_file_and_the_position(tmp_path, text, at, problem, chunk):
    path = tmp_path / "bad.json"
    path.write_bytes(text)
    offset = text.index(at)
    with pytest.raises(InputError, match="malformed JSON") as err:
        walk(path, {"images": True}, chunk)
    assert err.value.path == str(path)
    assert err.value.problem.startswith(f"malformed JSON at {position(text, offset)}: ")
    assert problem in err.value.problem


@pytest.mark.parametrize("cut", [1, 10, 25, 33])
def test_truncated_file(tmp_path, cut):
    text = b'{"images": [{"id": 1}, {"id": 22}], "n": 5}'
    path = tmp_path / "cut.json"
    path.write_bytes(text[:cut])
    with pytest.raises(InputError, match=r"malformed JSON at line 1 column \d+ \(byte \d+\)") as err:
        walk(path, {"images": False}, 4)
    assert err.value.path == str(path)


def test_empty_and_missing_files(tmp_path):
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="found an empty file"):
        walk(path, {}, 16)
    with pytest.raises(InputError, match="file not found") as err:
        walk(tmp_path / "missing.json", {}, 16)
    assert err.value.path == str(tmp_path / "missing.json")

"""Stream the top-level object of a large JSON file without loading it: ``json.load`` of a
448 MB COCO train2017 instances JSON builds several GB of Python objects; this reader keeps
about two chunks of text (2 x 16 MiB by default) whatever the size of the file.

What it parses: a JSON document (RFC 8259, UTF-8, an optional byte order mark) whose top level
is an object. :meth:`JsonStream.walk` goes through that object key by key, in file order; the
value of each key named in ``arrays`` must be a list, and its elements are parsed one at a time
and handed to a callback with their byte span ``[start, end)`` in the file, then dropped; every
other value is parsed whole and returned. Duplicate top-level keys are an error. Nothing here
knows about any dataset: the COCO converter (``segdata.converters.coco``) walks ``images`` and
``annotations`` with it and keeps per element only what it needs (an id, a byte span).

How: the file is read in chunks and decoded as Latin-1, which maps every byte to one character,
so that positions in the text are byte offsets in the file; values are parsed with the standard
library's C scanner (``json.JSONDecoder.raw_decode``), so numbers, escapes and nesting follow
``json.loads`` exactly. Strings are exact only where asked for (``exact=True``): a value holding
a non-ASCII byte is then re-parsed from its bytes as UTF-8; elsewhere non-ASCII text is left as
its Latin-1 reading (the callers that ask for no exactness keep only numbers and spans).

Memory: two chunks of text plus the largest single element or non-streamed value; nothing grows
with the number of elements. Malformed input raises :class:`~segdata.errors.InputError` naming
the file and the position (line and column for files under 64 MiB, the byte offset always).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from segdata.errors import InputError

__all__ = ["JsonStream", "tail_value"]

_WS = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_BOM = "\xef\xbb\xbf"  # UTF-8 byte order mark, read as Latin-1


class JsonStream:
    """Walk the top-level object of a JSON file one array element at a time.

    The file is read in chunks and decoded as Latin-1, which maps every byte to one character,
    so that positions in the text are byte offsets in the file; values are parsed with the
    standard library's C scanner. Elements of the arrays named in :meth:`walk` are handed to a
    callback with their byte span and then dropped, so memory stays at about two chunks however
    large the file. Values whose strings matter (``exact=True``) are re-parsed from their bytes
    as UTF-8 when they contain a non-ASCII byte.

    Parameters
    ----------
    path : path
        The JSON file.
    chunk_size : int
        Bytes read at a time (16 MiB; tests use tiny chunks to exercise the boundaries).
    """

    def __init__(self, path: str | Path, chunk_size: int = 1 << 24):
        self.path = Path(path)
        self.chunk_size = max(1, int(chunk_size))
        self.buf = ""
        self.base = 0  # file offset of buf[0]
        self.pos = 0
        self.eof = False
        self._file = None

    def __enter__(self):
        try:
            self._file = open(self.path, "rb")
        except FileNotFoundError:
            raise InputError(self.path, "file not found") from None
        except OSError as exc:
            raise InputError(self.path, f"cannot read file ({exc.strerror})") from None
        return self

    def __exit__(self, *exc):
        self._file.close()

    # low level -------------------------------------------------------------
    def _fill(self) -> None:
        data = self._file.read(max(self.chunk_size, len(self.buf) - self.pos))
        if not data:
            self.eof = True
        self.base += self.pos
        self.buf = self.buf[self.pos :] + data.decode("latin-1")
        self.pos = 0

    def _ws(self) -> None:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or self.eof:
                return
            self._fill()

    def _peek(self) -> str:
        self._ws()
        return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def _expect(self, chars: str, what: str) -> str:
        c = self._peek()
        if not c or c not in chars:
            self.error(f"expected {what}, found {repr(c) if c else 'the end of the file'}", self.base + self.pos)
        self.pos += 1
        return c

    def error(self, problem: str, offset: int):
        """Raise :class:`InputError` for malformed JSON at byte ``offset`` of the file."""
        where = f"byte {offset}"
        if offset < (64 << 20):  # line and column for files one can open in an editor
            try:
                with open(self.path, "rb") as f:
                    head = f.read(offset)
                line = head.count(b"\n") + 1
                column = offset - head.rfind(b"\n")
                where = f"line {line} column {column} (byte {offset})"
            except OSError:
                pass
        raise InputError(self.path, f"malformed JSON at {where}: {problem}")

    def value(self, exact: bool = False):
        """Parse the value at the current position; returns ``(value, start, end)`` byte offsets."""
        self._ws()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                near_end = exc.pos >= len(self.buf) - 8 or exc.msg.startswith("Unterminated string")
                if not self.eof and near_end:
                    self._fill()
                    continue
                self.error(exc.msg, self.base + exc.pos)
            if end >= len(self.buf) - 64 and not self.eof:  # a number cut at the chunk's end may go on
                self._fill()
                continue
            break
        start = self.base + self.pos
        if exact and not self.buf[self.pos : end].isascii():
            raw = self.buf[self.pos : end].encode("latin-1")
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                self.error(f"not UTF-8 ({exc.reason})", start + exc.start)
        self.pos = end
        return value, start, self.base + end

    # top level -------------------------------------------------------------
    def walk(self, arrays: dict[str, tuple], stop_after: str | None = None) -> dict:
        """Walk the top-level object.

        Parameters
        ----------
        arrays : dict of str to (callable, bool)
            For each key whose value is a list to stream: ``callback(index, value, start, end)``
            called per element (byte offsets, end exclusive), and whether strings in the
            elements must be exact (re-parsed as UTF-8).

        stop_after : str, optional
            Return as soon as this key's value is read, without reading the rest of the file.

        Returns
        -------
        dict
            Every other top-level key with its (parsed, exact) value, and ``"__keys__"``: the
            keys in file order.
        """
        self._fill()
        while len(self.buf) < len(_BOM) and not self.eof:  # chunks smaller than the mark
            self._fill()
        if self.buf.startswith(_BOM):
            self.pos = len(_BOM)
        if self._peek() != "{":
            c = self._peek()
            found = "an empty file" if not c else f"{c!r}"
            self.error(f"expected a JSON object {{...}} at the top level, found {found}", self.base + self.pos)
        self.pos += 1
        others: dict = {}
        keys: list[str] = []
        if self._peek() == "}":
            self.pos += 1
        else:
            while True:
                if self._peek() != '"':
                    self.error("expected a key in double quotes", self.base + self.pos)
                key, start, _ = self.value()
                if key in keys:
                    self.error(f"key {key!r} appears twice in the top-level object", start)
                keys.append(key)
                self._expect(":", "':'")
                if key in arrays:
                    self._array(key, *arrays[key])
                else:
                    others[key] = self.value(exact=True)[0]
                if key == stop_after:
                    others["__keys__"] = keys
                    return others
                if self._expect(",}", "',' or '}'") == "}":
                    break
        self._ws()
        if self.pos < len(self.buf):
            self.error("extra data after the top-level object", self.base + self.pos)
        others["__keys__"] = keys
        return others

    def _array(self, key: str, callback, exact: bool) -> None:
        if self._peek() != "[":
            value, start, _ = self.value()
            self.error(f"{key!r} must be a list, found {type(value).__name__}", start)
        self.pos += 1
        if self._peek() == "]":
            self.pos += 1
            return
        index = 0
        scan = _DECODER.scan_once
        while True:
            # fast path: the element and the separator after it lie inside the buffer
            buf, pos = self.buf, self.pos
            try:
                value, end = scan(buf, pos)
                m = _SEPARATOR.match(buf, end)
            except (StopIteration, json.JSONDecodeError):
                m = None
            if m is not None and m.end() < len(buf) and not (exact and not buf[pos:end].isascii()):
                callback(index, value, self.base + pos, self.base + end)
                index += 1
                self.pos = m.end()
                if m.group(1) == "]":
                    return
                continue
            # slow path: reads more of the file, re-parses exactly, reports errors
            value, start, end = self.value(exact=exact)
            callback(index, value, start, end)
            index += 1
            if self._expect(",]", f"',' or ']' in {key!r}") == "]":
                return
            self._ws()


def tail_value(path: str | Path, key: str, window: int = 1 << 20):
    """The value of the top-level ``key`` when it is the last key of the JSON object in ``path``,
    read from the last ``window`` bytes of the file without parsing the rest; None when the file
    does not end with that key (or cannot be read), so that the caller can fall back to
    :class:`JsonStream`. Strings are parsed exactly (as UTF-8)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - window))
            data = f.read()
    except OSError:
        return None
    text = data.decode("latin-1")
    quoted = json.dumps(key)
    i = text.rfind(quoted)
    if i < 0 or (i > 0 and text[i - 1] == "\\"):
        return None
    m = re.compile(re.escape(quoted) + r"\s*:\s*").match(text, i)
    if m is None:
        return None
    try:
        _, end = _DECODER.raw_decode(text, m.end())
    except json.JSONDecodeError:
        return None
    if text[end:].strip() != "}":
        return None
    try:
        return json.loads(data[m.end() : end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None

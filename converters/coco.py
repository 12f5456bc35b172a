"""COCO, read exactly as it ships: instances and stuff JSON, panoptic JSON + PNG, COCO-Stuff PNGs;
and the exporter to COCO panoptic.

Layouts (detected by :func:`detect`, one per conversion)::

    ROOT/annotations/instances_<split><year>.json   polygons; RLE (counts list or string) for crowds
    ROOT/annotations/stuff_<split><year>.json       COCO-Stuff stuff-only JSON (compressed RLE strings)
    ROOT/annotations/panoptic_<split><year>.json    + the PNG folder of the same name, next to the
                                                    JSON or in ROOT: RGB, id = R + 256 G + 256^2 B
    ROOT/stuffthingmaps_trainval2017/<split><year>/*.png   (or ROOT/stuffthingmaps/...)
                                                    COCO-Stuff label maps: value = category id - 1,
                                                    255 = unlabeled
    ROOT/<split><year>/<file_name>                  images (or ROOT/images/<split><year>/)

``coco-instances``       instances JSONs; ``coco-things-stuff`` when a ``stuff_<split><year>.json``
                         sits next to them (things and stuff in one ``objects`` layer);
``coco-stuff``           stuff JSONs alone; ``coco-panoptic``; ``coco-stuffthingmaps``.

When several are present the first of instances, panoptic, stuffthingmaps, stuff is taken;
``kind=`` picks another, ``annotations=`` names the JSON file(s) to read. Splits are ``train``,
``val``, ``test`` (the ``<split>`` of ``instances_<split><year>.json``); the year is the layout's
``release``; when files of several years are present the latest year is read.

Conventions:

- image ids are the JSON's ``id`` written in decimal (``"397133"``); the stuffthingmaps' ids are
  their file names read as a number (``000000000139.png`` -> ``"139"``).
- ``class_id`` = ``source_id`` = the COCO category id (things 1..90 with gaps, panoptic stuff
  92..200, COCO-Stuff stuff 92..182 and ``other`` 183). Every category of the JSON is in the
  class table, seen or not (COCO-Stuff PNGs: the 171 categories COCO-Stuff uses). ``is_thing``:
  instances JSON True, stuff JSON False, panoptic ``isthing``, COCO-Stuff ids <= 91.
- one segment row per annotation (instances/stuff JSON) or per ``segments_info`` entry
  (panoptic); ``source_instance`` is the annotation id (panoptic: the segment id in the PNG),
  ``source_area`` COCO's own ``area``, ``iscrowd`` the JSON's. ``is_instance`` is true for
  non-crowd annotations of thing categories; a crowd region (many objects under one mask) and a
  stuff region are not instances. COCO's ``area`` is *not* the pixel count: polygon areas differ
  from the rasterised masks by up to ~12% on small objects, crowd RLE areas by up to 45% on the
  samples; ``area`` is always the pixel count in the segment map.
- stuffthingmaps segments are class regions: segment id = class id = PNG value + 1.

Overlaps (instances and stuff JSON only; panoptic PNGs and label maps cannot overlap): COCO
instance masks overlap, a segment map cannot. Each annotation is rasterised with pycocotools
(``annToMask``'s exact pixels) and painted bottom to top in this order, so that the first rule
that separates two annotations decides which is on top:

1. things above stuff (annotations of the instances JSON above those of the stuff JSON);
2. smaller above larger, by pixel count before resolution: a small object overlapping a large
   one is nearly always in front of it (a cup on a table, a person before a bus) and would
   otherwise vanish, while the large one loses little; and unlike "later on top" the result
   does not depend on the arbitrary order of the JSON;
3. equal sizes: the higher annotation id on top.

Every annotation keeps its row. The pixels it lost to the rule are recorded in
``pixels_lost`` (pixels before resolution - ``area``); an annotation that lost every pixel,
or that covers no pixel at all, is a row with ``area`` 0 and no pixel in the map.

Memory: a COCO train2017 instances JSON is 448 MB, and ``json.load`` would turn it into several
GB of Python objects. :func:`list_images` walks the JSON once, one array element at a time, and
keeps per annotation only its image and its byte span in the file; each task carries the spans
of its image's annotations, which the worker reads back from the file and parses. Nothing holds
the annotations or masks of more than one image.

Images listed in the JSON but missing on disk are converted (width and height are in the JSON)
and listed under ``problems``.
"""

from __future__ import annotations

import json
import re
import time
from array import array
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pycocotools import mask as mask_utils

from segdata import __version__
from segdata.convert import ConvertedImage, SegmentRows, image_row, atomic_output
from segdata.errors import FormatError, InputError, LayoutNotFoundError
from segdata.format import Dataset, mask_relpath, text_or_none
from segdata.maskio import image_size, read_png, read_segment_map
from segdata.palette import class_color
from segdata.regions import bounding_boxes
from segdata.runner import parallel_map

FAMILY = "coco"
KINDS = ("instances", "panoptic", "stuffthingmaps", "stuff")
LAYOUT_NAMES = {
    "instances": "coco-instances",
    "things-stuff": "coco-things-stuff",
    "stuff": "coco-stuff",
    "panoptic": "coco-panoptic",
    "stuffthingmaps": "coco-stuffthingmaps",
}
PANOPTIC_CATEGORIES_FILE = "panoptic_coco_categories.json"
LOOKED_FOR = (
    "annotations/instances_<split><year>.json, annotations/panoptic_<split><year>.json with its "
    "PNG folder panoptic_<split><year>/, stuffthingmaps[_trainval2017]/<split><year>/*.png, "
    "annotations/stuff_<split><year>.json"
)
_JSON_NAME = re.compile(r"^(?P<kind>instances|panoptic|stuff)_(?P<split>[a-z]+)(?P<year>\d{4})?\.json$")
_SPLIT_DIR = re.compile(r"^(?P<split>[a-z]+)(?P<year>\d{4})?$")
_MAX_SEGMENTS = 65535

# COCO-Stuff labels (nightrome/cocostuff labels.txt): id name; ids 1..91 things, 92..182 stuff.
# A stuffthingmaps PNG stores id - 1 (0..181) and 255 for unlabeled.
_COCO_STUFF_LABELS = """
1 person          2 bicycle         3 car             4 motorcycle      5 airplane
6 bus             7 train           8 truck           9 boat            10 traffic light
11 fire hydrant   12 street sign    13 stop sign      14 parking meter  15 bench
16 bird           17 cat            18 dog            19 horse          20 sheep
21 cow            22 elephant       23 bear           24 zebra          25 giraffe
26 hat            27 backpack       28 umbrella       29 shoe           30 eye glasses
31 handbag        32 tie            33 suitcase       34 frisbee        35 skis
36 snowboard      37 sports ball    38 kite           39 baseball bat   40 baseball glove
41 skateboard     42 surfboard      43 tennis racket  44 bottle         45 plate
46 wine glass     47 cup            48 fork           49 knife          50 spoon
51 bowl           52 banana         53 apple          54 sandwich       55 orange
56 broccoli       57 carrot         58 hot dog        59 pizza          60 donut
61 cake           62 chair          63 couch          64 potted plant   65 bed
66 mirror         67 dining table   68 window         69 desk           70 toilet
71 door           72 tv             73 laptop         74 mouse          75 remote
76 keyboard       77 cell phone     78 microwave      79 oven           80 toaster
81 sink           82 refrigerator   83 blender        84 book           85 clock
86 vase           87 scissors       88 teddy bear     89 hair drier     90 toothbrush
91 hair brush     92 banner         93 blanket        94 branch         95 bridge
96 building-other 97 bush           98 cabinet        99 cage           100 cardboard
101 carpet        102 ceiling-other 103 ceiling-tile  104 cloth         105 clothes
106 clouds        107 counter       108 cupboard      109 curtain       110 desk-stuff
111 dirt          112 door-stuff    113 fence         114 floor-marble  115 floor-other
116 floor-stone   117 floor-tile    118 floor-wood    119 flower        120 fog
121 food-other    122 fruit         123 furniture-other 124 grass       125 gravel
126 ground-other  127 hill          128 house         129 leaves        130 light
131 mat           132 metal         133 mirror-stuff  134 moss          135 mountain
136 mud           137 napkin        138 net           139 paper         140 pavement
141 pillow        142 plant-other   143 plastic       144 platform      145 playingfield
146 railing       147 railroad      148 river         149 road          150 rock
151 roof          152 rug           153 salad         154 sand          155 sea
156 shelf         157 sky-other     158 skyscraper    159 snow          160 solid-other
161 stairs        162 stone         163 straw         164 structural-other 165 table
166 tent          167 textile-other 168 towel         169 tree          170 vegetable
171 wall-brick    172 wall-concrete 173 wall-other    174 wall-panel    175 wall-stone
176 wall-tile     177 wall-wood     178 water-other   179 waterdrops    180 window-blind
181 window-other  182 wood
"""
#: thing ids COCO defines but never annotated (not in COCO's 80 or COCO-Stuff's 171 classes)
COCO_UNUSED_THING_IDS = frozenset({12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91})
COCO_STUFF_UNLABELED = 255


def _parse_label_table(text: str) -> dict[int, str]:
    tokens = re.findall(r"(\d+) ([a-z][a-z -]*?)(?=\s+\d+ |\s*$)", text.strip())
    table = {int(i): name.strip() for i, name in tokens}
    if sorted(table) != list(range(1, 183)):
        raise RuntimeError(f"COCO-Stuff label table: expected ids 1..182, got {len(table)} ids")
    return table


COCO_STUFF_NAMES: dict[int, str] = _parse_label_table(_COCO_STUFF_LABELS)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Category:
    """One COCO category: ``id`` (the class id), ``name``, ``supercategory``, ``is_thing``
    (None where the source does not say), ``color`` (``#rrggbb`` or None)."""

    id: int
    name: str
    supercategory: str | None = None
    is_thing: bool | None = None
    color: str | None = None


@dataclass(frozen=True)
class Source:
    """One split of a layout: where its annotation and images are.

    ``annotation`` is the JSON (instances, stuff, panoptic) or, for stuffthingmaps, the folder
    of label PNGs; ``stuff`` a stuff JSON merged into an instances source; ``png_dir`` the
    panoptic PNG folder; ``image_dir`` where the JSON's ``file_name`` are.
    """

    split: str
    annotation: Path
    image_dir: Path
    stuff: Path | None = None
    png_dir: Path | None = None


@dataclass(frozen=True)
class Layout:
    """A detected COCO layout (frozen, picklable, hashable).

    ``root`` is the dataset root, ``image_root`` what ``images.file`` is relative to,
    ``categories`` every category the layout defines, ``categories_file`` where they came from
    when not from the annotation JSON itself.
    """

    name: str
    root: Path
    image_root: Path
    release: str
    sources: tuple[Source, ...] = ()
    categories: tuple[Category, ...] = ()
    categories_file: Path | None = None
    family: str = FAMILY


@dataclass(frozen=True, slots=True)
class Task:
    """One image to convert.

    ``width``/``height`` come from the JSON (-1 where it has none: trimmed panoptic JSONs,
    stuffthingmaps); ``spans`` and ``stuff_spans`` are the byte ``(offset, length)`` pairs, as
    int64, of this image's records in the source's JSON and stuff JSON; ``png`` is the panoptic
    PNG or label map, relative to the source's PNG folder.
    """

    image_id: str
    split: str
    source: int
    width: int = -1
    height: int = -1
    file_name: str | None = None
    spans: bytes = b""
    stuff_spans: bytes = b""
    png: str | None = None


# --------------------------------------------------------------------------- streaming JSON

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


def _tail_categories(path: Path, window: int = 1 << 20):
    """The top-level ``categories`` list when it is the last key of the file (as in every
    official COCO JSON), read from the file's tail without parsing the rest; None otherwise."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - window))
            data = f.read()
    except OSError:
        return None
    text = data.decode("latin-1")
    i = text.rfind('"categories"')
    if i < 0 or (i > 0 and text[i - 1] == "\\"):
        return None
    m = re.compile(r'"categories"\s*:\s*').match(text, i)
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


def _json_categories(path: Path) -> list | None:
    """The ``categories`` list of a COCO JSON, or None when it has none."""
    fast = _tail_categories(path)  # official instances and panoptic JSONs end with it
    if fast is not None:
        return fast
    skip = (lambda *a: None, False)
    with JsonStream(path) as js:  # COCO-Stuff JSONs have it before their annotations
        top = js.walk({"images": skip, "annotations": skip}, stop_after="categories")
    return top.get("categories")


def _parse_categories(raw, path: Path, is_thing_default: bool | None) -> tuple[Category, ...]:
    if isinstance(raw, dict) and "categories" in raw:
        raw = raw["categories"]
    if not isinstance(raw, list):
        raise InputError(path, f"'categories' must be a list of objects, found {type(raw).__name__}")
    out = []
    seen: set[int] = set()
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
            raise InputError(path, f"categories[{i}] needs an integer 'id' and a string 'name', found {str(c)[:80]}")
        cid = int(c["id"])
        if cid <= 0:
            raise InputError(path, f"category id {cid} ({c['name']}): ids must be positive (0 means unlabeled)")
        if cid in seen:
            raise InputError(path, f"category id {cid} appears twice in 'categories'")
        seen.add(cid)
        isthing = c.get("isthing")
        if isthing not in (None, 0, 1, True, False):
            raise InputError(path, f"category {cid} ({c['name']}): 'isthing' must be 0 or 1, found {isthing!r}")
        color = c.get("color")
        if isinstance(color, list) and len(color) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in color):
            color = "#{:02x}{:02x}{:02x}".format(*color)
        else:
            color = None
        sup = c.get("supercategory")
        out.append(Category(cid, c["name"], sup if isinstance(sup, str) else None,
                            is_thing_default if isthing is None else bool(isthing), color))  # fmt: skip
    return tuple(sorted(out, key=lambda c: c.id))


def _merge_categories(groups: list[tuple[Path, tuple[Category, ...]]]) -> tuple[Category, ...]:
    merged: dict[int, tuple[Category, Path]] = {}
    for path, cats in groups:
        for c in cats:
            if c.id in merged and merged[c.id][0].name != c.name:
                other = merged[c.id]
                raise InputError(path, f"category {c.id} is {c.name!r} here but {other[0].name!r} in {other[1].name}")
            merged.setdefault(c.id, (c, path))
    return tuple(c for c, _ in sorted(merged.values(), key=lambda v: v[0].id))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# --------------------------------------------------------------------------- detection


def _split_year(match) -> tuple[str, str]:
    return match.group("split"), match.group("year") or ""


def _image_dir(root: Path, images: Path | None, split: str, year: str) -> Path:
    bases = [images] if images is not None else [root, root / "images"]
    cands = []
    for base in bases:
        cands += [base / f"{split}{year}", base / split] if year else [base / split]
    if images is not None:
        cands.append(images)
    for cand in cands:
        if cand.is_dir():
            return cand
    return cands[0]


def _png_dir(json_path: Path, root: Path) -> Path | None:
    for cand in (json_path.parent / json_path.stem, root / json_path.stem):
        if cand.is_dir():
            return cand
    return None


def _stuffthingmap_sources(root: Path, ann_dir: Path) -> list[tuple[str, str, Path]]:
    found = []
    for base in (root / "stuffthingmaps_trainval2017", root / "stuffthingmaps", ann_dir):
        if not base.is_dir():
            continue
        for sub in sorted(p for p in base.iterdir() if p.is_dir()):
            m = _SPLIT_DIR.match(sub.name)
            if m and next(sub.glob("*.png"), None) is not None:
                found.append((*_split_year(m), sub))
        if found:
            return found
    return found


def _latest_year(items: list[tuple]) -> list[tuple]:
    years = sorted({it[1] for it in items})
    return [it for it in items if it[1] == years[-1]]


def _categories_for(kind: str, path: Path) -> tuple[Category, ...]:
    raw = _json_categories(path)
    if raw is None:
        raise InputError(path, "has no 'categories' list")
    return _parse_categories(raw, path, is_thing_default=(kind != "stuff"))


def _panoptic_categories(jsons: list[Path], root: Path, ann_dir: Path, categories: Path | None):
    if categories is not None:
        path = Path(categories)
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise InputError(path, "categories file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"malformed JSON ({exc})") from None
        return _parse_categories(raw, path, None), path
    groups = []
    missing = []
    for path in jsons:
        raw = _json_categories(path)
        if raw is None:
            missing.append(path)
        else:
            groups.append((path, _parse_categories(raw, path, None)))
    if missing:
        for cand in dict.fromkeys((missing[0].parent / PANOPTIC_CATEGORIES_FILE, ann_dir / PANOPTIC_CATEGORIES_FILE,
                                   root / PANOPTIC_CATEGORIES_FILE)):  # fmt: skip
            if cand.is_file():
                return _panoptic_categories(jsons, root, ann_dir, cand)
        raise InputError(
            missing[0],
            f"has no 'categories' (a trimmed panoptic JSON) and no {PANOPTIC_CATEGORIES_FILE} was found next "
            f"to it or in {root}",
            hint=f"pass categories=PATH (CLI --categories PATH) naming panopticapi's {PANOPTIC_CATEGORIES_FILE}",
        )
    return _merge_categories(groups), None


def detect(
    root: str | Path,
    *,
    kind: str | None = None,
    annotations=None,
    stuff: bool | None = None,
    categories: str | Path | None = None,
    images: str | Path | None = None,
) -> Layout:
    """Detect which COCO layout ``root`` holds.

    Parameters
    ----------
    root : path
        The dataset root (holding ``annotations/``), the ``annotations`` folder itself, or one
        annotation JSON.
    kind : {"instances", "panoptic", "stuffthingmaps", "stuff"}, optional
        Which annotation to read when several are present (default: the first found in this
        order).
    annotations : path or list of paths, optional
        Read exactly these JSON files (their kind from their name, ``instances_``, ``stuff_``,
        ``panoptic_``, else ``kind``, else instances).
    stuff : bool, optional
        Merge ``stuff_<split><year>.json`` into the instances of the same split (default: when
        present); False reads the instances alone, True requires the stuff JSON.
    categories : path, optional
        A panoptic categories file (panopticapi's ``panoptic_coco_categories.json``), for
        trimmed panoptic JSONs without ``categories``. Default: the JSON's own, else that file
        next to the JSON or in ``root``.
    images : path, optional
        Where the image files are (default ``root/<split><year>`` or ``root/images/<split><year>``).

    Raises
    ------
    LayoutNotFoundError
        Naming every layout looked for.
    InputError
        A JSON's ``categories`` are malformed or missing.
    """
    root = Path(root)
    explicit = [Path(p) for p in ([annotations] if isinstance(annotations, (str, Path)) else (annotations or []))]
    if root.is_file():
        explicit.insert(0, root)
        root = root.parent
    if root.name == "annotations" and not (root / "annotations").is_dir():
        root = root.parent
    if not root.is_dir():
        raise LayoutNotFoundError(f"{root}: not a directory")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    ann_dir = root / "annotations" if (root / "annotations").is_dir() else root
    images = Path(images) if images is not None else None

    found: dict[str, list[tuple[str, str, Path]]] = {k: [] for k in KINDS}
    if explicit:
        for p in explicit:
            if not p.is_file():
                raise LayoutNotFoundError(f"{p}: annotation file not found")
            m = _JSON_NAME.match(p.name)
            k = m.group("kind") if m else (kind or "instances")
            split, year = _split_year(m) if m else (p.stem, "")
            found[k].append((split, year, p))
        kinds_given = [k for k in KINDS if found[k]]
        if len(kinds_given) > 1 and set(kinds_given) != {"instances", "stuff"}:
            raise LayoutNotFoundError(
                f"annotation files of several kinds given ({', '.join(kinds_given)}); convert one kind at a time"
            )
        chosen = "instances" if found["instances"] else kinds_given[0]
        if kind is not None and chosen != kind and not (kind == "stuff" and chosen == "instances"):
            raise LayoutNotFoundError(f"{explicit[0]}: named as {chosen} annotations, but kind={kind!r} was asked for")
    else:
        for p in sorted(ann_dir.glob("*.json")):
            m = _JSON_NAME.match(p.name)
            if m:
                found[m.group("kind")].append((*_split_year(m), p))
        candidates = [kind] if kind is not None else list(KINDS)
        chosen = None
        for k in candidates:
            if k == "panoptic":
                if any(_png_dir(p, root) for _, _, p in found[k]):
                    chosen = k
                    break
                if kind == "panoptic" and found[k]:
                    p = found[k][0][2]
                    raise LayoutNotFoundError(
                        f"{p}: found, but no PNG folder {p.stem}/ next to it or in {root} "
                        f"(unzip annotations/{p.stem}.zip from panoptic_annotations_trainval2017.zip)"
                    )
            elif k == "stuffthingmaps":
                maps = _stuffthingmap_sources(root, ann_dir)
                if maps:
                    found[k] = maps
                    chosen = k
                    break
            elif found[k]:
                chosen = k
                break
        if chosen is None:
            wanted = f"{kind} annotations" if kind else "a COCO layout"
            raise LayoutNotFoundError(f"{root}: no {wanted} found. Looked for: {LOOKED_FOR}")

    items = _latest_year(found[chosen]) if not explicit else found[chosen]
    year = items[0][1] if len({it[1] for it in items}) == 1 else ""
    release = year or "unversioned"
    sources: list[Source] = []
    category_groups: list[tuple[Path, tuple[Category, ...]]] = []
    categories_file = None
    image_root = root
    if chosen == "instances":
        stuff_by_split = {(s, y): p for s, y, p in found["stuff"]}
        if stuff is True and not any((s, y) in stuff_by_split for s, y, _ in items):
            raise LayoutNotFoundError(f"{root}: stuff=True, but no stuff_<split><year>.json matches the instances JSON(s)")
        for split, yr, path in sorted(items):
            stuff_path = stuff_by_split.get((split, yr)) if stuff is not False else None
            if explicit and stuff is not False and stuff_path is None:
                cand = path.with_name(f"stuff_{split}{yr}.json")
                stuff_path = cand if cand.is_file() else None
            sources.append(Source(split, path, _image_dir(root, images, split, yr), stuff=stuff_path))
            category_groups.append((path, _categories_for("instances", path)))
            if stuff_path is not None:
                category_groups.append((stuff_path, _categories_for("stuff", stuff_path)))
        name = LAYOUT_NAMES["things-stuff" if any(s.stuff for s in sources) else "instances"]
        cats = _merge_categories(category_groups)
    elif chosen == "stuff":
        for split, yr, path in sorted(items):
            sources.append(Source(split, path, _image_dir(root, images, split, yr)))
            category_groups.append((path, _categories_for("stuff", path)))
        name = LAYOUT_NAMES["stuff"]
        cats = _merge_categories(category_groups)
    elif chosen == "panoptic":
        for split, yr, path in sorted(items):
            png_dir = _png_dir(path, root)
            if png_dir is None:  # never drop a split silently
                raise LayoutNotFoundError(
                    f"{path}: no PNG folder {path.stem}/ next to it or in {root}; unzip it, or name the JSON(s) "
                    "to convert with annotations= (CLI --annotations)"
                )
            sources.append(Source(split, path, _image_dir(root, images, split, yr), png_dir=png_dir))
        cats, categories_file = _panoptic_categories([s.annotation for s in sources], root, ann_dir, categories)
        name = LAYOUT_NAMES["panoptic"]
    else:  # stuffthingmaps
        for split, yr, folder in sorted(items):
            sources.append(Source(split, folder, _image_dir(root, images, split, yr)))
        cats = tuple(
            Category(i, n, None, i <= 91, None) for i, n in sorted(COCO_STUFF_NAMES.items()) if i not in COCO_UNUSED_THING_IDS
        )
        name = LAYOUT_NAMES["stuffthingmaps"]
    splits = [s.split for s in sources]
    if len(set(splits)) != len(splits):
        raise LayoutNotFoundError(
            f"{root}: several annotation files for one split ({', '.join(splits)}); name one with annotations="
        )
    if images is not None and not _is_under(images, root):
        image_root = images
    return Layout(name, root, image_root, release, tuple(sources), cats, categories_file)


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- listing


def _normalise_split(split: str | None) -> str | None:
    if split is None:
        return None
    m = _SPLIT_DIR.match(split)
    return m.group("split") if m else split


class _ImageIndex:
    """Images and per-image annotation spans gathered while one JSON streams past.

    Image ids are kept as the JSON has them (int, or str in some panoptic JSONs); per
    annotation only its image and its byte span are kept.
    """

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind
        self.info: dict = {}  # image id -> (width, height, file_name)
        self.png: dict = {}  # panoptic: image id -> PNG file name
        self._dense: dict = {}  # image id -> dense index, in order of first sight
        self._ann_image = array("q")  # 8 bytes per annotation, not a Python int object each
        self._ann_start = array("q")
        self._ann_length = array("q")

    def _check_id(self, value, where: str, start: int):
        if not (_is_int(value) or isinstance(value, str)):
            raise InputError(self.path, f"{where}: image id must be an integer, found {value!r} (byte {start})")
        return value

    def on_image(self, i, v, start, end) -> None:
        if not isinstance(v, dict):
            raise InputError(self.path, f"images[{i}] is not an object (byte {start})")
        for key in ("id", "width", "height"):
            if key not in v:
                raise InputError(self.path, f"images[{i}] has no {key!r} (byte {start})")
        image = self._check_id(v["id"], f"images[{i}]", start)
        w, h = v["width"], v["height"]
        if not (_is_int(w) and _is_int(h) and w > 0 and h > 0):
            raise InputError(self.path, f"image {image}: width and height must be positive integers, found {w!r} x {h!r}")
        if image in self.info:
            raise InputError(self.path, f"image id {image} appears twice in 'images'")
        fn = v.get("file_name")
        self.info[image] = (w, h, fn if isinstance(fn, str) else None)

    def on_annotation(self, i, v, start, end) -> None:
        if not isinstance(v, dict) or "image_id" not in v:
            raise InputError(self.path, f"annotations[{i}] is not an object with an 'image_id' (byte {start})")
        image = self._check_id(v["image_id"], f"annotations[{i}]", start)
        if self.kind == "panoptic":
            fn = v.get("file_name")
            if not isinstance(fn, str):
                raise InputError(self.path, f"the annotation of image {image} has no PNG 'file_name'")
            if image in self.png:
                raise InputError(self.path, f"image {image} has two entries in 'annotations'")
            self.png[image] = fn
        self._ann_image.append(self._dense.setdefault(image, len(self._dense)))
        self._ann_start.append(start)
        self._ann_length.append(end - start)

    def scan(self, chunk_size: int = 1 << 24) -> dict:
        """Stream the JSON; returns its other top-level keys (see :meth:`JsonStream.walk`)."""
        with JsonStream(self.path, chunk_size) as js:
            top = js.walk({"images": (self.on_image, True), "annotations": (self.on_annotation, False)})
        if "annotations" not in top["__keys__"]:
            raise InputError(self.path, "has no 'annotations' list")
        if "images" not in top["__keys__"] and self.kind != "panoptic":
            raise InputError(self.path, "has no 'images' list (width and height of every image are needed)")
        if self.kind != "panoptic":
            dangling = [image for image in self._dense if image not in self.info]
            if dangling:
                raise InputError(
                    self.path, f"{len(dangling)} image id(s) have annotations but no entry in 'images', e.g. {dangling[0]!r}"
                )
        return top

    def spans(self) -> dict:
        """Per image id: the int64 (offset, length) pairs of its records, in file order."""
        if not self._ann_image:
            return {}
        image = np.frombuffer(self._ann_image, dtype=np.int64)
        pairs = np.stack([np.frombuffer(self._ann_start, np.int64), np.frombuffer(self._ann_length, np.int64)], axis=1)
        self._ann_start, self._ann_length = array("q"), array("q")
        order = np.argsort(image, kind="stable")
        image, pairs = image[order], pairs[order]
        cuts = np.flatnonzero(np.diff(image)) + 1
        bounds = zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(image)]]).tolist())
        ids = list(self._dense)
        out = {ids[int(image[a])]: pairs[a:b].tobytes() for a, b in bounds}
        del image
        self._ann_image = array("q")
        return out


def list_images(layout: Layout, split: str | None = None) -> list[Task]:
    """One :class:`Task` per image of the layout, sorted by (split, image id).

    Streams every annotation JSON once (see the module docstring for memory).
    """
    split = _normalise_split(split)
    tasks: list[Task] = []
    for si, src in enumerate(layout.sources):
        if split is not None and src.split != split:
            continue
        if layout.name == LAYOUT_NAMES["stuffthingmaps"]:
            for png in sorted(src.annotation.glob("*.png")):
                image_id = str(int(png.stem)) if png.stem.isdigit() else png.stem
                tasks.append(Task(image_id, src.split, si, file_name=f"{png.stem}.jpg", png=png.name))
            continue
        kind = "panoptic" if layout.name == LAYOUT_NAMES["panoptic"] else "instances"
        main = _ImageIndex(src.annotation, kind)
        top = main.scan()
        if "categories" in top and kind != "panoptic":
            known = {c.id: c.name for c in layout.categories}
            if any(known.get(c.id) != c.name for c in _parse_categories(top["categories"], src.annotation, True)):
                raise InputError(src.annotation, "its 'categories' changed since the layout was detected; detect it again")
        info, spans = main.info, main.spans()
        stuff_spans: dict = {}
        if src.stuff is not None:
            extra = _ImageIndex(src.stuff, "stuff")
            extra.scan()
            stuff_spans = extra.spans()
            for image, (w, h, fn) in extra.info.items():
                if image not in info:
                    info[image] = (w, h, fn)
                elif info[image][:2] != (w, h):
                    other = f"{info[image][0]}x{info[image][1]}"
                    raise InputError(src.stuff, f"image {image} is {w}x{h} here but {other} in {src.annotation.name}")
        ids = set(info) | set(main.png)
        for image in ids:
            w, h, fn = info.get(image, (-1, -1, None))
            png = main.png.get(image)
            if fn is None and png is not None:
                fn = Path(png).stem + ".jpg"
            tasks.append(Task(str(image), src.split, si, w, h, fn, spans.get(image, b""), stuff_spans.get(image, b""), png))
    tasks.sort(key=lambda t: (t.split, t.image_id))
    for a, b in zip(tasks, tasks[1:]):
        if a.image_id == b.image_id and a.split == b.split:
            raise InputError(layout.sources[b.source].annotation, f"image id {b.image_id} appears twice")
    return tasks


# --------------------------------------------------------------------------- masks from annotations


def _load_records(path: Path, spans: bytes) -> list:
    """Read back and parse the JSON records at the given byte spans of ``path``."""
    if not spans:
        return []
    pairs = np.frombuffer(spans, dtype=np.int64).reshape(-1, 2).tolist()
    out = []
    try:
        with open(path, "rb") as f:
            for start, length in pairs:
                f.seek(start)
                data = f.read(length)
                try:
                    out.append(json.loads(data))
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    problem = f"the record at byte {start} no longer parses ({exc}); did the file change during the conversion?"
                    raise InputError(path, problem) from None
    except FileNotFoundError:
        raise InputError(path, "file not found (removed during the conversion?)") from None
    return out


def rle_counts(counts: str | bytes) -> np.ndarray:
    """Decode COCO's compressed RLE string into run lengths.

    The string holds one variable-length number per run, 5 bits per character (offset 48, bit
    0x20 = more characters follow, bit 0x10 of the last one = negative); from the third run on
    each number is the difference to the run two before (pycocotools ``rleFrString``).

    Returns
    -------
    ndarray of int64
        Run lengths, alternating background and foreground, starting with background, in
        column-major (Fortran) order.

    Raises
    ------
    ValueError
        For characters outside ``'0'..'o'``, a truncated last number, or numbers too large.

    Examples
    --------
    >>> rle_counts("5220").tolist()  # an 11 x 1 mask: 5 off, 2 on, 2 off, 2 on
    [5, 2, 2, 2]
    """
    data = counts.encode("latin-1") if isinstance(counts, str) else bytes(counts)
    c = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, np.int64)
    if (c < 0).any() or (c > 63).any():
        raise ValueError("characters outside '0'..'o'")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("the last run length is truncated")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    k = np.arange(c.size) - np.repeat(starts, ends - starts + 1)
    if k.max() > 7:
        raise ValueError("a run length has more than 40 bits")
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * (k[ends][negative] + 1))
    out = x.copy()
    out[1::2] = np.cumsum(x[1::2])
    out[2::2] = np.cumsum(x[2::2])
    return out


def _annotation_rle(ann: dict, h: int, w: int, path: Path, what: str):
    """The pycocotools RLE of one annotation's ``segmentation`` (``annToRLE``), validated first:
    pycocotools itself accepts malformed input silently (odd-length polygons) or reads out of
    bounds (RLE counts that do not add up to the image)."""
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        if not seg:
            return None
        for j, poly in enumerate(seg):
            if not isinstance(poly, list):
                raise InputError(path, f"{what}: polygon #{j} is not a list of coordinates")
            if len(poly) < 6 or len(poly) % 2:
                raise InputError(
                    path,
                    f"{what}: polygon #{j} has {len(poly)} coordinate(s) ({len(poly) / 2:g} points); "
                    "a polygon needs at least 3 points, as x, y pairs",
                )
            try:
                arr = np.asarray(poly, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError(path, f"{what}: polygon #{j} has coordinates that are not numbers") from None
            if not np.isfinite(arr).all():
                raise InputError(path, f"{what}: polygon #{j} has coordinates that are not finite numbers")
            limit = 10 * max(h, w) + 100  # pycocotools rasterises the whole outline: keep it bounded
            if np.abs(arr).max() > limit:
                far = arr[np.abs(arr).argmax()]
                raise InputError(path, f"{what}: polygon #{j} has coordinate {far:g}, far outside the {w}x{h} image")
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        size = seg["size"]
        if not (isinstance(size, list) and len(size) == 2 and list(size) == [h, w]):
            raise InputError(path, f"{what}: RLE size {size!r} is not the image's [height, width] = [{h}, {w}]")
        counts = seg["counts"]
        if isinstance(counts, list):
            if not all(_is_int(c) and c >= 0 for c in counts):
                raise InputError(path, f"{what}: RLE counts must be non-negative integers")
            total = sum(counts)
            if total != h * w:
                raise InputError(path, f"{what}: RLE counts add up to {total} pixels, the image has {h} x {w} = {h * w}")
            return mask_utils.frPyObjects(seg, h, w)
        if isinstance(counts, str):
            try:
                runs = rle_counts(counts)
            except ValueError as exc:
                raise InputError(path, f"{what}: malformed compressed RLE counts ({exc})") from None
            if (runs < 0).any() or int(runs.sum()) != h * w:
                raise InputError(path, f"{what}: compressed RLE counts add up to {int(runs.sum())} pixels, the image has {h * w}")
            return {"size": [h, w], "counts": counts.encode("ascii")}
        raise InputError(path, f"{what}: RLE 'counts' must be a list of integers or a string, found {type(counts).__name__}")
    found = str(seg)[:60]
    raise InputError(path, f"{what}: 'segmentation' must be a list of polygons or an RLE {{size, counts}}, found {found!r}")


@lru_cache(maxsize=8)
def _category_map(layout: Layout) -> dict[int, Category]:
    return {c.id: c for c in layout.categories}


def _category_ids(layout: Layout) -> str:
    ids = [c.id for c in layout.categories]
    return f"{min(ids)}..{max(ids)}, {len(ids)} ids" if ids else "none"


def _image_row(layout: Layout, task: Task, src: Source, h: int, w: int, annotation: Path):
    image = src.image_dir / task.file_name if task.file_name else None
    problems = []
    file = None
    if image is not None and image.is_file():
        hw = image_size(image)
        if hw != (h, w):
            raise InputError(annotation, f"image {task.image_id} is {w}x{h} here, but {image.name} is {hw[1]}x{hw[0]}")
        file = image.relative_to(layout.image_root).as_posix()
    elif image is not None:
        problems.append((str(image), "image file missing; annotation converted without it"))
    else:
        problems.append((str(annotation), f"image {task.image_id} has no file_name; annotation converted without it"))
    try:
        ann_rel = annotation.relative_to(layout.root).as_posix()
    except ValueError:
        ann_rel = str(annotation)
    row = image_row(task.image_id, task.split, (h, w), file, ann_rel)
    return row, problems


def _read_json_annotations(layout: Layout, task: Task) -> ConvertedImage:
    src = layout.sources[task.source]
    h, w = task.height, task.width
    cats = _category_map(layout)
    rows = SegmentRows(task.image_id)
    problems: list[tuple[str, str]] = []
    records = [(ann, 1, src.annotation) for ann in _load_records(src.annotation, task.spans)]
    if src.stuff is not None:
        records += [(ann, 0, src.stuff) for ann in _load_records(src.stuff, task.stuff_spans)]
    items = []  # (group, annotation id, category, rle, pre-resolution pixels, ann, path)
    stuff_layout = layout.name == LAYOUT_NAMES["stuff"]
    for ann, group, path in records:
        aid = ann.get("id")
        if not _is_int(aid):
            raise InputError(path, f"an annotation of image {task.image_id} has no integer 'id' (found {aid!r})")
        what = f"annotation {aid} (image {task.image_id})"
        cid = ann.get("category_id")
        if not _is_int(cid) or cid not in cats:
            raise InputError(path, f"{what} has category_id {cid!r}, which is not in 'categories' ({_category_ids(layout)})")
        rle = _annotation_rle(ann, h, w, path, what)
        pre = int(mask_utils.area(rle)) if rle is not None else 0
        if stuff_layout:
            group = 0
        items.append((group, aid, cats[cid], rle, pre, ann, path))
    n = len(items)
    if n > _MAX_SEGMENTS:
        raise InputError(src.annotation, f"image {task.image_id} has {n} annotations; at most {_MAX_SEGMENTS} fit a segment map")
    # segment ids: instances JSON first, then stuff JSON, each by ascending annotation id
    items.sort(key=lambda it: (-it[0], it[1]))
    segmap = np.zeros((h, w), dtype=np.uint8 if n < 256 else np.uint16)
    # painting order, bottom to top: stuff below things, larger below smaller, equal sizes by id
    for idx in sorted(range(n), key=lambda i: (items[i][0], -items[i][4], items[i][1])):
        rle = items[idx][3]
        if rle is None or items[idx][4] == 0:
            continue
        x, y, bw, bh = (int(v) for v in mask_utils.toBbox(rle))
        m = mask_utils.decode(rle)[y : y + bh, x : x + bw].view(bool)
        segmap[y : y + bh, x : x + bw][m] = idx + 1
    areas = np.bincount(segmap.ravel(), minlength=n + 1)[1:]
    boxes = bounding_boxes(segmap, n)
    for idx, (group, aid, cat, rle, pre, ann, path) in enumerate(items):
        area = ann.get("area")
        source_area = float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) else None
        iscrowd = bool(ann.get("iscrowd", 0))
        if pre == 0:
            problems.append((str(path), f"annotation {aid} covers no pixel of the {w}x{h} image (COCO area {area})"))
        thing = bool(cat.is_thing) and group == 1
        rows.add(
            "objects", idx + 1, cat.id, thing and not iscrowd, areas[idx], boxes[idx], source_instance=aid,
            iscrowd=iscrowd, source_area=source_area, pixels_lost=pre - int(areas[idx]),
        )  # fmt: skip
    row, missing = _image_row(layout, task, src, h, w, src.annotation)
    return ConvertedImage(image=row, segments=rows.cols, masks={"objects": segmap}, classes=[], problems=problems + missing)


def _panoptic_ids(rgb: np.ndarray) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG: ``R + 256 G + 256^2 B`` as int32, (H, W)."""
    ids = rgb[..., 2].astype(np.int32) << 16
    ids |= rgb[..., 1].astype(np.int32) << 8
    ids |= rgb[..., 0]
    return ids


def _read_panoptic(layout: Layout, task: Task) -> ConvertedImage:
    src = layout.sources[task.source]
    cats = _category_map(layout)
    rows = SegmentRows(task.image_id)
    problems: list[tuple[str, str]] = []
    if task.png is None:  # listed in images, absent from annotations
        if task.width < 0:
            raise InputError(src.annotation, f"image {task.image_id} has neither an annotation nor a size")
        segmap = np.zeros((task.height, task.width), np.uint8)
        problem = f"image {task.image_id} is listed in 'images' but has no entry in 'annotations'; converted as unlabeled"
        problems.append((str(src.annotation), problem))
        row, missing = _image_row(layout, task, src, task.height, task.width, src.annotation)
        return ConvertedImage(image=row, segments=rows.cols, masks={"objects": segmap}, problems=problems + missing)
    png = src.png_dir / task.png
    ann = _load_records(src.annotation, task.spans)[0]
    infos = ann.get("segments_info")
    if not isinstance(infos, list):
        raise InputError(src.annotation, f"annotation of image {task.image_id} has no 'segments_info' list")
    rgb = read_png(png, expect="rgb8")
    h, w = rgb.shape[:2]
    if task.width >= 0 and (h, w) != (task.height, task.width):
        raise InputError(png, f"PNG is {w}x{h}, but 'images' states {task.width}x{task.height} for image {task.image_id}")
    listed = []
    for j, s in enumerate(infos):
        if not isinstance(s, dict) or not _is_int(s.get("id")) or not _is_int(s.get("category_id")):
            raise InputError(src.annotation, f"image {task.image_id}: segments_info[{j}] needs integer 'id' and 'category_id'")
        if s["category_id"] not in cats:
            raise InputError(src.annotation, f"image {task.image_id}: segment {s['id']} has category_id {s['category_id']}, "
                                             f"which is not in the categories ({_category_ids(layout)})")  # fmt: skip
        if not 0 < s["id"] < 1 << 24:
            raise InputError(src.annotation, f"image {task.image_id}: segment id {s['id']} is not in 1..16777215 (0 is void)")
        listed.append(s["id"])
    n = len(listed)
    if n > _MAX_SEGMENTS:
        raise InputError(src.annotation, f"image {task.image_id} has {n} segments; at most {_MAX_SEGMENTS} fit a segment map")
    listed_arr = np.asarray(listed, dtype=np.int64)
    if len(np.unique(listed_arr)) != n:
        dup = [v for v in listed if listed.count(v) > 1][0]
        raise InputError(src.annotation, f"image {task.image_id}: segment id {dup} is listed twice in segments_info")
    order = np.argsort(listed_arr)
    keys = np.concatenate([[0], listed_arr[order]])
    ids = _panoptic_ids(rgb)
    pos = np.searchsorted(keys, ids)
    np.minimum(pos, n, out=pos)
    bad = keys[pos] != ids
    if bad.any():
        values, counts = np.unique(ids[bad], return_counts=True)
        shown = ", ".join(f"{v} ({c} px)" for v, c in zip(values[:5].tolist(), counts[:5].tolist()))
        raise InputError(png, f"segment id(s) {shown} in the PNG are not listed in segments_info of {src.annotation.name}")
    counts = np.bincount(pos.ravel(), minlength=n + 1)
    absent = listed_arr[order][counts[1:] == 0]
    if absent.size:
        listed_in = f"segments_info of {src.annotation.name}"
        raise InputError(png, f"segment id(s) {absent[:5].tolist()} listed in {listed_in} have no pixel in the PNG")
    lut = np.zeros(n + 1, dtype=np.uint8 if n < 256 else np.uint16)
    lut[1:] = order + 1  # JSON order gives the segment ids
    segmap = lut[pos]
    areas = np.zeros(n, np.int64)
    areas[order] = counts[1:]
    boxes = bounding_boxes(segmap, n)
    for j, s in enumerate(infos):
        cat = cats[s["category_id"]]
        iscrowd = bool(s.get("iscrowd", 0))
        area = s.get("area")
        source_area = float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) else None
        if source_area is not None and source_area != areas[j]:
            problem = f"image {task.image_id}: segment {s['id']} has area {area} in the JSON, {areas[j]} pixels in {png.name}"
            problems.append((str(src.annotation), problem))
        rows.add("objects", j + 1, cat.id, bool(cat.is_thing) and not iscrowd, areas[j], boxes[j],
                 source_instance=s["id"], iscrowd=iscrowd, source_area=source_area)  # fmt: skip
    row, missing = _image_row(layout, task, src, h, w, png)
    return ConvertedImage(image=row, segments=rows.cols, masks={"objects": segmap}, problems=problems + missing)


def _read_stuffthingmap(layout: Layout, task: Task) -> ConvertedImage:
    src = layout.sources[task.source]
    png = src.annotation / task.png
    labels = read_png(png, expect="grey8")
    counts = np.bincount(labels.ravel(), minlength=256)
    bad = np.flatnonzero(counts[182:255])
    if bad.size:
        raise InputError(png, f"unknown label value(s) {(bad + 182).tolist()[:5]}: COCO-Stuff maps hold category id - 1 "
                              f"(0..181) and {COCO_STUFF_UNLABELED} for unlabeled")  # fmt: skip
    lut = np.arange(1, 257, dtype=np.int64)
    lut[COCO_STUFF_UNLABELED] = 0
    segmap = lut.astype(np.uint8)[labels]
    rows = SegmentRows(task.image_id)
    boxes = bounding_boxes(segmap, 182)
    observed = []
    for value in np.flatnonzero(counts[:182]):
        cid = int(value) + 1
        rows.add("objects", cid, cid, False, counts[value], boxes[cid - 1])
        observed.append({"source_id": cid, "name": COCO_STUFF_NAMES[cid], "source_name": COCO_STUFF_NAMES[cid],
                         "is_thing": cid <= 91})  # fmt: skip
    h, w = labels.shape
    row, missing = _image_row(layout, task, src, h, w, png)
    return ConvertedImage(image=row, segments=rows.cols, masks={"objects": segmap}, classes=observed, problems=missing)


# --------------------------------------------------------------------------- module API


def read_image(layout: Layout, task: Task) -> ConvertedImage:
    """Convert one image of ``layout``; raises :class:`InputError` naming the bad file."""
    if layout.name == LAYOUT_NAMES["panoptic"]:
        return _read_panoptic(layout, task)
    if layout.name == LAYOUT_NAMES["stuffthingmaps"]:
        return _read_stuffthingmap(layout, task)
    return _read_json_annotations(layout, task)


def read(root: str | Path, split: str | None = None, **options):
    """Yield one :class:`~segdata.convert.ConvertedImage` per image of the COCO dataset at ``root``.

    The in-memory counterpart of ``segdata convert coco``, for notebooks: masks are returned as
    arrays, not written. ``options`` are those of :func:`detect`.
    """
    layout = detect(root, **options)
    for task in list_images(layout, split=split):
        yield read_image(layout, task)


def layers(layout: Layout) -> list[dict]:
    """The one layer every COCO layout produces."""
    what = {
        LAYOUT_NAMES["instances"]: "COCO instances, overlaps resolved (smaller on top)",
        LAYOUT_NAMES["things-stuff"]: "COCO instances and COCO-Stuff stuff, overlaps resolved "
        "(things on top, then smaller on top)",
        LAYOUT_NAMES["stuff"]: "COCO-Stuff stuff regions",
        LAYOUT_NAMES["panoptic"]: "COCO panoptic segments (things and stuff)",
        LAYOUT_NAMES["stuffthingmaps"]: "COCO-Stuff class regions (things and stuff)",
    }[layout.name]
    return [{"name": "objects", "parent": None, "description": what}]


def build_classes(layout: Layout, observations: pd.DataFrame) -> pd.DataFrame:
    """The class table: every category of the layout, seen or not (plus, for COCO-Stuff maps,
    any of COCO's never-annotated thing ids that does occur)."""
    cats = {c.id: c for c in layout.categories}
    if not observations.empty:
        for sid in sorted(set(int(s) for s in observations["source_id"])):
            if sid not in cats and sid in COCO_STUFF_NAMES:
                cats[sid] = Category(sid, COCO_STUFF_NAMES[sid], None, sid <= 91, None)
    ids = sorted(cats)
    return pd.DataFrame(
        {
            "class_id": pd.array(ids, dtype="int32"),
            "name": [cats[i].name for i in ids],
            "source_id": pd.array(ids, dtype="int64"),
            "source_name": [cats[i].name for i in ids],
            "is_thing": pd.array([cats[i].is_thing for i in ids], dtype="boolean"),
            "ignore": False,
            "train_id": pd.array([None] * len(ids), dtype="Int32"),
            "color": [cats[i].color or class_color(i) for i in ids],
        }
    )


# --------------------------------------------------------------------------- exporter: COCO panoptic


@dataclass(frozen=True)
class _ExportTask:
    image_id: str
    split: str
    json_id: int
    width: int
    height: int
    png: str
    mask: str | None  # path of the objects mask, None when the image has none
    segments: bytes  # int64 rows (segment_id, class_id, iscrowd) of the image's objects segments with a class row


def _export_one(task: _ExportTask, out_dir: str) -> tuple:
    """Worker: write one panoptic PNG; return (split, json id, images entry, annotation JSON text, counts)."""
    seg = np.frombuffer(task.segments, np.int64).reshape(-1, 3)
    if task.mask is not None:
        segmap = read_segment_map(task.mask)
        if segmap.shape != (task.height, task.width):
            raise InputError(task.mask, f"mask is {segmap.shape[1]}x{segmap.shape[0]}, image is {task.width}x{task.height}")
    else:
        segmap = np.zeros((task.height, task.width), np.uint8)
    max_id = int(segmap.max()) if segmap.size else 0
    size = max(max_id, int(seg[:, 0].max()) if len(seg) else 0) + 1
    keep = np.zeros(size, bool)
    keep[seg[:, 0]] = True
    ids = np.where(keep[segmap], segmap, 0).astype(np.int32)
    unlisted = int(((segmap > 0) & ~keep[segmap]).sum())
    counts = np.bincount(ids.ravel(), minlength=size)
    boxes = bounding_boxes(ids, size - 1)
    segments_info = []
    for sid, cid, crowd in seg.tolist():
        if not keep[sid] or counts[sid] == 0:
            continue
        x, y, bw, bh = boxes[sid - 1].tolist()
        segments_info.append({"id": sid, "category_id": cid, "iscrowd": int(crowd), "bbox": [x, y, bw, bh],
                              "area": int(counts[sid])})  # fmt: skip
    rgb = np.zeros((task.height, task.width, 3), np.uint8)
    rgb[..., 0] = ids & 255
    rgb[..., 1] = (ids >> 8) & 255
    rgb[..., 2] = ids >> 16
    dest = Path(out_dir) / "annotations" / f"panoptic_{task.split}" / task.png
    Image.fromarray(rgb, "RGB").save(dest, compress_level=1)
    image = {"id": task.json_id, "width": task.width, "height": task.height, "file_name": Path(task.png).stem + ".jpg"}
    if str(task.json_id) != task.image_id:
        image["segdata_image_id"] = task.image_id
    annotation = {"segments_info": segments_info, "file_name": task.png, "image_id": task.json_id}
    dropped = len(seg) - len(segments_info)
    return task.split, task.json_id, json.dumps(image), json.dumps(annotation), len(segments_info), dropped, unlisted


def write(dataset, out: str | Path, *, overwrite: bool = False, workers: int | None = None, progress=None) -> dict:
    """Export a unified dataset to COCO panoptic: ``annotations/panoptic_<split>.json`` and the
    RGB PNGs ``annotations/panoptic_<split>/<name>.png`` (id = R + 256 G + 256^2 B, 0 = void),
    as panopticapi and detectron2 read them.

    Every segment of the ``objects`` layer with ``area > 0`` becomes one panoptic segment whose
    id is its ``segment_id`` (instances stay separate; class regions that are not instances
    become segments of their class, which is a stuff category unless the class is a thing);
    ``iscrowd`` is kept, ``area`` and ``bbox`` are counted from the mask. Categories are the
    class table (``id`` = ``class_id``, ``isthing`` from ``is_thing``, where null: whether any
    segment of the class is an instance; ``color`` from the class colour). Image ids are the
    dataset's when they are all decimal numbers (COCO), otherwise 1..N in (split, image id)
    order with the dataset's id kept as ``segdata_image_id`` (detectron2 needs integer ids).
    PNGs are named after the image file (``000000397133.png``), or the image id where the file
    is unknown or names collide; ``images[].file_name`` is that name with ``.jpg``.

    Parameters
    ----------
    dataset : Dataset or path
        A unified-format dataset.
    out : path
        Output directory, written atomically (must not exist unless ``overwrite``).
    workers : int, optional
        Processes; default all cores.
    progress : callable(done, total), optional

    Returns
    -------
    dict
        ``path``, ``images``, ``segments`` (written), ``dropped_segments`` (rows of area 0,
        which a panoptic PNG cannot hold), ``unlisted_pixels`` (mask pixels without a segment
        row of a class in the class table, written as void), ``categories``, ``splits`` (JSON
        path per split), ``seconds``.
    """
    start = time.perf_counter()
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    if "objects" not in ds.layers:
        raise FormatError(f"{ds.path}: no 'objects' layer to export (layers: {', '.join(ds.layers) or 'none'})")
    classes = ds.classes
    images = ds.images.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    segments = ds.segments
    objects = segments[segments["layer"] == "objects"]
    instance_classes = set(objects.loc[objects["is_instance"].astype(bool), "class_id"].tolist())
    categories = []
    for c in classes.sort_values("class_id").itertuples(index=False):
        thing = c.is_thing if isinstance(c.is_thing, (bool, np.bool_)) else int(c.class_id) in instance_classes
        color = text_or_none(c.color)
        entry = {"id": int(c.class_id), "name": c.name, "isthing": int(bool(thing))}
        if color and re.fullmatch(r"#[0-9a-fA-F]{6}", color):
            entry["color"] = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
        categories.append(entry)

    ids = images["image_id"].tolist()
    decimal = all(isinstance(i, str) and i.isdigit() and str(int(i)) == i for i in ids)
    json_ids = [int(i) for i in ids] if decimal else list(range(1, len(ids) + 1))
    objects = objects[objects["class_id"].isin([c["id"] for c in categories])]  # others are written as void
    groups = objects.groupby("image_id", sort=False).indices
    seg_cols = objects[["segment_id", "class_id", "iscrowd"]].to_numpy(dtype=np.int64)
    names = [Path(f).stem if (f := text_or_none(r.file)) else r.image_id for r in images.itertuples(index=False)]
    by_image_id = images.groupby("split").size().to_dict()
    clash = {split for split, group in images.assign(_n=names).groupby("split") if group["_n"].nunique() != by_image_id[split]}
    tasks = []
    for k, row in enumerate(images.itertuples(index=False)):
        stem = row.image_id if row.split in clash else names[k]
        has_mask = "objects" in (text_or_none(row.layers) or "").split(",")
        rows = groups.get(row.image_id)
        seg = seg_cols[rows] if rows is not None else np.zeros((0, 3), np.int64)
        tasks.append(_ExportTask(row.image_id, row.split, json_ids[k], int(row.width), int(row.height), f"{stem}.png",
                                 str(ds.path / mask_relpath("objects", row.split, row.image_id)) if has_mask else None,
                                 np.ascontiguousarray(seg).tobytes()))  # fmt: skip
    splits = sorted(set(images["split"]))
    with atomic_output(out, overwrite=overwrite) as tmp:
        for split in splits:
            (tmp / "annotations" / f"panoptic_{split}").mkdir(parents=True)
        per_split: dict[str, list] = {s: [] for s in splits}
        n_seg = n_dropped = n_unlisted = 0
        done = 0
        if progress:
            progress(0, len(tasks))
        for split, jid, image, annotation, written, dropped, unlisted in parallel_map(
            partial(_export_one, out_dir=str(tmp)), tasks, workers=workers
        ):
            per_split[split].append((jid, image, annotation))
            n_seg += written
            n_dropped += dropped
            n_unlisted += unlisted
            done += 1
            if progress:
                progress(done, len(tasks))
        source = ds.manifest.get("source", {}).get("layout", "unknown")
        info = json.dumps({"description": f"{ds.name}, exported by segdata {__version__} from {source}", "version": "1.0"})
        cats_text = ", ".join(json.dumps(c) for c in categories)
        paths = {}
        for split, items in per_split.items():
            items.sort(key=lambda it: it[0])
            path = tmp / "annotations" / f"panoptic_{split}.json"
            with open(path, "w", encoding="utf-8") as f:
                f.write(f'{{"info": {info}, "licenses": [], "images": [')
                f.write(", ".join(it[1] for it in items))
                f.write('], "annotations": [')
                f.write(", ".join(it[2] for it in items))
                f.write(f'], "categories": [{cats_text}]}}')
            paths[split] = str(Path(out) / "annotations" / path.name)
    return {
        "path": str(out),
        "images": len(tasks),
        "segments": n_seg,
        "dropped_segments": n_dropped,
        "unlisted_pixels": n_unlisted,
        "categories": len(categories),
        "splits": paths,
        "seconds": round(time.perf_counter() - start, 3),
    }

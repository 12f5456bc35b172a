"""Class vocabularies: unified ``class_id`` -> training id, the one mapping every trainer reads.

A :class:`Vocabulary` maps the unified class ids of a dataset (1-based, 0 = unlabeled, see
:mod:`segdata.format`) onto a training id space ``0..K-1``: one :class:`VocabEntry` per training
id, holding the class ids merged into it. Every class in no entry, every class flagged ``ignore``
in ``classes.parquet`` and ``class_id`` 0 map to the vocabulary's ``ignore_index``. A vocabulary
can hold any number of classes (full ADE20K's 3,688 included); only the label-PNG export caps it
at 255 (8-bit labels, 255 = ignore; :mod:`segdata.converters.label_png`).

Where a vocabulary comes from:

- a vocabulary file, ``vocab.json`` (:meth:`Vocabulary.from_file`, :meth:`Vocabulary.to_file`);
- the dataset's own training ids, ``classes.parquet``'s ``train_id`` column
  (:meth:`Vocabulary.from_train_ids`): Cityscapes trainId 0..18, the SceneParsing index - 1
  (0..149), VOC's index 0..20;
- ``segdata vocab`` (:func:`segdata.analyses.vocabulary.build_vocabulary`): the top K classes by
  pixel share or the fewest reaching a pixel coverage, the rule behind ADE20K's 150;
- the default (:meth:`Vocabulary.default`): every class not flagged ``ignore``, in ``class_id``
  order.

"Train id" means one thing throughout segdata: an index ``0..K-1`` into the class list a network
is trained on. ``classes.parquet``'s ``train_id`` is the train id of the vocabulary the source
itself defines (null where it defines none, as in full ADE20K and COCO; 255 where the source says
"ignored in training", Cityscapes' trainId 255); a vocabulary entry's ``train_id`` is the train id
of a vocabulary of the user's choice. :meth:`Vocabulary.from_train_ids` builds the source's own
vocabulary, whose lookup gives back ``classes.parquet``'s ``train_id`` for every class (null and
255 both give ``ignore_index``, which is 255 unless asked otherwise).

The lookup table (:meth:`Vocabulary.lookup`) is an array indexed by ``class_id``:
``train = lut[semantic]``. It is ``uint16`` when ``ignore_index`` is in 0..65535, else ``int32``.
``ignore_index`` defaults to 255 when the vocabulary has at most 255 classes (mmsegmentation's,
detectron2's and Cityscapes' convention) and to 65535 above (the largest uint16); any integer
outside ``0..K-1`` may be given (-1, PyTorch's -100).

Examples
--------
>>> v = Vocabulary((VocabEntry(0, "road", (7,)), VocabEntry(1, "vehicle", (26, 27))))
>>> v.num_classes, v.names, v.ignore_index
(2, ['road', 'vehicle'], 255)
>>> lut = v.lookup(30)  # class ids 0..30
>>> lut.dtype.name, lut[[0, 7, 26, 27, 30]].tolist()
('uint16', [255, 0, 1, 1, 255])
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .format import CLASSES_FILE, text_or_none

VOCAB_FORMAT = "segdata-vocab"
VOCAB_VERSION = 1
VOCAB_FILE = "vocab.json"
IGNORE_INDEX = 255  #: default ignore_index of a vocabulary of at most 255 classes
LARGE_IGNORE_INDEX = 65535  #: default ignore_index above 255 classes (the largest uint16)
SOURCE_TRAIN_IGNORE = 255  #: ``classes.parquet`` train_id meaning "ignored in training" (Cityscapes)
_ENTRY_KEYS = {"train_id", "name", "class_ids", "color"}
_FILE_KEYS = {"format", "format_version", "ignore_index", "classes"}
_INT32 = np.iinfo(np.int32)


@dataclass(frozen=True)
class VocabEntry:
    """One training class: its ``train_id`` (0-based), ``name``, the unified ``class_ids``
    merged into it (at least one, each >= 1), and an optional ``color`` (``#rrggbb``)."""

    train_id: int
    name: str
    class_ids: tuple[int, ...]
    color: str | None = None

    def as_dict(self) -> dict:
        out = {"train_id": self.train_id, "name": self.name, "class_ids": list(self.class_ids)}
        if self.color is not None:
            out["color"] = self.color
        return out

    to_dict = as_dict


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_color(value) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 7
        and value[0] == "#"
        and all(ch in "0123456789abcdefABCDEF" for ch in value[1:])
    )


def default_ignore_index(num_classes: int) -> int:
    """255 for at most 255 classes, 65535 up to 65535 classes, -1 above: always outside the
    train ids ``0..num_classes-1``."""
    if num_classes <= IGNORE_INDEX:
        return IGNORE_INDEX
    return LARGE_IGNORE_INDEX if num_classes <= LARGE_IGNORE_INDEX else -1


@dataclass(frozen=True)
class Vocabulary:
    """A class vocabulary: unified class ids -> train ids ``0..K-1``, everything else ``ignore_index``.

    Attributes
    ----------
    entries : tuple of VocabEntry
        Sorted by ``train_id``, which runs ``0..K-1`` without gaps; any K >= 0.
    source : str
        Where the vocabulary comes from (a file, a class table), named in error messages.
    ignore_index : int, optional
        The value unmapped classes get; outside ``0..K-1``, in the int32 range. Default
        :func:`default_ignore_index` (255, or 65535 above 255 classes).

    Raises
    ------
    InputError
        Naming ``source``: train ids not ``0..K-1``, an empty name, a class id < 1 or in two
        entries, a bad colour, an ``ignore_index`` that is a train id.
    """

    entries: tuple[VocabEntry, ...]
    source: str = "<vocabulary>"
    ignore_index: int | None = None

    def __post_init__(self):
        entries = tuple(sorted(self.entries, key=lambda e: e.train_id))
        object.__setattr__(self, "entries", entries)
        src = self.source
        ids = [e.train_id for e in entries]
        if ids != list(range(len(entries))):
            gaps = sorted(set(range(len(entries))) - set(ids))[:10]
            raise InputError(
                src,
                f"train ids must be 0..{len(entries) - 1}, each once; found {ids[:20]}"
                + ("..." if len(ids) > 20 else "")
                + (f" (missing {gaps})" if gaps else ""),
            )
        owner: dict[int, int] = {}
        for e in entries:
            if not isinstance(e.name, str) or not e.name.strip():
                raise InputError(src, f"train id {e.train_id}: name must be a non-empty string, got {e.name!r}")
            if not e.class_ids:
                raise InputError(src, f"train id {e.train_id} ({e.name}): class_ids is empty")
            for cid in e.class_ids:
                if not _is_int(cid) or cid < 1:
                    raise InputError(
                        src,
                        f"train id {e.train_id} ({e.name}): class id {cid!r} is not an integer >= 1 (0 is unlabeled, always ignore)",
                    )
                if cid in owner:
                    raise InputError(src, f"class id {cid} is in train id {owner[cid]} and in train id {e.train_id}")
                owner[cid] = e.train_id
            if e.color is not None and not _is_color(e.color):
                raise InputError(src, f"train id {e.train_id} ({e.name}): color {e.color!r} is not #rrggbb")
        ignore = self.ignore_index
        if ignore is None:
            ignore = default_ignore_index(len(entries))
        if not _is_int(ignore) or not _INT32.min <= ignore <= _INT32.max:
            raise InputError(src, f"ignore_index {ignore!r} is not an integer in the int32 range")
        if 0 <= ignore < len(entries):
            raise InputError(
                src,
                f"ignore_index {ignore} is a train id (0..{len(entries) - 1})",
                f"use a value outside the train ids, e.g. {default_ignore_index(len(entries))} or -1",
            )
        object.__setattr__(self, "ignore_index", int(ignore))

    # ------------------------------------------------------------------ views

    @property
    def num_classes(self) -> int:
        """K, the number of train ids."""
        return len(self.entries)

    @property
    def names(self) -> list[str]:
        """Class names in train id order."""
        return [e.name for e in self.entries]

    @property
    def class_ids(self) -> list[int]:
        """Every unified class id the vocabulary maps, ascending."""
        return sorted(c for e in self.entries for c in e.class_ids)

    def with_ignore_index(self, ignore_index: int) -> Vocabulary:
        """The same vocabulary with another ``ignore_index``."""
        return replace(self, ignore_index=ignore_index)

    # ------------------------------------------------------------------ construction

    @classmethod
    def default(cls, classes: pd.DataFrame, source: str = "<dataset>", ignore_index: int | None = None) -> Vocabulary:
        """Every class of a class table not flagged ``ignore``, in ``class_id`` order, one train id
        each (0..K-1), named and coloured as in the table. Any number of classes."""
        keep = classes[~classes["ignore"].fillna(False).astype(bool)].sort_values("class_id")
        entries = tuple(
            VocabEntry(i, str(row.name), (int(row.class_id),), text_or_none(row.color))
            for i, row in enumerate(keep.itertuples(index=False))
        )
        return cls(entries, source, ignore_index)

    @classmethod
    def from_train_ids(
        cls, classes: pd.DataFrame, source: str = CLASSES_FILE, ignore_index: int | None = None
    ) -> Vocabulary:
        """The source's own vocabulary, from ``classes.parquet``'s ``train_id`` column.

        Classes with a null ``train_id`` or 255 (the source's "ignored in training", Cityscapes)
        are outside the vocabulary; classes sharing a train id merge into one entry, named and
        coloured as the one with the lowest ``class_id``. ``lookup(classes)`` then gives back the
        ``train_id`` column for every class (null and 255 -> ``ignore_index``, 255 by default).

        Raises
        ------
        InputError
            Naming ``source``: no class has a train id (the source defines none: build one with
            ``segdata vocab --top K``), the train ids are not ``0..K-1`` without gaps, or a class
            flagged ``ignore`` has a train id.
        """
        if "train_id" not in classes.columns:
            raise InputError(source, "the class table has no train_id column")
        tid = pd.array(classes["train_id"], dtype="Int64")
        has = ~pd.isna(tid)
        has &= np.asarray(tid.fillna(SOURCE_TRAIN_IGNORE), dtype=np.int64) != SOURCE_TRAIN_IGNORE
        has = np.asarray(has, dtype=bool)
        rows = classes[has].assign(_tid=np.asarray(tid[has], dtype=np.int64)).sort_values(["_tid", "class_id"])
        if rows.empty:
            raise InputError(
                source,
                "no class has a train_id: the source defines no training ids (full ADE20K, COCO)",
                "build a vocabulary with `segdata vocab DATASET --top K` or use the default one",
            )
        flagged = rows[rows["ignore"].fillna(False).astype(bool)]
        if not flagged.empty:
            r = flagged.iloc[0]
            raise InputError(
                source, f"class {int(r.class_id)} ({r['name']}) is flagged ignore but has train_id {int(r._tid)}"
            )
        entries = []
        for t, group in rows.groupby("_tid", sort=True):
            first = group.iloc[0]
            ids = tuple(int(c) for c in group["class_id"])
            entries.append(VocabEntry(int(t), str(first["name"]), ids, text_or_none(first["color"])))
        return cls(tuple(entries), source, ignore_index)

    @classmethod
    def from_dict(cls, data, source: str = "<vocabulary>") -> Vocabulary:
        """A vocabulary from the JSON object of a vocabulary file (see :meth:`from_file`)."""
        if not isinstance(data, dict) or "classes" not in data:
            raise InputError(source, 'expected a JSON object with a "classes" list')
        unknown = sorted(set(data) - _FILE_KEYS)
        if unknown:
            raise InputError(source, f"unknown key(s) {unknown}")
        if data.get("format", VOCAB_FORMAT) != VOCAB_FORMAT:
            raise InputError(source, f"format is {data['format']!r}, expected {VOCAB_FORMAT!r}")
        if data.get("format_version", VOCAB_VERSION) != VOCAB_VERSION:
            raise InputError(
                source, f"format_version {data['format_version']!r}; this segdata reads version {VOCAB_VERSION}"
            )
        if not isinstance(data["classes"], list):
            raise InputError(source, '"classes" must be a list')
        entries = tuple(_entry_from_dict(item, i, source) for i, item in enumerate(data["classes"]))
        return cls(entries, source, data.get("ignore_index"))

    @classmethod
    def from_file(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary file.

        The file is JSON, one class per line when segdata writes it::

            {
             "format": "segdata-vocab",
             "format_version": 1,
             "ignore_index": 255,
             "classes": [
              {"train_id": 0, "name": "background", "class_ids": [1], "color": "#000000"},
              {"train_id": 1, "name": "vehicle", "class_ids": [7, 8]}
             ]
            }

        ``class_ids`` are unified class ids (several merge into one train id); every other class,
        unlabeled and classes flagged ``ignore`` map to ``ignore_index``. ``format``,
        ``format_version``, ``ignore_index`` (default :func:`default_ignore_index`) and ``color``
        may be left out. Files written before vocabularies could exceed 255 classes (always
        ``ignore_index`` 255) read unchanged.

        Raises
        ------
        InputError
            Naming the file: malformed JSON, unknown keys, train ids not ``0..K-1``, a class id in
            two entries, an ``ignore_index`` that is a train id.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(path, "vocabulary file not found") from None
        except UnicodeDecodeError:
            raise InputError(path, "vocabulary file is not UTF-8 text") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        return cls.from_dict(data, str(path))

    # ------------------------------------------------------------------ output

    def to_dict(self) -> dict:
        """The JSON object of the vocabulary file."""
        return {
            "format": VOCAB_FORMAT,
            "format_version": VOCAB_VERSION,
            "ignore_index": self.ignore_index,
            "classes": [e.as_dict() for e in self.entries],
        }

    def to_file(self, path: str | Path) -> Path:
        """Write the vocabulary file (:meth:`from_file` reads it), one class per line,
        atomically. Returns the path."""
        path = Path(path)
        lines = [
            "{",
            f' "format": {json.dumps(VOCAB_FORMAT)},',
            f' "format_version": {VOCAB_VERSION},',
            f' "ignore_index": {self.ignore_index},',
            ' "classes": [',
            ",\n".join("  " + json.dumps(e.as_dict(), ensure_ascii=False) for e in self.entries),
            " ]",
            "}",
        ]
        if not self.entries:
            del lines[5]
        if path.exists() and not path.is_file():  # /dev/stdout, a FIFO: written as it is, never replaced
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            return path
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        try:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:  # a full disk, a directory at path: leave nothing half-written
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return path

    def lookup(self, classes: pd.DataFrame | int, dtype=None) -> np.ndarray:
        """Lookup table ``train = lut[class_id]``.

        Parameters
        ----------
        classes : DataFrame or int
            A dataset's class table (``class_id``, ``name``, ``ignore``): the vocabulary is
            checked against it. Or the largest class id to look up (nothing checked).
        dtype : numpy dtype, optional
            Default ``uint16`` when ``ignore_index`` is in 0..65535, else ``int32``. Any integer
            dtype holding ``0..K-1`` and ``ignore_index`` (``uint8`` for label PNGs).

        Returns
        -------
        ndarray, shape (N,)
            ``N`` = largest class id of ``classes`` and of the vocabulary, plus one. Index 0
            (unlabeled), classes in no entry and classes flagged ``ignore`` give ``ignore_index``.

        Raises
        ------
        InputError
            A class id of the vocabulary is not in ``classes``, or is flagged ``ignore`` there.
        ValueError
            ``dtype`` cannot hold the train ids or ``ignore_index``.
        """
        if dtype is None:
            dtype = np.uint16 if 0 <= self.ignore_index <= np.iinfo(np.uint16).max else np.int32
        dtype = np.dtype(dtype)
        info = np.iinfo(dtype)
        low, high = min(0, self.ignore_index), max(self.num_classes - 1, self.ignore_index)
        if low < info.min or high > info.max:
            raise ValueError(
                f"{dtype} cannot hold train ids 0..{self.num_classes - 1} and ignore_index {self.ignore_index}"
            )
        mapped = [(c, e) for e in self.entries for c in e.class_ids]
        if isinstance(classes, pd.DataFrame):
            ids = classes["class_id"].astype(int)
            known = dict(zip(ids, classes["ignore"].fillna(False).astype(bool)))
            names = dict(zip(ids, classes["name"]))
            for cid, e in mapped:
                if cid not in known:
                    raise InputError(
                        self.source,
                        f"train id {e.train_id} ({e.name}): class id {cid} is not in the dataset's class table",
                    )
                if known[cid]:
                    raise InputError(
                        self.source,
                        f"train id {e.train_id} ({e.name}): class {cid} ({names[cid]}) is flagged ignore in the dataset and always maps to ignore; remove it",
                    )
            top = max([0, *known])
        else:
            if not _is_int(classes) or classes < 0:
                raise ValueError(f"expected a class table or a largest class id >= 0, got {classes!r}")
            top = int(classes)
        size = max([top, *(c for c, _ in mapped)]) + 1
        lut = np.full(size, self.ignore_index, dtype=dtype)
        if mapped:
            lut[np.array([c for c, _ in mapped], dtype=np.int64)] = [e.train_id for _, e in mapped]
        return lut


def _entry_from_dict(item, index: int, source: str) -> VocabEntry:
    if not isinstance(item, dict):
        raise InputError(
            source, f"classes[{index}] is {type(item).__name__}, expected an object with train_id, name, class_ids"
        )
    unknown = sorted(set(item) - _ENTRY_KEYS)
    if unknown:
        raise InputError(source, f"classes[{index}]: unknown key(s) {unknown}; allowed: {sorted(_ENTRY_KEYS)}")
    missing = sorted({"train_id", "name", "class_ids"} - set(item))
    if missing:
        raise InputError(source, f"classes[{index}]: missing key(s) {missing}")
    if not _is_int(item["train_id"]):
        raise InputError(source, f"classes[{index}]: train_id {item['train_id']!r} is not an integer")
    class_ids = item["class_ids"]
    if not isinstance(class_ids, list):
        raise InputError(source, f"classes[{index}]: class_ids must be a list of integers, got {class_ids!r}")
    return VocabEntry(int(item["train_id"]), item["name"], tuple(class_ids), item.get("color"))


def as_vocabulary(
    vocab: Vocabulary | str | Path | Iterable[VocabEntry | dict], source: str = "<vocabulary>"
) -> Vocabulary:
    """``vocab`` as a :class:`Vocabulary`: itself, read from a file path, or built from entries
    (:class:`VocabEntry` or dicts with ``train_id``, ``name``, ``class_ids``, optional ``color``)."""
    if isinstance(vocab, Vocabulary):
        return vocab
    if isinstance(vocab, (str, Path)):
        return Vocabulary.from_file(vocab)
    entries = tuple(e if isinstance(e, VocabEntry) else _entry_from_dict(e, i, source) for i, e in enumerate(vocab))
    return Vocabulary(entries, source)


def read_vocab(path: str | Path) -> Vocabulary:
    """Read a vocabulary file: :meth:`Vocabulary.from_file`."""
    return Vocabulary.from_file(path)


def write_vocab(path: str | Path, vocab: Vocabulary | Iterable[VocabEntry | dict]) -> Path:
    """Write ``vocab`` (a :class:`Vocabulary`, or entries / dicts with ``train_id``, ``name``,
    ``class_ids``, optional ``color``) to ``path`` in the format :func:`read_vocab` reads,
    one class per line, atomically (:meth:`Vocabulary.to_file`). Returns the path."""
    if not isinstance(vocab, Vocabulary):
        vocab = as_vocabulary(vocab, str(path))
    return vocab.to_file(path)

"""Class maps and the class space the annotations are compared in (indices 0 = unlabeled, 1..n
the classes; see :class:`ClassSpace`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from segdata.errors import FormatError, InputError
from segdata.format import Dataset

# --------------------------------------------------------------------------- class map


def read_class_map(path: str | Path) -> dict[int, int | None]:
    """Read a class map: which class of A each class of B stands for.

    The file is CSV with the header ``b_class_id,a_class_id``; lines starting with ``#`` are
    comments. ``a_class_id`` is a class id of A, ``0`` for "unlabeled", or empty (or ``ignore``)
    to leave the B class out of every figure. B classes the file does not list are left out too,
    and reported as unmapped.

    Returns
    -------
    dict
        ``{b_class_id: a_class_id or None}``; None means "left out".

    Raises
    ------
    InputError
        On a malformed line or a B class listed twice.

    Examples
    --------
    >>> import tempfile, os
    >>> f = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
    >>> _ = f.write("# COCO-Stuff onto ADE\\nb_class_id,a_class_id\\n7,3\\n9,\\n12,0\\n"); f.close()
    >>> read_class_map(f.name)
    {7: 3, 9: None, 12: 0}
    >>> os.unlink(f.name)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "class map not found") from None
    lines = [
        (n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines or [h.strip() for h in lines[0][1].split(",")] != ["b_class_id", "a_class_id"]:
        raise InputError(
            path,
            "a class map starts with the header b_class_id,a_class_id",
            "one line per B class follows: b_class_id,a_class_id (empty a_class_id: leave out)",
        )
    out: dict[int, int | None] = {}
    for lineno, rec in lines[1:]:
        fields = next(csv.reader(io.StringIO(rec)))
        if len(fields) != 2:
            raise InputError(path, f"line {lineno}: expected b_class_id,a_class_id, got {rec!r}")
        b_text, a_text = (f.strip() for f in fields)
        try:
            b = int(b_text)
            a = None if a_text.lower() in ("", "ignore") else int(a_text)
        except ValueError:
            raise InputError(path, f"line {lineno}: class ids must be integers, got {rec!r}") from None
        if b in out:
            raise InputError(path, f"line {lineno}: B class {b} is mapped twice")
        if b < 1 or (a is not None and a < 0):
            raise InputError(path, f"line {lineno}: class ids are >= 1 (a_class_id 0 = unlabeled), got {rec!r}")
        out[b] = a
    return out


# --------------------------------------------------------------------------- the class space


@dataclass(frozen=True)
class ClassSpace:
    """The classes the annotations are compared in, indexed compactly.

    Index 0 is unlabeled, 1..n the classes of A (and, without a class map, the classes only B
    has) in ascending ``class_id``, and, when a class map is used, index n + 1 the unmapped B
    classes (``class_id`` -1, flagged ignore).

    Attributes
    ----------
    class_ids : ndarray of int64, shape (K,)
        ``class_ids[index]``; 0 for unlabeled, -1 for unmapped.
    names : tuple of str
    ignore : ndarray of bool, shape (K,)
        Ignore flag (A's table for A's classes, B's for the classes only B has).
    colors : tuple of str
        ``#rrggbb``.
    unmapped : int or None
        Index of the unmapped B classes, None without a class map.
    unlabeled : ndarray of int64
        Class ids that stand for "no annotation" and map to index 0 (Cityscapes' own
        ``unlabeled``, labelId 0); sorted.
    """

    class_ids: np.ndarray
    names: tuple[str, ...]
    ignore: np.ndarray
    colors: tuple[str, ...]
    unmapped: int | None = None
    unlabeled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = len(self.class_ids)
        if not (len(self.names) == len(self.ignore) == len(self.colors) == n) or n < 1 or self.class_ids[0] != 0:
            raise ValueError(
                f"class space: expected K names, flags and colours for K class ids starting with 0, got "
                f"{n} ids, {len(self.names)} names, {len(self.ignore)} flags, {len(self.colors)} colours"
            )

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def scored(self) -> np.ndarray:
        """Boolean mask of the indices that are scored classes (not unlabeled, ignore or unmapped)."""
        keep = ~self.ignore.copy()
        keep[0] = False
        if self.unmapped is not None:
            keep[self.unmapped] = False
        return keep

    def index_of(self, class_ids, where: str = "") -> np.ndarray:
        """Compact indices of class ids (0 -> 0); raises if an id has no row in the space."""
        ids = np.asarray(class_ids, dtype=np.int64)
        known = self.class_ids[1 : len(self.class_ids) - (self.unmapped is not None)]
        pos = np.searchsorted(known, ids)
        found = np.zeros(ids.shape, dtype=bool)
        inside = pos < len(known)
        found[inside] = known[pos[inside]] == ids[inside]
        zero = (ids == 0) | np.isin(ids, self.unlabeled)
        ok = found | zero
        if not ok.all():
            bad = sorted(set(ids[~ok].tolist()))[:5]
            raise FormatError(f"{where}: class id(s) {bad} have no row in the class table")
        return np.where(zero, 0, pos + 1).astype(np.int32)


def _table_classes(ds: Dataset) -> pd.DataFrame:
    t = ds.classes
    return pd.DataFrame(
        {
            "class_id": t["class_id"].astype(np.int64),
            "name": t["name"].astype(str),
            "ignore": t["ignore"].fillna(False).astype(bool),
            "color": t["color"].fillna("#808080").astype(str),
        }
    )


def build_class_space(
    a: Dataset,
    b: Dataset | None = None,
    class_map: dict[int, int | None] | None = None,
    unlabeled: Sequence[int] | None = None,
) -> tuple[ClassSpace, np.ndarray, np.ndarray, dict]:
    """The class space of A (and B), and the lookup of B's class ids into it.

    Without a class map, B's class ids are taken as they are: a class id both tables hold must
    name the same class in both (else a ``ValueError`` asks for a class map); classes only B has
    join the space. With a class map (see :func:`read_class_map`) every B class goes where the map
    says; unlisted B classes become the unmapped index.

    ``unlabeled`` lists class ids (of A, and of B without a class map) that stand for "no
    annotation" and count as class 0; default: the classes named ``unlabeled`` (Cityscapes keeps
    its labelId 0 as such a class, flagged ignore). With a class map, B's classes named
    ``unlabeled`` that the map does not list count as class 0 too.

    Returns
    -------
    space : ClassSpace
    b_ids, b_index : ndarray of int64, ndarray of int32
        Sorted B class ids and the compact index each maps to (lookup with ``np.searchsorted``).
    info : dict
        With a class map: ``{"mapped": n, "left_out": [...], "unmapped": [{class_id, name}]}``;
        empty without.
    """
    ta = _table_classes(a)
    tb = ta if b is None or b is a else _table_classes(b)

    def named_unlabeled(t):
        return set(t.loc[t["name"].str.lower() == "unlabeled", "class_id"].tolist())

    if unlabeled is None:
        zero_a = named_unlabeled(ta)
        zero_b = named_unlabeled(tb)
    else:
        zero_a = zero_b = {int(c) for c in unlabeled}
    info: dict = {}
    if class_map is None:
        zero = zero_a | zero_b
        if tb is not ta:
            both = ta.merge(tb, on="class_id", suffixes=("_a", "_b"))
            differ = both[both["name_a"].str.lower() != both["name_b"].str.lower()]
            if len(differ):
                r = differ.iloc[0]
                raise ValueError(
                    f"class {int(r.class_id)} is {r.name_a!r} in A but {r.name_b!r} in B ({len(differ)} class id(s) "
                    "differ): the two vocabularies differ; give a class map (--class-map, CSV b_class_id,a_class_id)"
                )
            table = pd.concat([ta, tb[~tb["class_id"].isin(ta["class_id"])]], ignore_index=True)
        else:
            table = ta
        table = table[~table["class_id"].isin(zero)]
        table = table.sort_values("class_id", kind="stable").reset_index(drop=True)
        space = ClassSpace(
            np.concatenate([[0], table["class_id"].to_numpy(np.int64)]),
            ("unlabeled", *table["name"]),
            np.concatenate([[False], table["ignore"].to_numpy(bool)]),
            ("#000000", *table["color"]),
            unlabeled=np.array(sorted(zero), dtype=np.int64),
        )
        b_ids = np.sort(tb["class_id"].to_numpy(np.int64))
        return space, b_ids, space.index_of(b_ids, "B"), info
    table = ta[~ta["class_id"].isin(zero_a)].sort_values("class_id", kind="stable").reset_index(drop=True)
    n = len(table)
    space = ClassSpace(
        np.concatenate([[0], table["class_id"].to_numpy(np.int64), [-1]]),
        ("unlabeled", *table["name"], "(unmapped)"),
        np.concatenate([[False], table["ignore"].to_numpy(bool), [True]]),
        ("#000000", *table["color"], "#ffffff"),
        unmapped=n + 1,
        unlabeled=np.array(sorted(zero_a), dtype=np.int64),
    )
    b_known = set(tb["class_id"].tolist())
    unknown_b = sorted(set(class_map) - b_known)
    if unknown_b:
        raise ValueError(f"class map lists B class(es) {unknown_b[:5]} that B's class table does not have")
    a_known = set(ta["class_id"].tolist()) | {0}
    unknown_a = sorted({v for v in class_map.values() if v is not None} - a_known)
    if unknown_a:
        raise ValueError(f"class map maps onto class(es) {unknown_a[:5]} that A's class table does not have")
    b_ids = np.sort(tb["class_id"].to_numpy(np.int64))
    b_index = np.full(len(b_ids), space.unmapped, dtype=np.int32)
    names_b = dict(zip(tb["class_id"].tolist(), tb["name"].tolist()))
    left_out, unmapped = [], []
    for k, c in enumerate(b_ids.tolist()):
        if c in class_map:
            target = class_map[c]
            if target is None:
                left_out.append({"class_id": c, "name": names_b[c]})
            else:
                b_index[k] = space.index_of([target], "class map")[0]
        elif c in zero_b:
            b_index[k] = 0
        else:
            unmapped.append({"class_id": c, "name": names_b[c]})
    info = {
        "mapped": sum(1 for c in b_ids.tolist() if class_map.get(c) is not None),
        "left_out": left_out,
        "unmapped": unmapped,
    }
    return space, b_ids, b_index, info

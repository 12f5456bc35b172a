"""COCO layouts: the records (:class:`Category`, :class:`Source`, :class:`Layout`, :class:`Task`),
the categories of the annotation JSONs, and :func:`detect`, which finds which layout a root holds
(see the package docstring for the layouts and conventions)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from segdata.errors import InputError, LayoutNotFoundError
from segdata.jsonstream import JsonStream, tail_value

from .stuff_labels import COCO_STUFF_NAMES, COCO_UNUSED_THING_IDS

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


def _tail_categories(path: Path, window: int = 1 << 20):
    """The top-level ``categories`` list when it is the last key of the file (as in every
    official COCO JSON), read from the file's tail without parsing the rest; None otherwise."""
    return tail_value(path, "categories", window)


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
        out.append(
            Category(
                cid,
                c["name"],
                sup if isinstance(sup, str) else None,
                is_thing_default if isthing is None else bool(isthing),
                color,
            )
        )
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
        for cand in dict.fromkeys(
            (
                missing[0].parent / PANOPTIC_CATEGORIES_FILE,
                ann_dir / PANOPTIC_CATEGORIES_FILE,
                root / PANOPTIC_CATEGORIES_FILE,
            )
        ):
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
            raise LayoutNotFoundError(
                f"{root}: stuff=True, but no stuff_<split><year>.json matches the instances JSON(s)"
            )
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
            Category(i, n, None, i <= 91, None)
            for i, n in sorted(COCO_STUFF_NAMES.items())
            if i not in COCO_UNUSED_THING_IDS
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

"""ADE20K layouts: what :func:`detect` finds and what :func:`list_images` lists (the four layouts are
described in the package docstring)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from segdata.errors import InputError, LayoutNotFoundError, SelectionError

FAMILY = "ade20k"
SPLIT_DIRS = {"training": "train", "validation": "val"}
SPLIT_ALIASES = {"training": "train", "validation": "val", "train": "train", "val": "val"}
MAX_PART_LEVELS = 9
_SEG_SUFFIX = "_seg.png"
_WALK_LIMIT = 20000  # directory entries looked at while detecting a layout

LOOKED_FOR = (
    "ADE20K 2021_17_01 (<stem>_seg.png with <stem>.json), "
    "ADE20K 2016_07_26 (<stem>_seg.png with <stem>_atr.txt), "
    "ADEChallengeData2016 (annotations/ and objectInfo150.csv or .txt), "
    "the 2017 consistency set (images/consistencyanalysis/<annotation>/)"
)


@dataclass(frozen=True)
class Layout:
    """A detected ADE20K layout.

    ``root`` is where images are searched, ``image_root`` what ``images.file`` is relative to
    (the release directory, e.g. ``ADE20K_2021_17_01``).
    """

    name: str
    root: Path
    image_root: Path
    release: str
    annotations: tuple[str, ...] = ()
    index_file: Path | None = None
    classes_file: Path | None = None
    check_instance_masks: bool = False
    family: str = FAMILY


@dataclass(frozen=True)
class Task:
    """One image to convert: its id, split and where its files are (relative to the layout)."""

    image_id: str
    split: str
    stem: str  # path of the image without suffix, relative to Layout.root
    scene: str | None = None


# --------------------------------------------------------------------------- detection


def _split_of(path_parts: tuple[str, ...], stem: str) -> str:
    for part in reversed(path_parts):
        if part in SPLIT_DIRS:
            return SPLIT_DIRS[part]
    if stem.startswith("ADE_train_"):
        return "train"
    if stem.startswith("ADE_val_"):
        return "val"
    if stem.startswith("ADE_test_"):
        return "test"
    return "train"


def _first_seg_png(root: Path) -> Path | None:
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(_SEG_SUFFIX):
                return Path(dirpath) / name
        seen += len(filenames) + len(dirnames)
        if seen > _WALK_LIMIT:
            return None
    return None


def _release_root(path: Path, stop: Path) -> Path:
    """The directory above the nearest ``images`` ancestor of ``path`` (or ``stop``)."""
    for parent in path.parents:
        if parent.name == "images":
            return parent.parent
        if parent == stop:
            break
    return stop


def _challenge_root(root: Path) -> Path | None:
    for cand in (root, root / "ADEChallengeData2016"):
        if (cand / "annotations").is_dir() and any(
            (cand / f).is_file() for f in ("objectInfo150.csv", "objectInfo150.txt")
        ):
            return cand
    return None


def _consistency_root(root: Path) -> Path | None:
    for cand in (
        root,
        root / "images" / "consistencyanalysis",
        root / "ADE20K_2017_05_30_consistency" / "images" / "consistencyanalysis",
    ):
        if cand.name == "consistencyanalysis" and cand.is_dir():
            return cand
    return None


def detect(root: str | Path, *, check_instance_masks: bool = False) -> Layout:
    """Detect which ADE20K layout ``root`` holds.

    ``root`` may be the release directory itself or a directory above or below it (any folder
    of ``images/...``). Raises :class:`LayoutNotFoundError` naming the layouts looked for.

    ``check_instance_masks`` (CLI ``--check-instance-masks``, 2021 layout only): also read every
    object's instance mask ``<stem>/instance_NNN_<stem>.png`` and check that its visible pixels
    coincide with the region the object is linked to (a missing or truncated mask stops the
    conversion, a mismatch is a problem naming the mask). Off by default: the masks are not
    read, nothing else of the conversion depends on them. Raises :class:`SelectionError` for
    another layout.
    """
    layout = _detect(Path(root))
    if check_instance_masks:
        if layout.name != "ade20k-2021":
            raise SelectionError(
                f"{root}: --check-instance-masks applies to the 2021_17_01 layout only; this is {layout.release}, "
                "which has no instance masks"
            )
        layout = replace(layout, check_instance_masks=True)
    return layout


def _detect(root: Path) -> Layout:
    if not root.is_dir():
        raise LayoutNotFoundError(f"{root}: not a directory")
    challenge = _challenge_root(root)
    if challenge is not None:
        classes_file = challenge / "objectInfo150.csv"
        if not classes_file.is_file():
            classes_file = challenge / "objectInfo150.txt"
        return Layout("ade20k-challenge", challenge, challenge, "ADEChallengeData2016", classes_file=classes_file)
    consistency = _consistency_root(root)
    if consistency is not None:
        folders = sorted(p.name for p in consistency.iterdir() if p.is_dir() and any(p.glob("*" + _SEG_SUFFIX)))
        if len(folders) < 1:
            raise LayoutNotFoundError(f"{consistency}: no annotation folder with *_seg.png files")
        if "original_ade20k" in folders:
            folders.remove("original_ade20k")
            folders.insert(0, "original_ade20k")
        return Layout(
            "ade20k-consistency", consistency, consistency, "2017_05_30_consistency", annotations=tuple(folders)
        )
    seg = _first_seg_png(root)
    if seg is not None:
        stem = seg.name[: -len(_SEG_SUFFIX)]
        release = _release_root(seg, root)
        if (seg.parent / f"{stem}.json").is_file():
            index = release / "index_ade20k.pkl"
            return Layout("ade20k-2021", root, release, "2021_17_01", index_file=index if index.is_file() else None)
        if (seg.parent / f"{stem}_atr.txt").is_file():
            return Layout("ade20k-2016", root, release, "2016_07_26")
        raise LayoutNotFoundError(
            f"{root}: found {seg} but neither {stem}.json (2021 layout) nor {stem}_atr.txt (2016 layout) next to it"
        )
    raise LayoutNotFoundError(f"{root}: no ADE20K layout found. Looked for: {LOOKED_FOR}")


# --------------------------------------------------------------------------- listing


def _normalise_split(split: str | None) -> str | None:
    if split is None:
        return None
    return SPLIT_ALIASES.get(split, split)


def list_images(layout: Layout, split: str | None = None) -> list[Task]:
    """One :class:`Task` per image of the layout, sorted by (split, image id)."""
    split = _normalise_split(split)
    tasks: list[Task] = []
    if layout.name == "ade20k-challenge":
        scenes = _scene_categories(layout.root / "sceneCategories.txt")
        ann_root = layout.root / "annotations"
        for sub in sorted(p for p in ann_root.iterdir() if p.is_dir()):
            sp = SPLIT_DIRS.get(sub.name, sub.name)
            for png in sorted(sub.glob("*.png")):
                tasks.append(Task(png.stem, sp, f"{sub.name}/{png.stem}", scenes.get(png.stem)))
    elif layout.name == "ade20k-consistency":
        stems: dict[str, None] = {}
        for folder in layout.annotations:
            for seg in (layout.root / folder).glob("*" + _SEG_SUFFIX):
                stems.setdefault(seg.name[: -len(_SEG_SUFFIX)])
        for stem in stems:
            tasks.append(Task(stem, _split_of((), stem), stem))
    else:
        for dirpath, dirnames, filenames in os.walk(layout.root):
            dirnames.sort()
            rel = Path(dirpath).relative_to(layout.root)
            for name in filenames:
                if name.endswith(_SEG_SUFFIX):
                    stem = name[: -len(_SEG_SUFFIX)]
                    scene = rel.parts[-1] if rel.parts else None
                    tasks.append(Task(stem, _split_of(rel.parts, stem), str(rel / stem), scene))
    if split is not None:
        tasks = [t for t in tasks if t.split == split]
    tasks.sort(key=lambda t: (t.split, t.image_id))
    for a, b in zip(tasks, tasks[1:]):
        if a.image_id == b.image_id and a.split == b.split:
            raise InputError(layout.root / b.stem, f"image id {b.image_id} appears twice (also at {a.stem})")
    return tasks


def _scene_categories(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    scenes = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            scenes[parts[0]] = parts[1]
    return scenes

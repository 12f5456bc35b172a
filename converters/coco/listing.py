"""Listing a COCO layout's images: one streamed pass over each annotation JSON, keeping per
annotation only its image and its byte span (see the package docstring, "Memory")."""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from segdata.errors import InputError
from segdata.jsonstream import JsonStream

from .layout import _SPLIT_DIR, LAYOUT_NAMES, Layout, Task, _is_int, _parse_categories


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
            raise InputError(
                self.path, f"image {image}: width and height must be positive integers, found {w!r} x {h!r}"
            )
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
                    self.path,
                    f"{len(dangling)} image id(s) have annotations but no entry in 'images', e.g. {dangling[0]!r}",
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
                raise InputError(
                    src.annotation, "its 'categories' changed since the layout was detected; detect it again"
                )
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
            tasks.append(
                Task(str(image), src.split, si, w, h, fn, spans.get(image, b""), stuff_spans.get(image, b""), png)
            )
    tasks.sort(key=lambda t: (t.split, t.image_id))
    for a, b in zip(tasks, tasks[1:]):
        if a.image_id == b.image_id and a.split == b.split:
            raise InputError(layout.sources[b.source].annotation, f"image id {b.image_id} appears twice")
    return tasks

"""The full dataset in its 2016_07_26 layout (``_atr.txt``), and the 2017 consistency set (one
layer per annotation folder, each folder in the 2016 layout)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from segdata.convert import ConvertedImage, SegmentRows
from segdata.errors import InputError
from segdata.regions import joint_counts

from .layout import _SEG_SUFFIX, Layout, Task
from .levels import _b_to_instance, _image_row, _iter_levels, _layer_name, _missing_image, _read_text, _short_name

# --------------------------------------------------------------------------- 2016 and consistency

_ATR_LINE = re.compile(r"\s+#\s+")


def parse_atr(path: Path) -> list[dict]:
    """Parse a 2016 ``_atr.txt``: one dict per line with instance, part_level, occluded, name,
    raw_name, attributes (the quoted, comma-separated list without its quotes)."""
    text = _read_text(path, "attribute file")
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = [c.strip() for c in _ATR_LINE.split(line.strip(), maxsplit=5)]
        if len(cols) != 6:
            raise InputError(
                path, f"line {lineno}: expected 6 ' # '-separated columns, found {len(cols)}: {line.strip()!r}"
            )
        try:
            instance, level, occluded = int(cols[0]), int(cols[1]), int(cols[2])
        except ValueError:
            raise InputError(
                path, f"line {lineno}: instance, part level and occluded must be integers: {line.strip()!r}"
            ) from None
        attrs = cols[5]
        if len(attrs) >= 2 and attrs[0] == '"' and attrs[-1] == '"':
            attrs = attrs[1:-1]
        rows.append(
            {
                "instance": instance,
                "part_level": level,
                "occluded": bool(occluded),
                "name": cols[3],
                "raw_name": cols[4],
                "attributes": attrs or None,
            }
        )
    return rows


def _read_2016_annotation(
    base: Path, image: Path | None, rows: SegmentRows, prefix: str, observed: dict, problems: list
) -> dict[str, np.ndarray]:
    """Read one 2016-layout annotation (``<base>_seg.png``, ``_parts_N.png``, ``_atr.txt``)."""
    atr_path = base.with_name(base.name + "_atr.txt")
    atr = parse_atr(atr_path)
    by_level: dict[int, dict[int, dict]] = {}
    for row in atr:
        by_level.setdefault(row["part_level"], {})[row["instance"]] = row
    masks: dict[str, np.ndarray] = {}
    prev_segmap = None
    prev_n = 0
    counts = {level: len(lines) for level, lines in by_level.items()}
    for level, png, (segmap, codes, b_values, areas, boxes) in _iter_levels(base, counts, atr_path, image):
        layer = _layer_name(prefix, level)
        lines = by_level.get(level, {})
        k_of_b = _b_to_instance(np.unique(b_values), len(lines))
        parents = None
        if level > 0 and prev_segmap is not None and len(codes):
            overlap = joint_counts(segmap, prev_segmap, len(codes), prev_n)[:, 1:]
            parents = np.where(overlap.max(axis=1) > 0, overlap.argmax(axis=1) + 1, 0)
        used = set()
        for seg_id in range(1, len(codes) + 1):
            code, b = int(codes[seg_id - 1]), int(b_values[seg_id - 1])
            k = k_of_b.get(b)
            line = lines.get(k)
            if line is None:
                raise InputError(
                    atr_path, f"no line for instance {k} of level {level} (class code {code}, B={b} in {png.name})"
                )
            used.add(k)
            observed.setdefault(code, {}).setdefault((_short_name(line["name"]), line["name"]), 0)
            observed[code][(_short_name(line["name"]), line["name"])] += 1
            rows.add(
                layer,
                seg_id,
                code,
                True,
                areas[seg_id - 1],
                boxes[seg_id - 1],
                parent=int(parents[seg_id]) if parents is not None else 0,
                source_instance=k,
                part_level=level,
                occluded=line["occluded"],
                raw_name=line["raw_name"],
                attributes=line["attributes"],
            )
        for k, line in sorted(lines.items()):
            if k not in used:
                problems.append(
                    (str(atr_path), f"instance {k} of level {level} ({line['name']}) has no pixels in {png.name}")
                )
        masks[layer] = segmap
        prev_segmap, prev_n = segmap, len(codes)
    return masks


def _observed_classes(observed: dict) -> list[dict]:
    out = []
    for code, names in observed.items():
        for (name, source_name), count in names.items():
            out.extend(
                {"source_id": code, "name": name, "source_name": source_name, "is_thing": None} for _ in range(count)
            )
    return out


def _read_2016(layout: Layout, task: Task) -> ConvertedImage:
    base = layout.root / task.stem
    image = base.with_name(base.name + ".jpg")
    rows = SegmentRows(task.image_id)
    observed: dict = {}
    problems: list = []
    masks = _read_2016_annotation(base, image, rows, "", observed, problems)
    return ConvertedImage(
        image=_image_row(
            layout,
            task,
            segmap_shape=masks["objects"].shape,
            image=image,
            annotation=base.with_name(base.name + "_atr.txt"),
            scene=task.scene,
        ),
        segments=rows.cols,
        masks=masks,
        classes=_observed_classes(observed),
        problems=problems + _missing_image(image),
    )


def _consistency_prefix(layout: Layout, folder: str) -> str:
    return "" if folder == layout.annotations[0] else re.sub(r"[^A-Za-z0-9_.-]+", "_", folder)


def _read_consistency(layout: Layout, task: Task) -> ConvertedImage:
    rows = SegmentRows(task.image_id)
    observed: dict = {}
    problems: list = []
    masks: dict[str, np.ndarray] = {}
    image = None
    for folder in layout.annotations:
        base = layout.root / folder / task.stem
        if not base.with_name(base.name + _SEG_SUFFIX).is_file():
            problems.append((str(layout.root / folder), f"{task.stem} is not annotated in this folder"))
            continue
        jpg = base.with_name(base.name + ".jpg")
        if image is None and jpg.is_file():
            image = jpg
        got = _read_2016_annotation(
            base, jpg if jpg.is_file() else None, rows, _consistency_prefix(layout, folder), observed, problems
        )
        for layer, segmap in got.items():
            first = next(iter(masks.values()), None)
            if first is not None and first.shape != segmap.shape:
                raise InputError(
                    base.with_name(base.name + _SEG_SUFFIX),
                    f"annotation is {segmap.shape[1]}x{segmap.shape[0]}, another annotation of the same image is {first.shape[1]}x{first.shape[0]}",
                )
            masks[layer] = segmap
    shape = next(iter(masks.values())).shape
    return ConvertedImage(
        image=_image_row(
            layout,
            task,
            segmap_shape=shape,
            image=image,
            annotation=layout.root / layout.annotations[0] / f"{task.stem}_atr.txt",
            scene=None,
        ),
        segments=rows.cols,
        masks=masks,
        classes=_observed_classes(observed),
        problems=problems,
    )

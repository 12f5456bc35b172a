"""Conversion driver: runs a converter module over a source dataset into the unified format.

A converter module (``segdata.converters.<family>``) provides

- ``detect(root, **options) -> layout`` : which layout ``root`` holds (raises
  ``LayoutNotFoundError``); a frozen dataclass with ``name``, ``family``, ``release``, ``root``,
  ``image_root`` (what ``images.file`` is relative to), picklable;
- ``list_images(layout, split=None) -> list[task]`` : one picklable task per image, sorted,
  each with ``image_id`` and ``split`` attributes;
- ``read_image(layout, task) -> ConvertedImage`` : the image's rows and segment maps;
- ``build_classes(layout, observations) -> DataFrame`` : the class table from what was seen;
- ``layers(layout) -> list[dict]`` : the layers the layout can produce.

This module owns everything around them: the process pool, the temporary output directory
renamed into place at the end, resuming an interrupted run, skipping bad images on request.

Resume works on committed chunks: results are flushed every few seconds into
``<out>.segdata-partial/_rows/NNNNN.*.parquet``; the ``images`` file of a chunk is written last
and marks it committed. A rerun with ``resume=True`` skips the images of committed chunks.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import InputError, OutputExistsError, SegdataError
from .format import (
    CLASS_SCHEMA,
    CLASSES_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_SCHEMA,
    IMAGES_FILE,
    MANIFEST,
    SEGMENT_SCHEMA,
    SEGMENTS_FILE,
    layer_names,
    mask_relpath,
    read_parquet,
    table_from_columns,
)
from .maskio import write_segment_map
from .runner import parallel_map

PARTIAL_SUFFIX = ".segdata-partial"
ROWS_DIR = "_rows"
STATE_FILE = "_state.json"
OBSERVATION_SCHEMA = pa.schema(
    [
        ("source_id", pa.int64()),
        ("name", pa.string()),
        ("source_name", pa.string()),
        ("is_thing", pa.bool_()),
        ("count", pa.int64()),
    ]
)
PROBLEM_SCHEMA = pa.schema(
    [("image_id", pa.string()), ("file", pa.string()), ("problem", pa.string()), ("action", pa.string())]
)


def image_row(
    image_id: str, split: str, shape: tuple[int, ...], file: str | None, annotation: str, scene: str | None = None
) -> dict:
    """One row of the images table (``IMAGE_SCHEMA`` without ``layers``, which the driver fills).

    ``shape`` is the label map's ``(H, W)`` in pixels; ``file`` and ``annotation`` are paths
    relative to the source root (``file`` None when the image file is missing)."""
    return {
        "image_id": image_id,
        "split": split,
        "width": int(shape[1]),
        "height": int(shape[0]),
        "file": file,
        "annotation": annotation,
        "scene": scene,
    }


@dataclass
class ConvertedImage:
    """What a converter returns for one image.

    Attributes
    ----------
    image : dict
        One row of the images table (columns of ``IMAGE_SCHEMA``; ``layers`` is filled in here).
    segments : dict of str to list
        Columns of the segments table for this image (all layers).
    masks : dict of str to ndarray
        Segment-id map per layer, ``(H, W)`` uint8/uint16, 0 = no annotation.
    classes : list of dict
        Class observations: ``source_id``, ``name``, ``source_name``, ``is_thing``.
    problems : list of (file, problem)
        Non-fatal findings (the image was converted), reported in the manifest.
    """

    image: dict
    segments: dict[str, list]
    masks: dict[str, np.ndarray]
    classes: list[dict] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


class SegmentRows:
    """Column accumulator for the segment rows of one image, in the order of ``SEGMENT_SCHEMA``.

    ``add`` takes one segment: its layer, id (1-based), class id, whether it is a real instance,
    its pixel count, its box ``(x, y, w, h)``, and the optional columns; ``cols`` is what
    :class:`ConvertedImage` expects as ``segments``.
    """

    COLUMNS = (
        "image_id",
        "layer",
        "segment_id",
        "class_id",
        "is_instance",
        "iscrowd",
        "area",
        "bbox_x",
        "bbox_y",
        "bbox_w",
        "bbox_h",
        "parent_segment",
        "source_instance",
        "part_level",
        "occluded",
        "crop",
        "raw_name",
        "attributes",
        "source_area",
        "pixels_lost",
    )

    def __init__(self, image_id: str):
        self.image_id = image_id
        self.cols: dict[str, list] = {c: [] for c in self.COLUMNS}

    def add(
        self,
        layer,
        segment_id,
        class_id,
        is_instance,
        area,
        box,
        parent=0,
        source_instance=None,
        part_level=None,
        occluded=None,
        crop=None,
        raw_name=None,
        attributes=None,
        iscrowd=False,
        source_area=None,
        pixels_lost=None,
    ):
        c = self.cols
        c["image_id"].append(self.image_id)
        c["layer"].append(layer)
        c["segment_id"].append(int(segment_id))
        c["class_id"].append(int(class_id))
        c["is_instance"].append(bool(is_instance))
        c["iscrowd"].append(bool(iscrowd))
        c["area"].append(int(area))
        for name, value in zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), box):
            c[name].append(int(value))
        c["parent_segment"].append(int(parent))
        c["source_instance"].append(source_instance)
        c["part_level"].append(part_level)
        c["occluded"].append(occluded)
        c["crop"].append(crop)
        c["raw_name"].append(raw_name)
        c["attributes"].append(attributes)
        c["source_area"].append(None if source_area is None else float(source_area))
        c["pixels_lost"].append(None if pixels_lost is None else int(pixels_lost))

    def __len__(self) -> int:
        return len(self.cols["segment_id"])


@dataclass
class _Skipped:
    image_id: str
    file: str
    problem: str


@dataclass
class ConversionReport:
    """Summary of a finished conversion."""

    path: Path
    layout: str
    images: int
    segments: int
    classes: int
    layers: list[str]
    problems: list[dict]
    resumed_images: int
    seconds: float

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "layout": self.layout,
            "images": self.images,
            "segments": self.segments,
            "classes": self.classes,
            "layers": self.layers,
            "problems": self.problems,
            "resumed_images": self.resumed_images,
            "seconds": round(self.seconds, 3),
        }


def partial_path(out: Path) -> Path:
    """The temporary directory a conversion into ``out`` writes to."""
    return out.with_name(out.name + PARTIAL_SUFFIX)


def _convert_one(module_name: str, layout, tmp: Path, copy_images: bool, on_error: str, task):
    """Worker: convert one image, write its masks, return its rows (without the masks)."""
    module = importlib.import_module(module_name)
    try:
        result: ConvertedImage = module.read_image(layout, task)
    except InputError as exc:
        if on_error == "skip":
            return _Skipped(task.image_id, exc.path, exc.problem)
        raise
    split = result.image["split"]
    for layer, segmap in result.masks.items():
        path = tmp / mask_relpath(layer, split, result.image["image_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        write_segment_map(path, segmap)
    result.image["layers"] = ",".join(result.masks)
    if copy_images and result.image.get("file"):
        source = Path(layout.image_root) / result.image["file"]
        dest_rel = f"images/{split}/{Path(result.image['file']).name}"
        dest = tmp / dest_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        result.image["file"] = dest_rel
    result.masks = {}
    return result


class _ChunkWriter:
    """Buffers per-image rows and commits them to ``_rows`` in chunks."""

    def __init__(self, rows_dir: Path, first_chunk: int, every_seconds: float = 2.0, every_images: int = 256):
        self.rows_dir = rows_dir
        self.chunk = first_chunk
        self.every_seconds = every_seconds
        self.every_images = every_images
        self._reset()

    def _reset(self):
        self.images: list[dict] = []
        self.segments: list[dict[str, list]] = []
        self.observations: dict[tuple, int] = {}
        self.problems: list[dict] = []
        self.last_flush = time.monotonic()

    def add(self, result) -> None:
        if isinstance(result, _Skipped):
            self.problems.append(
                {"image_id": result.image_id, "file": result.file, "problem": result.problem, "action": "skipped"}
            )
        else:
            self.images.append(result.image)
            self.segments.append(result.segments)
            for obs in result.classes:
                key = (obs["source_id"], obs["name"], obs["source_name"], obs.get("is_thing"))
                self.observations[key] = self.observations.get(key, 0) + 1
            for file, problem in result.problems:
                self.problems.append(
                    {"image_id": result.image["image_id"], "file": file, "problem": problem, "action": "converted"}
                )
        if len(self.images) >= self.every_images or time.monotonic() - self.last_flush > self.every_seconds:
            self.flush()

    def flush(self) -> None:
        if not self.images and not self.problems:
            self.last_flush = time.monotonic()
            return
        prefix = self.rows_dir / f"{self.chunk:06d}"
        seg_columns: dict[str, list] = {}
        for cols in self.segments:
            for name, values in cols.items():
                seg_columns.setdefault(name, []).extend(values)
        n_seg = len(seg_columns.get("image_id", []))
        for name in list(seg_columns):
            if len(seg_columns[name]) != n_seg:
                raise SegdataError(f"internal: segment column {name} has {len(seg_columns[name])} of {n_seg} values")
        obs_cols = {name: [] for name in OBSERVATION_SCHEMA.names}
        for (source_id, name, source_name, is_thing), count in self.observations.items():
            for col, value in zip(OBSERVATION_SCHEMA.names, (source_id, name, source_name, is_thing, count)):
                obs_cols[col].append(value)
        image_cols = {name: [img.get(name) for img in self.images] for name in IMAGE_SCHEMA.names}
        problem_cols = {name: [p[name] for p in self.problems] for name in PROBLEM_SCHEMA.names}
        # the images file is the commit marker: written last
        for suffix, columns, schema in (
            ("segments", seg_columns, SEGMENT_SCHEMA),
            ("classes", obs_cols, OBSERVATION_SCHEMA),
            ("problems", problem_cols, PROBLEM_SCHEMA),
            ("images", image_cols, IMAGE_SCHEMA),
        ):
            table = table_from_columns(columns, schema) if columns and any(columns.values()) else schema.empty_table()
            target = Path(f"{prefix}.{suffix}.parquet")
            pq.write_table(table, f"{target}.tmp")
            Path(f"{target}.tmp").replace(target)
        self.chunk += 1
        self._reset()


def _committed_chunks(rows_dir: Path) -> list[str]:
    """Prefixes of committed chunks; removes the files of uncommitted ones."""
    committed = sorted(p.name.split(".")[0] for p in rows_dir.glob("*.images.parquet"))
    keep = set(committed)
    for p in rows_dir.iterdir():
        if p.name.split(".")[0] not in keep or p.name.endswith(".tmp"):
            p.unlink()
    return committed


def _read_chunks(rows_dir: Path, prefixes: list[str], suffix: str, schema: pa.Schema) -> pa.Table:
    tables = [read_parquet(rows_dir / f"{p}.{suffix}.parquet", schema=schema) for p in prefixes]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def convert(
    module: ModuleType,
    root: str | Path,
    out: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    workers: int | None = None,
    executor=None,
    copy_images: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    on_error: str = "fail",
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    layout=None,
    options: dict | None = None,
) -> ConversionReport:
    """Convert the dataset at ``root`` into a unified-format directory ``out``.

    Parameters
    ----------
    module : module
        A converter from ``segdata.converters``.
    root, out : path
        Source root as the dataset ships; destination directory (must not exist unless
        ``overwrite``).
    split : str, optional
        Convert only this split (``train``, ``val``, ...).
    limit : int, optional
        Convert only the first ``limit`` images (in sorted order) of the selection.
    workers : int, optional
        Processes; default all cores (with ``executor``: tasks kept in flight per slot).
    executor : concurrent.futures.Executor, optional
        Run the per-image work there instead of a local process pool (a Dask
        ``Client.get_executor()``, see :func:`segdata.runner.executor_for`); the output is the same.
    copy_images : bool
        Copy image files into ``out/images`` instead of referencing them under ``root``.
    overwrite : bool
        Replace an existing ``out`` (only once the new one is complete) or discard a partial run.
    resume : bool
        Continue an interrupted conversion into ``out``.
    on_error : {"fail", "skip"}
        On a bad image: stop and leave nothing behind, or skip it and list it in ``problems``.
    progress : callable(done, total), optional
        Called after every image.
    layout : optional
        A layout from ``module.detect``; detected from ``root`` when omitted.
    options : dict, optional
        Family-specific options passed to ``module.detect`` (for example ``sbd=PATH`` for VOC).
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    start = time.perf_counter()
    root = Path(root)
    out = Path(out)
    tmp = partial_path(out)
    if (out.exists() or out.is_symlink()) and not overwrite:
        if resume and (out / MANIFEST).is_file():
            raise OutputExistsError(
                f"{out} is already a complete dataset; nothing to resume (use --overwrite to redo it)"
            )
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be at least 1 (a dataset of 0 images is not a result), got {limit}")
    layout = layout if layout is not None else module.detect(root, **(options or {}))
    tasks = module.list_images(layout, split=split)
    if not tasks:
        raise _nothing_to_convert(module, layout, split)
    if limit is not None:
        tasks = tasks[: int(limit)]
    state = {
        "family": module.__name__.rsplit(".", 1)[-1],
        "layout": layout.name,
        "root": str(Path(layout.root).resolve()),
        "split": split,
        "limit": limit,
        "copy_images": copy_images,
        "options": {k: str(v) for k, v in sorted((options or {}).items())},
        "segdata_version": __version__,
    }
    rows_dir = tmp / ROWS_DIR
    if tmp.exists() or tmp.is_symlink():
        if resume:
            previous = json.loads((tmp / STATE_FILE).read_text()) if (tmp / STATE_FILE).is_file() else None
            if previous != state:
                raise OutputExistsError(
                    f"{tmp} holds a conversion with other settings ({previous}); "
                    "rerun with the same options, or pass --overwrite to start over"
                )
        elif overwrite:
            remove_path(tmp)
        else:
            raise OutputExistsError(
                f"{tmp} holds an interrupted conversion: pass --resume to continue it or --overwrite to start over"
            )
    resuming = tmp.exists()
    try:
        # everything from here on writes under tmp: an error of the system (a full disk, a
        # read-only folder) cleans up as bad data does; an interrupted run's folder is kept
        rows_dir.mkdir(parents=True, exist_ok=True)
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
        committed = _committed_chunks(rows_dir)
        done_ids: set[str] = set()
        if committed:
            done_table = _read_chunks(rows_dir, committed, "images", IMAGE_SCHEMA)
            done_ids.update(done_table.column("image_id").to_pylist())
            skipped = _read_chunks(rows_dir, committed, "problems", PROBLEM_SCHEMA).to_pandas()
            done_ids.update(skipped.loc[skipped["action"] == "skipped", "image_id"])
    except BaseException:
        if not resuming:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    remaining = [t for t in tasks if t.image_id not in done_ids]
    resumed = len(tasks) - len(remaining)
    writer = _ChunkWriter(rows_dir, first_chunk=int(committed[-1]) + 1 if committed else 0)
    worker = partial(_convert_one, module.__name__, layout, tmp, copy_images, on_error)
    total = len(tasks)
    done = resumed
    try:
        if progress:
            progress(done, total)
        for result in parallel_map(worker, remaining, workers=workers, executor=executor):
            writer.add(result)
            done += 1
            if progress:
                progress(done, total)
        writer.flush()
    except KeyboardInterrupt:
        writer.flush()  # keep what is done for --resume
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    try:
        report = _finalize(module, layout, tmp, rows_dir, out, overwrite, copy_images, name, resumed, start)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _finalize(module, layout, tmp, rows_dir, out, overwrite, copy_images, name, resumed, start) -> ConversionReport:
    prefixes = _committed_chunks(rows_dir)
    images = _read_chunks(rows_dir, prefixes, "images", IMAGE_SCHEMA)
    images = images.sort_by([("split", "ascending"), ("image_id", "ascending")])
    segments = _read_chunks(rows_dir, prefixes, "segments", SEGMENT_SCHEMA)
    segments = segments.sort_by([("image_id", "ascending"), ("layer", "ascending"), ("segment_id", "ascending")])
    observations = _read_chunks(rows_dir, prefixes, "classes", OBSERVATION_SCHEMA).to_pandas()
    problems = _read_chunks(rows_dir, prefixes, "problems", PROBLEM_SCHEMA).to_pandas()
    # workers finish in any order: the problems are listed by image (each image's in its own order)
    problems = problems.sort_values(["image_id", "file"], kind="stable", na_position="first").reset_index(drop=True)
    classes = module.build_classes(layout, observations)
    classes_table = pa.Table.from_pandas(classes[CLASS_SCHEMA.names], schema=CLASS_SCHEMA, preserve_index=False)
    classes_table = classes_table.sort_by("class_id")
    pq.write_table(classes_table, tmp / CLASSES_FILE)
    pq.write_table(images, tmp / IMAGES_FILE)
    pq.write_table(segments, tmp / SEGMENTS_FILE)

    splits = pd.Series(images.column("split").to_pylist(), dtype=object).value_counts().sort_index()
    used_layers = set()
    for value in images.column("layers").to_pylist():
        used_layers.update(layer_names(value))
    layers = [layer for layer in module.layers(layout) if layer["name"] in used_layers]
    problem_rows = problems.to_dict("records")
    if images.num_rows == 0:  # every image skipped: a dataset of 0 images is not a result
        first = problem_rows[0] if problem_rows else None
        raise InputError(
            layout.root,
            f"every image was skipped ({len(problem_rows)} of {len(problem_rows)}), nothing converted"
            + (f"; first: {first['file']}: {first['problem']}" if first else ""),
        )
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": name or out.name,
        "source": {
            "family": layout.family,
            "layout": layout.name,
            "release": layout.release,
            "root": str(Path(layout.root).resolve()),
        },
        "image_root": "." if copy_images else str(Path(layout.image_root).resolve()),
        "splits": {k: int(v) for k, v in splits.items()},
        "layers": layers,
        "counts": {"images": images.num_rows, "segments": segments.num_rows, "classes": classes_table.num_rows},
        "problems": problem_rows,
        "segdata_version": __version__,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(rows_dir)
    (tmp / STATE_FILE).unlink()
    if (out.exists() or out.is_symlink()) and not overwrite:  # appeared while we ran
        raise OutputExistsError(f"{out} appeared during the conversion")
    _move_into_place(tmp, out)
    return ConversionReport(
        path=out,
        layout=layout.name,
        images=images.num_rows,
        segments=segments.num_rows,
        classes=classes_table.num_rows,
        layers=[layer["name"] for layer in layers],
        problems=problem_rows,
        resumed_images=resumed,
        seconds=time.perf_counter() - start,
    )


def _nothing_to_convert(module: ModuleType, layout, split: str | None) -> InputError:
    """The error for a selection without any image: names the split asked for and the splits
    the source has (with their image counts)."""
    if split is None:
        return InputError(layout.root, f"no image found in this {layout.name} layout")
    counts: dict[str, int] = {}
    for task in module.list_images(layout):
        counts[task.split] = counts.get(task.split, 0) + 1
    have = ", ".join(f"{name} ({n} image{'s' * (n != 1)})" for name, n in sorted(counts.items())) or "none"
    return InputError(layout.root, f"no image of split {split!r}; splits: {have}")


def remove_path(path: Path) -> None:
    """Remove what segdata wrote at ``path``: a directory tree, a file or a link (the link
    itself, never what it points to). Nothing there is fine."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@contextlib.contextmanager
def atomic_output(out: str | Path, *, overwrite: bool = False):
    """Write a directory atomically: yields a temporary sibling directory that becomes ``out``
    when the block finishes, and is removed when it raises (a system error such as a full disk
    included). Exporters use this. With ``overwrite``, an existing ``out`` (a directory, a file
    or a link) is replaced only once the new one is complete, and nothing of the old one is left.

    Raises :class:`OutputExistsError` when ``out`` exists and ``overwrite`` is false.
    """
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    tmp = partial_path(out)
    remove_path(tmp)  # a partial output of an earlier run
    tmp.mkdir(parents=True)
    try:
        yield tmp
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``, replacing an existing ``out`` (a directory, a file or a link)
    only once ``tmp`` is complete; the old one is removed, or put back when the rename fails."""
    if out.exists() or out.is_symlink():
        old = out.with_name(out.name + ".segdata-old")
        remove_path(old)
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        remove_path(old)
    else:
        tmp.rename(out)

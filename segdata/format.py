"""The segdata unified format, version 1: schema, reader and validator.

A dataset is a directory (see ``docs/format.md`` for the full specification)::

    segdata.json       manifest: format, version, dataset name, source, splits, layers, problems
    classes.parquet    one row per class
    images.parquet     one row per image
    segments.parquet   one row per segment (per image, per layer)
    masks/<layer>/<split>/<image_id>.png   segment-id map, 0 = no annotation

Conventions used throughout:

- ``class_id`` 0 is reserved for "unlabeled"; every other id has a row in ``classes``.
- ``segment_id`` values are 1-based within one (image, layer); 0 in a mask means "no annotation".
- boxes are ``(bbox_x, bbox_y, bbox_w, bbox_h)`` in pixels, x = column, half-open, as in COCO.
- ``area`` is the number of pixels of the segment in its mask; ``source_area`` is what the source
  states, when it states one; ``pixels_lost`` what an overlap rule took from the segment (COCO).
- ``parent_segment`` is the segment id, in the layer's parent layer, of the segment this one is
  part of (``parts-1`` -> ``objects``, ``parts-2`` -> ``parts-1``); 0 = no parent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import FormatError, InputError
from .maskio import read_segment_map

FORMAT_NAME = "segdata-unified"
FORMAT_VERSION = 1
MANIFEST = "segdata.json"
CLASSES_FILE = "classes.parquet"
IMAGES_FILE = "images.parquet"
SEGMENTS_FILE = "segments.parquet"
MASKS_DIR = "masks"
UNLABELED = 0
NO_PARENT = 0

CLASS_SCHEMA = pa.schema(
    [
        ("class_id", pa.int32()),
        ("name", pa.string()),
        ("source_id", pa.int64()),
        ("source_name", pa.string()),
        ("is_thing", pa.bool_()),
        ("ignore", pa.bool_()),
        ("train_id", pa.int32()),
        ("color", pa.string()),
    ]
)

IMAGE_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("split", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("file", pa.string()),
        ("annotation", pa.string()),
        ("layers", pa.string()),
        ("scene", pa.string()),
    ]
)

SEGMENT_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("layer", pa.string()),
        ("segment_id", pa.int32()),
        ("class_id", pa.int32()),
        ("is_instance", pa.bool_()),
        ("iscrowd", pa.bool_()),
        ("area", pa.int64()),
        ("bbox_x", pa.int32()),
        ("bbox_y", pa.int32()),
        ("bbox_w", pa.int32()),
        ("bbox_h", pa.int32()),
        ("parent_segment", pa.int32()),
        ("source_area", pa.float64()),
        ("pixels_lost", pa.int64()),
        ("source_instance", pa.int64()),
        ("part_level", pa.int8()),
        ("occluded", pa.bool_()),
        ("crop", pa.bool_()),
        ("raw_name", pa.string()),
        ("attributes", pa.string()),
    ]
)


def text_or_none(value) -> str | None:
    """A string cell of a table, or None where it is null (None or NaN, depending on pandas)."""
    return value if isinstance(value, str) else None


def mask_relpath(layer: str, split: str, image_id: str) -> str:
    """Path of a mask relative to the dataset directory."""
    return f"{MASKS_DIR}/{layer}/{split}/{image_id}.png"


def table_from_columns(columns: dict[str, list], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from a dict of column lists; missing columns become nulls."""
    n = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for field in schema:
        values = columns.get(field.name)
        arrays.append(pa.nulls(n, field.type) if values is None else pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class ImageRecord:
    """One image of a unified dataset.

    Attributes
    ----------
    image_id, split : str
    width, height : int
        In pixels.
    segments : DataFrame
        This image's rows of ``Dataset.segments`` (all layers).
    """

    image_id: str
    split: str
    width: int
    height: int
    segments: pd.DataFrame
    dataset: "Dataset"

    def segment_map(self, layer: str = "objects") -> np.ndarray:
        return self.dataset.segment_map(self.image_id, layer)

    def semantic(self, layer: str = "objects") -> np.ndarray:
        return self.dataset.semantic(self.image_id, layer)


class Dataset:
    """A unified-format dataset on disk; open one with :func:`segdata.open`.

    Tables are read lazily and cached on the instance: ``classes``, ``images``, ``segments``
    (pandas DataFrames with the columns of :data:`CLASS_SCHEMA`, :data:`IMAGE_SCHEMA`,
    :data:`SEGMENT_SCHEMA`), ``problems`` (what the conversion skipped or flagged).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise FormatError(f"{self.path}: no {MANIFEST}; not a segdata dataset (convert one with `segdata convert`)")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FormatError(f"{manifest_path}: malformed JSON ({exc})") from None
        if self.manifest.get("format") != FORMAT_NAME:
            raise FormatError(f"{manifest_path}: format is {self.manifest.get('format')!r}, expected {FORMAT_NAME!r}")
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise FormatError(f"{manifest_path}: format version {version}, this segdata reads version {FORMAT_VERSION}")
        self._cache: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"<segdata.Dataset {self.name!r}: {len(self)} images, {self.path}>"

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.path.name)

    @property
    def layers(self) -> list[str]:
        return [layer["name"] for layer in self.manifest.get("layers", [])]

    def _table(self, filename: str) -> pd.DataFrame:
        if filename not in self._cache:
            path = self.path / filename
            if not path.is_file():
                raise FormatError(f"{path}: missing")
            self._cache[filename] = pq.read_table(path).to_pandas()
        return self._cache[filename]  # type: ignore[return-value]

    @property
    def classes(self) -> pd.DataFrame:
        return self._table(CLASSES_FILE)

    @property
    def images(self) -> pd.DataFrame:
        return self._table(IMAGES_FILE)

    @property
    def segments(self) -> pd.DataFrame:
        return self._table(SEGMENTS_FILE)

    def segment_table(self, columns: list[str] | None = None, layer: str | None = None) -> pa.Table:
        """The segment table as a pyarrow Table (only ``columns``; only rows of ``layer``), for
        analyses that filter millions of rows with Arrow's compute kernels before pandas."""
        path = self.path / SEGMENTS_FILE
        if not path.is_file():
            raise FormatError(f"{path}: missing")
        filters = [("layer", "==", layer)] if layer is not None else None
        return pq.read_table(path, columns=columns, filters=filters)

    def read_segments(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The segment table, or only some of its columns (faster on large datasets: parquet
        reads just those). Served from the full table when it is already loaded."""
        if columns is None or SEGMENTS_FILE in self._cache:
            table = self.segments
            return table if columns is None else table[columns]
        path = self.path / SEGMENTS_FILE
        if not path.is_file():
            raise FormatError(f"{path}: missing")
        return pq.read_table(path, columns=columns).to_pandas()

    @property
    def problems(self) -> pd.DataFrame:
        return pd.DataFrame(self.manifest.get("problems", []), columns=["image_id", "file", "problem", "action"])

    def __len__(self) -> int:
        return len(self.images)

    def _image_row(self, image_id: str) -> pd.Series:
        index = self._cache.get("image_index")
        if index is None:
            index = {iid: i for i, iid in enumerate(self.images["image_id"])}
            self._cache["image_index"] = index
        try:
            return self.images.iloc[index[image_id]]  # type: ignore[index]
        except KeyError:
            raise KeyError(f"no image {image_id!r} in {self.path}") from None

    def _segment_rows(self, image_id: str) -> pd.DataFrame:
        groups = self._cache.get("segment_groups")
        if groups is None:
            groups = self.segments.groupby("image_id", sort=False).indices
            self._cache["segment_groups"] = groups
        rows = groups.get(image_id)  # type: ignore[union-attr]
        if rows is None:
            return self.segments.iloc[0:0]
        return self.segments.iloc[rows]

    def mask_path(self, image_id: str, layer: str = "objects") -> Path:
        row = self._image_row(image_id)
        return self.path / mask_relpath(layer, row["split"], image_id)

    def image_path(self, image_id: str) -> Path | None:
        """Where the image file is: under the source root, or copied into the dataset."""
        row = self._image_row(image_id)
        if text_or_none(row["file"]) is None:
            return None
        root = Path(self.manifest.get("image_root", "."))
        if not root.is_absolute():
            root = self.path / root
        return root / row["file"]

    def segment_map(self, image_id: str, layer: str = "objects") -> np.ndarray:
        """The (H, W) segment-id map of one image and layer (uint8 or uint16; 0 = none).

        An image without annotation in ``layer`` (for example no parts) gives all zeros.
        """
        row = self._image_row(image_id)
        if layer not in self.layers:
            raise KeyError(f"no layer {layer!r} in {self.path}; layers: {', '.join(self.layers)}")
        if layer not in (text_or_none(row["layers"]) or "").split(","):
            return np.zeros((int(row["height"]), int(row["width"])), dtype=np.uint8)
        return read_segment_map(self.mask_path(image_id, layer))

    def class_lookup(self, image_id: str, layer: str = "objects") -> np.ndarray:
        """Per-image lookup table: ``lut[segment_id] = class_id`` (int32, 0 for unused ids)."""
        seg = self._segment_rows(image_id)
        seg = seg[seg["layer"] == layer]
        size = int(seg["segment_id"].max()) + 1 if len(seg) else 1
        lut = np.zeros(size, dtype=np.int32)
        lut[seg["segment_id"].to_numpy()] = seg["class_id"].to_numpy()
        return lut

    def semantic(self, image_id: str, layer: str = "objects") -> np.ndarray:
        """The (H, W) int32 map of class ids of one image and layer; 0 = unlabeled."""
        segmap = self.segment_map(image_id, layer)
        lut = self.class_lookup(image_id, layer)
        if segmap.size and int(segmap.max()) >= len(lut):
            raise InputError(self.mask_path(image_id, layer), f"segment id {int(segmap.max())} has no row in segments")
        return lut[segmap]

    def record(self, image_id: str) -> ImageRecord:
        row = self._image_row(image_id)
        return ImageRecord(
            image_id=image_id,
            split=row["split"],
            width=int(row["width"]),
            height=int(row["height"]),
            segments=self._segment_rows(image_id),
            dataset=self,
        )

    def __iter__(self) -> Iterator[ImageRecord]:
        for image_id in self.images["image_id"]:
            yield self.record(image_id)


def open_dataset(path: str | Path) -> Dataset:
    """Open a unified-format dataset directory (what ``segdata.open`` is)."""
    return Dataset(path)

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import FormatError, InputError, SelectionError
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


def lookup_tables(
    image_index: np.ndarray, segment_ids: np.ndarray, values: np.ndarray, n_images: int, dtype=np.int64, fill=0
) -> list[np.ndarray]:
    """Per-image lookup tables ``lut[segment_id] = value`` (the one place they are built).

    Parameters
    ----------
    image_index : ndarray of int, shape (S,)
        For each segment row, the position (0-based) of its image in the output; rows with a
        negative position are left out (images not asked for).
    segment_ids : ndarray of int, shape (S,)
        The rows' segment ids (1-based; 0 is "no annotation" and never has a row).
    values : ndarray, shape (S,)
        What each segment maps to: its ``class_id``, or any per-segment value (a class index).
    n_images : int
        Number of tables to return.
    dtype : numpy dtype
        Of the tables (int64 by default, the type the consistency kernel reads).
    fill : scalar
        The value at every id without a row (id 0 included): 0 by default ("unlabeled"), the
        ignore value (255) for a table into training ids.

    Returns
    -------
    list of ndarray
        ``n_images`` tables, each of length (largest segment id of the image) + 1, with ``fill``
        at every id that has no row. The tables are views of one buffer.

    Raises
    ------
    ValueError
        When a segment id is below 1.

    Examples
    --------
    >>> [t.tolist() for t in lookup_tables(np.array([0, 0, 1, -1]), np.array([1, 3, 1, 1]),
    ...                                     np.array([7, 9, 4, 5]), 2)]
    [[0, 7, 0, 9], [0, 4]]
    """
    image_index = np.asarray(image_index, dtype=np.int64)
    keep = image_index >= 0
    codes = image_index[keep]
    sid = np.asarray(segment_ids, dtype=np.int64)[keep]
    if (sid < 1).any():
        raise ValueError(f"segment ids must be >= 1, got {int(sid.min())}")
    size = np.ones(n_images, dtype=np.int64)  # table length per image: largest segment id + 1
    np.maximum.at(size, codes, sid + 1)
    offset = np.zeros(n_images + 1, dtype=np.int64)
    np.cumsum(size, out=offset[1:])
    table = np.full(int(offset[-1]), fill, dtype=dtype)
    table[offset[codes] + sid] = np.asarray(values)[keep]
    return [table[offset[k] : offset[k + 1]] for k in range(n_images)]


def lookup_table(segment_ids: np.ndarray, values: np.ndarray, dtype=np.int64, fill=0) -> np.ndarray:
    """One image's lookup table ``lut[segment_id] = value`` (see :func:`lookup_tables`).

    >>> lookup_table(np.array([2, 1]), np.array([5, 4]), dtype=np.uint8, fill=255).tolist()
    [255, 4, 5]
    """
    codes = np.zeros(len(segment_ids), dtype=np.int64)
    return lookup_tables(codes, segment_ids, values, 1, dtype=dtype, fill=fill)[0]


def layer_names(value) -> list[str]:
    """The layers one ``images.layers`` cell lists (comma-joined names; null or "" = none); the one
    place that column is parsed.

    >>> layer_names("objects,parts-1"), layer_names(None)
    (['objects', 'parts-1'], [])
    """
    return [name for name in (text_or_none(value) or "").split(",") if name]


def layer_flags(layers_column, layer: str) -> np.ndarray:
    """For each row of an ``images.layers`` column (comma-joined layer names, or null), whether it
    lists ``layer`` (see :func:`layer_names`).

    >>> layer_flags(["objects,parts-1", None, "objects"], "parts-1").tolist()
    [True, False, False]
    """
    return np.fromiter((layer in layer_names(v) for v in layers_column), dtype=bool, count=len(layers_column))


def table_from_columns(columns: dict[str, list], schema: pa.Schema) -> pa.Table:
    """Build a table of ``schema`` from a dict of column lists; missing columns become nulls."""
    n = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for field in schema:
        values = columns.get(field.name)
        arrays.append(pa.nulls(n, field.type) if values is None else pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def read_parquet(path: Path, *, pandas: bool = False, **options) -> pa.Table | pd.DataFrame:
    """Read one table of a dataset (``options`` are those of ``pyarrow.parquet.read_table``), as a
    pyarrow Table or, with ``pandas``, a DataFrame: the one place segdata reads parquet, so that a
    damaged file (truncated, empty, not parquet, a column asked for that it lacks, a name or a
    string that is not UTF-8) is a :class:`FormatError` naming it, never an Arrow traceback.

    Raises
    ------
    FormatError
        When the file is missing, unreadable or not a readable parquet table.
    """
    try:
        table = pq.read_table(path, **options)
        table.column_names  # noqa: B018 - decodes the names: a damaged one raises here, not later
        return table.to_pandas() if pandas else table
    except FileNotFoundError:
        raise FormatError(f"{path}: missing") from None
    except OSError as exc:  # pyarrow raises OSError for a damaged file too
        raise FormatError(f"{path}: not a readable parquet table ({exc})") from None
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise FormatError(f"{path}: not a readable parquet table ({exc})") from None


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
    dataset: Dataset

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
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"{manifest_path}: malformed JSON ({exc})") from None
        # an OSError (permission denied, an I/O error) is a system problem, not a format one: it
        # propagates, naming the file, and the CLI prints it as one line
        if not isinstance(self.manifest, dict):
            raise FormatError(f"{manifest_path}: a JSON object was expected, got {type(self.manifest).__name__}")
        if self.manifest.get("format") != FORMAT_NAME:
            raise FormatError(f"{manifest_path}: format is {self.manifest.get('format')!r}, expected {FORMAT_NAME!r}")
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise FormatError(f"{manifest_path}: format version {version}, this segdata reads version {FORMAT_VERSION}")
        self._cache: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"<segdata.Dataset {self.name!r}: {len(self)} images, {self.path}>"

    def _repr_html_(self) -> str:
        from .render.html import dataset_card

        return dataset_card(self)

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
            table = read_parquet(path, pandas=True)
            schema = {CLASSES_FILE: CLASS_SCHEMA, IMAGES_FILE: IMAGE_SCHEMA, SEGMENTS_FILE: SEGMENT_SCHEMA}[filename]
            missing = [name for name in schema.names if name not in table.columns]
            if missing:  # another table, or a damaged name: an error here, not a KeyError in a command
                raise FormatError(f"{path}: missing columns {missing}")
            self._cache[filename] = table
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
        return read_parquet(path, columns=columns, filters=filters)

    def read_segments(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The segment table, or only some of its columns (faster on large datasets: parquet
        reads just those). Served from the full table when it is already loaded."""
        if columns is None or SEGMENTS_FILE in self._cache:
            table = self.segments
            return table if columns is None else table[columns]
        path = self.path / SEGMENTS_FILE
        if not path.is_file():
            raise FormatError(f"{path}: missing")
        return read_parquet(path, columns=columns, pandas=True)

    @property
    def splits(self) -> list[str]:
        """The splits of the dataset's images, sorted."""
        return sorted(set(self.images["split"]))

    def has_layer(self, layer: str) -> np.ndarray:
        """(N,) bool, per row of :attr:`images`: the image is annotated in ``layer``."""
        key = ("has_layer", layer)
        if key not in self._cache:
            self._cache[key] = layer_flags(self.images["layers"].tolist(), layer)  # type: ignore[index]
        return self._cache[key]  # type: ignore[index,return-value]

    def check_layer(self, layer: str) -> None:
        """Raise :class:`SelectionError`, listing the dataset's layers, when it has no ``layer``."""
        if layer not in self.layers:
            raise SelectionError(f"{self.path}: no layer {layer!r}; layers: {', '.join(self.layers) or 'none'}")

    def select_images(self, split: str | None = None, layer: str | None = None) -> pd.DataFrame:
        """The image rows of ``split`` (all splits when None) annotated in ``layer`` (any when None).

        The one split and layer filter of every command: a split or layer the dataset does not
        have raises :class:`SelectionError` listing the ones it has (never an empty selection).
        """
        images = self.images
        keep = np.ones(len(images), dtype=bool)
        if split is not None:
            if split not in set(images["split"]):
                raise SelectionError(f"{self.path}: no split {split!r}; splits: {', '.join(self.splits) or 'none'}")
            keep &= (images["split"] == split).to_numpy()
        if layer is not None:
            self.check_layer(layer)
            keep &= self.has_layer(layer)
        return images if keep.all() else images[keep]

    def lookup_tables(
        self,
        layer: str,
        image_ids,
        to_value=None,
        *,
        column: str = "class_id",
        table: pa.Table | None = None,
        dtype=np.int64,
        fill=0,
    ) -> dict[str, np.ndarray]:
        """Per image of ``image_ids``: ``lut[segment_id] = class_id`` of ``layer`` (0 where an id
        has no segment row), from the segment table alone (see :func:`lookup_tables`).

        ``to_value`` maps an array of class ids to what the tables should hold instead (a class
        index, a training id); ``column`` names another segment column to look up instead of
        ``class_id`` (``is_instance``, ``area``); ``table`` is the segment table with columns
        ``image_id``, ``segment_id``, ``layer`` and ``column`` when the caller has read it already;
        ``dtype`` and ``fill`` (the value of ids without a row) are those of :func:`lookup_tables`.
        """
        image_ids = list(image_ids)
        if table is None:
            seg = self.segment_table(["image_id", "segment_id", column], layer=layer)
        else:
            seg = table.filter(pc.equal(table["layer"], layer))
        # Arrow finds the image ids in C: no pandas strings
        codes = pc.index_in(seg["image_id"], value_set=pa.array(image_ids, type=pa.string()))
        codes = pc.fill_null(codes, -1).to_numpy()
        raw = seg[column].to_numpy(zero_copy_only=False)
        raw = raw.astype(np.int64) if raw.dtype.kind in "iu" else raw
        values = to_value(raw) if to_value is not None and len(raw) else raw
        try:
            tables = lookup_tables(codes, seg["segment_id"].to_numpy(), values, len(image_ids), dtype=dtype, fill=fill)
        except ValueError as exc:
            raise FormatError(f"{self.path / SEGMENTS_FILE}: layer {layer}: {exc}") from None
        return dict(zip(image_ids, tables))

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
        if not layer_flags([row["layers"]], layer)[0]:
            return np.zeros((int(row["height"]), int(row["width"])), dtype=np.uint8)
        return read_segment_map(self.mask_path(image_id, layer))

    def class_lookup(self, image_id: str, layer: str = "objects") -> np.ndarray:
        """Per-image lookup table: ``lut[segment_id] = class_id`` (int32, 0 for unused ids)."""
        seg = self._segment_rows(image_id)
        seg = seg[seg["layer"] == layer]
        return lookup_table(seg["segment_id"].to_numpy(), seg["class_id"].to_numpy(), dtype=np.int32)

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

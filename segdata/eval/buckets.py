"""Frequency buckets of the evaluated classes, counted on the training split in the evaluated id
space.

An evaluated class that merges several unified classes (a vocabulary entry, a Cityscapes trainId)
counts the training images holding *any* of them, and their pixels together. Rules:

- ``lvis`` (default): rare 1-10 training images, common 11-100, frequent > 100 (LVIS, Gupta et al.
  2019), as :data:`segdata.analyses.longtail.LVIS`;
- ``pixel-terciles``: terciles of training pixel share among the classes seen in training
  (``low``, ``mid``, ``high``);
- a file: JSON ``{"bucket name": [class names or train ids], ...}`` (optionally under a
  ``"buckets"`` key), or CSV with a ``bucket`` column and a ``name`` or ``train_id`` column.

Classes never seen in training form their own bucket, :data:`UNSEEN`, whatever the rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError, SelectionError
from ..format import Dataset
from .space import EvalSpace

UNSEEN = "unseen"  #: the bucket of classes in no training image
RULES = ("lvis", "pixel-terciles")


def training_frequencies(ds: Dataset, space: EvalSpace, split: str = "train", layer: str = "objects") -> pd.DataFrame:
    """Per evaluated class, on ``split``: ``train_images`` (images holding any of its classes with
    at least one pixel), ``pixels`` and ``pixel_share`` (fraction of the split's evaluated pixels).

    Raises
    ------
    SelectionError
        The dataset has no split ``split`` (the message lists the splits it has).
    """
    images = ds.select_images(split)
    table = ds.segment_table(["image_id", "class_id", "area"], layer=layer)
    inside = pc.is_in(table["image_id"], value_set=pa.array(images["image_id"], type=pa.string()))
    table = table.filter(inside)
    k = space.num_classes
    class_id = table["class_id"].to_numpy().astype(np.int64)
    area = table["area"].to_numpy().astype(np.int64)
    lut = space.gt_lut
    idx = np.where(class_id < len(lut), lut[np.minimum(class_id, len(lut) - 1)], -1)
    keep = (idx >= 0) & (area > 0)
    image_code = pc.dictionary_encode(table["image_id"]).combine_chunks().indices.to_numpy().astype(np.int64)
    pairs = np.unique(image_code[keep] * k + idx[keep])
    train_images = np.bincount(pairs % k, minlength=k)[:k] if len(pairs) else np.zeros(k, dtype=np.int64)
    pixels = np.bincount(idx[keep], weights=area[keep], minlength=k)[:k].astype(np.int64)
    total = pixels.sum()
    return pd.DataFrame(
        {
            "train_id": np.arange(k),
            "name": space.names,
            "train_images": train_images.astype(np.int64),
            "pixels": pixels,
            "pixel_share": pixels / total if total else np.zeros(k),
        }
    )


def assign(
    freq: pd.DataFrame, rule: str | Path = "lvis", space: EvalSpace | None = None
) -> tuple[list[str], list[str]]:
    """The bucket of each evaluated class (aligned with ``freq``) and the buckets' order.

    ``rule`` is ``lvis``, ``pixel-terciles`` or a bucket file (see the module docstring).
    """
    from ..analyses.longtail import ABSENT, LVIS, TERCILES, assign_buckets  # scipy: only with --by-frequency

    text = str(rule)
    if text in ("lvis", "pixel-terciles"):
        bucket_rule = LVIS if text == "lvis" else TERCILES
        names = assign_buckets(freq, bucket_rule).replace(ABSENT, UNSEEN).tolist()
        order = [*bucket_rule.names, UNSEEN]
    else:
        names, order = _from_file(Path(rule), freq)
        unseen = freq["train_images"].to_numpy() == 0
        names = [UNSEEN if u else n for n, u in zip(names, unseen)]
        if UNSEEN not in order:
            order.append(UNSEEN)
    present = set(names)
    return names, [b for b in order if b in present]


def _from_file(path: Path, freq: pd.DataFrame) -> tuple[list[str], list[str]]:
    if not path.is_file():
        raise SelectionError(f"--buckets {path}: expected lvis, pixel-terciles or a bucket file (JSON or CSV)")
    by_name = {str(n): i for i, n in enumerate(freq["name"])}
    k = len(freq)
    members: dict[str, list] = {}
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path)
            key = "train_id" if "train_id" in table.columns else "name"
            if "bucket" not in table.columns or key not in table.columns:
                raise InputError(path, "a bucket CSV needs a 'bucket' column and a 'train_id' or 'name' column")
            for bucket, group in table.groupby("bucket", sort=False):
                members[str(bucket)] = group[key].tolist()
        else:
            data = json.loads(path.read_text())
            data = data.get("buckets", data) if isinstance(data, dict) else data
            if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
                raise InputError(path, 'a bucket file is a JSON object {"bucket name": [class names or train ids]}')
            members = {str(b): list(v) for b, v in data.items()}
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(path, f"cannot parse the bucket file ({exc})") from None
    names: list[str | None] = [None] * k
    for bucket, items in members.items():
        for item in items:
            if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                i = int(item)
                if not 0 <= i < k:
                    raise InputError(path, f"bucket {bucket}: train id {i} is not evaluated (0..{k - 1})")
            elif str(item) in by_name:
                i = by_name[str(item)]
            else:
                raise InputError(path, f"bucket {bucket}: no evaluated class {item!r}")
            if names[i] is not None and names[i] != bucket:
                raise InputError(path, f"class {freq['name'].iloc[i]} is in bucket {names[i]} and in bucket {bucket}")
            names[i] = bucket
    order = list(members)
    if any(n is None for n in names):
        order.append("other")
    return [n if n is not None else "other" for n in names], order

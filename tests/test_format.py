"""Unified format: reader API, round trip, and the validator catching each kind of damage."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import segdata
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.format import SEGMENT_SCHEMA, mask_relpath
from segdata.maskio import write_segment_map
from segdata.validate import validate
from tests.fixtures.ade20k import small_2021_dataset

A = "ADE_train_00000001"


@pytest.fixture()
def ds(tmp_path):
    src = small_2021_dataset(tmp_path / "src")
    convert(ade20k, src, tmp_path / "u", workers=1)
    return segdata.open(tmp_path / "u")


def test_tables_have_the_documented_columns(ds):
    for col in ("class_id", "name", "source_id", "source_name", "is_thing", "ignore"):
        assert col in ds.classes
    for col in ("image_id", "split", "width", "height"):
        assert col in ds.images
    for col in ("image_id", "layer", "segment_id", "class_id", "is_instance", "area", "parent_segment"):
        assert col in ds.segments
    assert ds.images.image_id.map(type).eq(str).all()
    manifest = json.loads((ds.path / "segdata.json").read_text())
    assert manifest["format"] == "segdata-unified" and manifest["format_version"] == 1
    assert manifest["source"]["family"] == "ade20k" and manifest["source"]["release"] == "2021_17_01"


def test_semantic_is_lookup_of_segment_map(ds):
    segmap = ds.segment_map(A)
    rows = ds.segments[(ds.segments.image_id == A) & (ds.segments.layer == "objects")]
    expected = np.zeros(segmap.shape, np.int64)
    for r in rows.itertuples():
        expected[segmap == r.segment_id] = r.class_id
    assert np.array_equal(ds.semantic(A), expected)
    # an image without parts reads as all zeros in a part layer
    assert not ds.semantic("ADE_train_00000002", "parts-1").any()
    with pytest.raises(KeyError, match="no layer"):
        ds.semantic(A, "parts-7")


def test_iteration_yields_one_record_per_image(ds):
    records = list(ds)
    assert [r.image_id for r in records] == list(ds.images.image_id)
    assert records[0].semantic().shape == (records[0].height, records[0].width)
    assert set(records[0].segments.image_id) == {records[0].image_id}


def test_output_is_deterministic(tmp_path):
    src = small_2021_dataset(tmp_path / "src")
    convert(ade20k, src, tmp_path / "a", workers=1)
    convert(ade20k, src, tmp_path / "b", workers=2)
    for name in ("classes.parquet", "images.parquet", "segments.parquet"):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))
    for mask in (tmp_path / "a" / "masks").rglob("*.png"):
        assert mask.read_bytes() == (tmp_path / "b" / mask.relative_to(tmp_path / "a")).read_bytes()


def test_open_refuses_what_is_not_a_dataset(tmp_path):
    with pytest.raises(segdata.FormatError, match="no segdata.json"):
        segdata.open(tmp_path)
    (tmp_path / "segdata.json").write_text(json.dumps({"format": "segdata-unified", "format_version": 99}))
    with pytest.raises(segdata.FormatError, match="version 99"):
        segdata.open(tmp_path)


def _rewrite_segments(ds, fn):
    table = pq.read_table(ds.path / "segments.parquet").to_pandas()
    table = fn(table)
    pq.write_table(
        pa.Table.from_pandas(table, schema=SEGMENT_SCHEMA, preserve_index=False), ds.path / "segments.parquet"
    )


def test_validator_accepts_a_fresh_conversion(ds):
    assert validate(ds.path, workers=1) == []
    assert CliRunner().invoke(main, ["validate", str(ds.path)]).exit_code == 0


def _damage_area(ds):
    def fn(t):
        t.loc[(t.image_id == A) & (t.layer == "objects") & (t.segment_id == 1), "area"] += 1
        return t

    _rewrite_segments(ds, fn)
    return "area 24 in segments.parquet, 23 pixels in the mask"


def _damage_missing_row(ds):
    _rewrite_segments(ds, lambda t: t[~((t.image_id == A) & (t.layer == "objects") & (t.segment_id == 1))])
    return "segment ids [1] have no row"


def _damage_mask_size(ds):
    write_segment_map(ds.path / mask_relpath("objects", "train", A), np.zeros((5, 8), np.uint8))
    return "mask is 8x5, image is 8x6"


def _damage_missing_mask(ds):
    (ds.path / mask_relpath("parts-1", "train", A)).unlink()
    return "mask missing"


def _damage_parent(ds):
    def fn(t):
        t.loc[(t.image_id == A) & (t.layer == "parts-1"), "parent_segment"] = 77
        return t

    _rewrite_segments(ds, fn)
    return "link to a parent segment that does not exist"


def _damage_class(ds):
    def fn(t):
        t.loc[t.index[0], "class_id"] = 5
        return t

    _rewrite_segments(ds, fn)
    return "class ids without a class row: [5]"


def _damage_bbox(ds):
    def fn(t):
        t.loc[(t.image_id == A) & (t.layer == "objects") & (t.segment_id == 1), "bbox_w"] = 3
        return t

    _rewrite_segments(ds, fn)
    return "bbox [0, 0, 3, 6]"


@pytest.mark.parametrize(
    "damage",
    [
        _damage_area,
        _damage_missing_row,
        _damage_mask_size,
        _damage_missing_mask,
        _damage_parent,
        _damage_class,
        _damage_bbox,
    ],
    ids=lambda f: f.__name__,
)
def test_validator_finds_each_kind_of_damage(ds, damage):
    expected = damage(ds)
    findings = validate(ds.path, workers=1)
    assert any(expected in f.problem for f in findings), findings
    result = CliRunner().invoke(main, ["validate", str(ds.path), "--json"])
    assert result.exit_code == 1
    assert any(expected in f["problem"] for f in json.loads(result.output))


@pytest.mark.parametrize(
    "content, problem",
    [(b"[1, 2]", "JSON object was expected"), (b"\xff\xfe\x00garbage", "malformed JSON"), (b"", "malformed JSON")],
)
def test_damaged_manifest_is_a_format_error_naming_it(ds, content, problem):
    manifest = ds.path / "segdata.json"
    manifest.write_bytes(content)
    with pytest.raises(segdata.errors.FormatError, match=problem) as info:
        segdata.open(ds.path)
    assert str(manifest) in str(info.value)
    result = CliRunner().invoke(main, ["info", str(ds.path)])
    assert result.exit_code == 1 and "segdata.json" in result.output and "Traceback" not in result.output


def test_read_parquet_names_a_truncated_table(ds):
    from segdata.format import read_parquet

    path = ds.path / "segments.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(segdata.errors.FormatError, match="segments.parquet: not a readable parquet table"):
        read_parquet(path)

"""A damaged parquet table (truncated, zero bytes, not parquet at all, another table) is a format error naming the
file, in the library and in every command (exit 1, one ``error:`` line, no traceback); ``validate``
reports it among the other problems of the dataset (issue 11, item 7)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import segdata
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.errors import FormatError
from segdata.format import CLASSES_FILE, IMAGES_FILE, SEGMENTS_FILE
from tests.fixtures.ade20k import small_2021_dataset

TABLES = (CLASSES_FILE, IMAGES_FILE, SEGMENTS_FILE)
KINDS = ("truncated", "empty", "not-parquet", "other-table")


def _corrupt(path, kind):
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "other-table":  # parquet, but not the table the name says: its columns are missing
        pq.write_table(pa.table({"image_id": ["x"], "count": [1]}), path)
    else:
        path.write_bytes(b"image_id,split\nADE_train_00000001,train\n" * 20)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt")
    src = small_2021_dataset(root / "src")
    convert(ade20k, src, root / "u", workers=1)
    return root / "u"


@pytest.fixture()
def damaged(clean, tmp_path, request):
    import shutil

    table, kind = request.param
    out = tmp_path / "u"
    shutil.copytree(clean, out, symlinks=True)
    _corrupt(out / table, kind)
    return out, table


CASES = [(t, k) for t in TABLES for k in KINDS]
IDS = [f"{t.split('.')[0]}-{k}" for t, k in CASES]


@pytest.mark.parametrize("damaged", CASES, ids=IDS, indirect=True)
def test_library_raises_format_error_naming_the_file(damaged):
    path, table = damaged
    ds = segdata.open(path)
    with pytest.raises(FormatError, match=table):
        getattr(ds, table.split(".")[0])
    if table == SEGMENTS_FILE:
        with pytest.raises(FormatError, match=table):
            ds.segment_table(["image_id", "segment_id"], layer="objects")
        with pytest.raises(FormatError, match=table):
            segdata.open(path).read_segments(["image_id", "area"])


COMMANDS = {
    "validate": lambda p, o: ["validate", str(p), "--workers", "1"],
    "info": lambda p, o: ["info", str(p)],
    "export": lambda p, o: ["export", str(p), "--to", "label-png", str(o), "--workers", "1"],
    "longtail": lambda p, o: ["analyze", "longtail", str(p), "--bootstrap", "0"],
    "small-objects": lambda p, o: ["analyze", "small-objects", str(p), "--workers", "1"],
    "consistency": lambda p, o: ["analyze", "consistency", str(p), "--layers", "objects,parts-1", "--workers", "1"],
    "vocab": lambda p, o: ["vocab", str(p), "--top", "3", "-o", str(o / "v.json")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("damaged", CASES, ids=IDS, indirect=True)
def test_every_command_exits_1_naming_the_file(damaged, command, tmp_path):
    path, table = damaged
    out = tmp_path / "out"
    if command == "vocab":
        out.mkdir()
    result = CliRunner().invoke(main, COMMANDS[command](path, out))
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 1, text
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in text
    assert table in text
    if command != "validate":
        assert "error:" in text


@pytest.mark.parametrize("table", TABLES)
def test_validate_reports_a_damaged_table_and_a_damaged_mask(clean, tmp_path, table):
    import shutil

    from segdata.validate import validate

    path = tmp_path / "u"
    shutil.copytree(clean, path, symlinks=True)
    _corrupt(path / table, "truncated")
    mask = sorted((path / "masks").rglob("*.png"))[0]
    mask.write_bytes(mask.read_bytes()[:40])
    findings = validate(path, workers=1)
    wheres = [f.where for f in findings]
    assert str(path / table) in wheres
    assert str(mask) in wheres
    result = CliRunner().invoke(main, ["validate", str(path), "--workers", "1"])
    assert result.exit_code == 1
    assert table in result.output and mask.name in result.output
